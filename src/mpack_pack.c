/* The MessagePack writer: headers and scalars appended to a budgeted
 * buffer (buf.h). Every width is the smallest the format allows, as
 * msgpack-c chose, so encodings stay byte-for-byte what they were. */
#include "mpack.h"

#include <string.h>

/* A header: the type byte and `width` big-endian bytes of v. */
static void head(nx_buf_t *b, uint8_t op, int width, uint64_t v) {
  uint8_t h[9];
  int i;
  h[0] = op;
  for (i = 0; i < width; i++) h[1 + i] = (uint8_t)(v >> (8 * (width - 1 - i)));
  nx_buf_write(b, h, (size_t)width + 1);
}

/* A str or bin header past the fix forms: op8, op16 and op32 are
 * consecutive type bytes for both. */
static void sized(nx_buf_t *b, uint8_t op8, size_t n) {
  if (n < 256)
    head(b, op8, 1, n);
  else if (n < 65536)
    head(b, (uint8_t)(op8 + 1), 2, n);
  else
    head(b, (uint8_t)(op8 + 2), 4, (uint32_t)n);
}

void nx_mp_pack_nil(nx_buf_t *b) { head(b, 0xc0, 0, 0); }

void nx_mp_pack_bool(nx_buf_t *b, int v) { head(b, v ? 0xc3 : 0xc2, 0, 0); }

void nx_mp_pack_uint(nx_buf_t *b, uint64_t v) {
  if (v < 128)
    head(b, (uint8_t)v, 0, 0);
  else if (v < 256)
    head(b, 0xcc, 1, v);
  else if (v < 65536)
    head(b, 0xcd, 2, v);
  else if (v <= UINT32_MAX)
    head(b, 0xce, 4, v);
  else
    head(b, 0xcf, 8, v);
}

/* Non-negative integers take the unsigned forms, as in msgpack-c. */
void nx_mp_pack_int(nx_buf_t *b, int64_t v) {
  if (v >= 0)
    nx_mp_pack_uint(b, (uint64_t)v);
  else if (v >= -32)
    head(b, (uint8_t)v, 0, 0); /* negative fixint */
  else if (v >= INT8_MIN)
    head(b, 0xd0, 1, (uint64_t)v);
  else if (v >= INT16_MIN)
    head(b, 0xd1, 2, (uint64_t)v);
  else if (v >= INT32_MIN)
    head(b, 0xd2, 4, (uint64_t)v);
  else
    head(b, 0xd3, 8, (uint64_t)v);
}

void nx_mp_pack_int64_fixed(nx_buf_t *b, int64_t v) { head(b, 0xd3, 8, (uint64_t)v); }

void nx_mp_pack_uint64_fixed(nx_buf_t *b, uint64_t v) { head(b, 0xcf, 8, v); }

void nx_mp_pack_double(nx_buf_t *b, double d) {
  uint64_t bits;
  memcpy(&bits, &d, sizeof bits);
  head(b, 0xcb, 8, bits);
}

void nx_mp_pack_str_header(nx_buf_t *b, size_t len) {
  if (len < 32)
    head(b, (uint8_t)(0xa0 | len), 0, 0);
  else
    sized(b, 0xd9, len);
}

void nx_mp_pack_str(nx_buf_t *b, const void *s, size_t len) {
  nx_mp_pack_str_header(b, len);
  nx_buf_write(b, s, len);
}

void nx_mp_pack_bin(nx_buf_t *b, const void *p, size_t len) {
  sized(b, 0xc4, len);
  nx_buf_write(b, p, len);
}

void nx_mp_pack_ext_header(nx_buf_t *b, size_t len, int8_t type) {
  uint8_t h[6];
  size_t n;
  switch (len) {
    case 1: h[0] = 0xd4, n = 1; break;
    case 2: h[0] = 0xd5, n = 1; break;
    case 4: h[0] = 0xd6, n = 1; break;
    case 8: h[0] = 0xd7, n = 1; break;
    case 16: h[0] = 0xd8, n = 1; break;
    default:
      if (len < 256) {
        h[0] = 0xc7, h[1] = (uint8_t)len, n = 2;
      } else if (len < 65536) {
        h[0] = 0xc8, h[1] = (uint8_t)(len >> 8), h[2] = (uint8_t)len, n = 3;
      } else {
        h[0] = 0xc9, n = 5;
        h[1] = (uint8_t)(len >> 24), h[2] = (uint8_t)(len >> 16);
        h[3] = (uint8_t)(len >> 8), h[4] = (uint8_t)len;
      }
  }
  h[n] = (uint8_t)type;
  nx_buf_write(b, h, n + 1);
}

void nx_mp_pack_array(nx_buf_t *b, size_t n) {
  if (n < 16)
    head(b, (uint8_t)(0x90 | n), 0, 0);
  else if (n < 65536)
    head(b, 0xdc, 2, n);
  else
    head(b, 0xdd, 4, (uint32_t)n);
}

void nx_mp_pack_map(nx_buf_t *b, size_t n) {
  if (n < 16)
    head(b, (uint8_t)(0x80 | n), 0, 0);
  else if (n < 65536)
    head(b, 0xde, 2, n);
  else
    head(b, 0xdf, 4, (uint32_t)n);
}

/* MessagePack without a sandbox: the validator every untrusted byte string
 * passes before msgpack-c reads it, structural equality, and the paths
 * that error messages name ("events[2].payload.a[0]"). */
#include "mpack.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

const int8_t nx_mp_code_to_qjs[11] = {1, 2, 0, 3, 4, 5, 6, 10, 11, 7, 8};
const int8_t nx_mp_qjs_to_code[12] = {2, 0, 1, 3, 4, 5, 6, 9, 10, -1, 7, 8};

/* ---- paths ------------------------------------------------------------- */

void nx_path_set(nx_path_t *p, const char *root) {
  size_t n = strlen(root);
  if (n >= sizeof p->buf) n = sizeof p->buf - 1;
  memcpy(p->buf, root, n);
  p->buf[n] = 0;
  p->len = (uint32_t)n;
}

uint32_t nx_path_key(nx_path_t *p, const char *key, size_t len) {
  uint32_t mark = p->len;
  size_t room = sizeof p->buf - 1 - p->len;
  if (room > 1) {
    size_t n = len < room - 1 ? len : room - 1;
    p->buf[p->len++] = '.';
    if (n) memcpy(p->buf + p->len, key, n); /* msgpack-c gives "" a NULL pointer */
    p->len += (uint32_t)n;
    p->buf[p->len] = 0;
  }
  return mark;
}

uint32_t nx_path_index(nx_path_t *p, uint64_t index) {
  uint32_t mark = p->len;
  int n = snprintf(p->buf + p->len, sizeof p->buf - p->len, "[%" PRIu64 "]", index);
  if (n > 0 && (size_t)n < sizeof p->buf - p->len) p->len += (uint32_t)n;
  p->buf[p->len] = 0;
  return mark;
}

/* ---- validation ---------------------------------------------------------- */

int nx_mp_validate(const uint8_t *buf, size_t len, uint32_t max_depth) {
  uint64_t pending[64]; /* items still expected by each open container */
  uint32_t depth = 0;
  size_t at = 0;

  if (max_depth > 63) max_depth = 63;
  pending[0] = 1; /* the top-level value */
  while (depth > 0 || pending[0] > 0) {
    uint8_t b;
    uint64_t skip = 0, items = 0;
    int container = 0, width;

    if (pending[depth] == 0) { /* container complete */
      depth--;
      continue;
    }
    pending[depth]--;
    if (at >= len) return -1;
    b = buf[at++];
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
      /* fixint, nil, bool: nothing more */
    } else if (b <= 0x8f) {
      items = 2u * (b & 0x0f), container = 1;
    } else if (b <= 0x9f) {
      items = b & 0x0f, container = 1;
    } else if (b <= 0xbf) {
      skip = b & 0x1f;
    } else if (b == 0xc1) {
      return -1;
    } else {
      static const struct {
        uint8_t op, width, kind;
      } ops[] = {/* kind: 0 fixed payload `width`, 1 length `width` + bytes,
                  * 2 length + type byte + bytes, 3 array count, 4 map count */
                 {0xc4, 1, 1},  {0xc5, 2, 1}, {0xc6, 4, 1}, {0xc7, 1, 2}, {0xc8, 2, 2},
                 {0xc9, 4, 2},  {0xca, 4, 0}, {0xcb, 8, 0}, {0xcc, 1, 0}, {0xcd, 2, 0},
                 {0xce, 4, 0},  {0xcf, 8, 0}, {0xd0, 1, 0}, {0xd1, 2, 0}, {0xd2, 4, 0},
                 {0xd3, 8, 0},  {0xd4, 2, 0}, {0xd5, 3, 0}, {0xd6, 5, 0}, {0xd7, 9, 0},
                 {0xd8, 17, 0}, {0xd9, 1, 1}, {0xda, 2, 1}, {0xdb, 4, 1}, {0xdc, 2, 3},
                 {0xdd, 4, 3},  {0xde, 2, 4}, {0xdf, 4, 4}};
      const uint32_t n = sizeof ops / sizeof ops[0];
      uint32_t i;
      uint64_t v = 0;
      for (i = 0; i < n && ops[i].op != b; i++) {
      }
      if (i == n) return -1;
      width = ops[i].width;
      if (ops[i].kind == 0) {
        skip = (uint64_t)width;
      } else {
        if (len - at < (size_t)width) return -1;
        for (int k = 0; k < width; k++) v = (v << 8) | buf[at + (size_t)k];
        at += (size_t)width;
        if (ops[i].kind == 1)
          skip = v;
        else if (ops[i].kind == 2)
          skip = v + 1;
        else
          items = ops[i].kind == 3 ? v : 2 * v, container = 1;
      }
    }
    if (skip > len - at) return -1;
    at += (size_t)skip;
    /* An empty container is a level too: msgpack-c counts it. */
    if (container && depth + 1 > max_depth) return -1;
    if (container && items > 0) {
      /* Every item takes at least one byte. */
      if (items > len - at) return -1;
      pending[++depth] = items;
    }
  }
  return at == len ? 0 : -1;
}

/* ---- equality ---------------------------------------------------------- */

static int as_number(const msgpack_object *o, double *d) {
  switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *d = (double)o->via.u64; return 1;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *d = (double)o->via.i64; return 1;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *d = o->via.f64; return 1;
    default: return 0;
  }
}

int nx_mp_equal(const msgpack_object *a, const msgpack_object *b) {
  double x, y;
  uint32_t i;

  if (as_number(a, &x) && as_number(b, &y))
    return (x == y && signbit(x) == signbit(y)) || (isnan(x) && isnan(y));
  if (a->type != b->type) return 0;
  switch (a->type) {
    case MSGPACK_OBJECT_ARRAY:
      if (a->via.array.size != b->via.array.size) return 0;
      for (i = 0; i < a->via.array.size; i++)
        if (!nx_mp_equal(&a->via.array.ptr[i], &b->via.array.ptr[i])) return 0;
      return 1;
    case MSGPACK_OBJECT_MAP:
      if (a->via.map.size != b->via.map.size) return 0;
      for (i = 0; i < a->via.map.size; i++)
        if (!nx_mp_equal(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
            !nx_mp_equal(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
          return 0;
      return 1;
    default: return msgpack_object_equal(*a, *b);
  }
}

/* The little-endian fields an exported suspension is made of (portable.h):
 * appending them to a buffer, and reading them back through a cursor that
 * refuses every read past its end. A failed read leaves the cursor failed
 * for good, so a reader checks once, after a group of fields. */
#ifndef NX_WIRE_H
#define NX_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "util.h"

static inline void nx_wire_u8(nx_buf_t *b, uint8_t v) { nx_buf_write(b, &v, 1); }

static inline void nx_wire_u32(nx_buf_t *b, uint32_t v) {
  uint8_t p[4];
  nx_util_le32_put(p, v);
  nx_buf_write(b, p, 4);
}

static inline void nx_wire_u64(nx_buf_t *b, uint64_t v) {
  uint8_t p[8];
  nx_util_le64_put(p, v);
  nx_buf_write(b, p, 8);
}

/* A length (u32) and that many bytes. */
static inline void nx_wire_bytes(nx_buf_t *b, const void *p, size_t n) {
  nx_wire_u32(b, (uint32_t)n);
  nx_buf_write(b, p, n);
}

typedef struct nx_wire_rd_s {
  const uint8_t *p, *end;
  int bad; /* a read went past the end, or a value was out of range */
} nx_wire_rd_t;

static inline void nx_wire_init(nx_wire_rd_t *r, const uint8_t *p, size_t n) {
  r->p = p;
  r->end = p + n;
  r->bad = 0;
}

/* The next n bytes, or NULL (and the cursor failed). */
static inline const uint8_t *nx_wire_take(nx_wire_rd_t *r, size_t n) {
  const uint8_t *p = r->p;
  if (r->bad || (size_t)(r->end - r->p) < n) {
    r->bad = 1;
    return NULL;
  }
  r->p += n;
  return p;
}

static inline uint8_t nx_wire_get_u8(nx_wire_rd_t *r) {
  const uint8_t *p = nx_wire_take(r, 1);
  return p ? p[0] : 0;
}

static inline uint32_t nx_wire_get_u32(nx_wire_rd_t *r) {
  const uint8_t *p = nx_wire_take(r, 4);
  return p ? nx_util_le32_get(p) : 0;
}

static inline uint64_t nx_wire_get_u64(nx_wire_rd_t *r) {
  const uint8_t *p = nx_wire_take(r, 8);
  return p ? nx_util_le64_get(p) : 0;
}

/* A flag: 0 or 1, anything else fails the cursor. */
static inline uint8_t nx_wire_get_bool(nx_wire_rd_t *r) {
  uint8_t v = nx_wire_get_u8(r);
  if (v > 1) r->bad = 1;
  return v & 1;
}

/* What nx_wire_bytes wrote: the bytes (in place) and their length, at most
 * `max`; NULL with *n = 0 when absent or refused. */
static inline const uint8_t *nx_wire_get_bytes(nx_wire_rd_t *r, size_t max, size_t *n) {
  uint32_t len = nx_wire_get_u32(r);
  const uint8_t *p;
  *n = 0;
  if (len > max) {
    r->bad = 1;
    return NULL;
  }
  p = nx_wire_take(r, len);
  if (p) *n = len;
  return p;
}

#endif

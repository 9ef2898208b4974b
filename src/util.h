/* Small helpers several modules need, in one place: the monotonic clock,
 * kernel randomness, hex, little-endian integers, FNV-1a and whole-buffer
 * file I/O. No state but a thread-local pool of kernel randomness. */
#ifndef NX_UTIL_H
#define NX_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t nx_util_now_ns(void);

/* n bytes from getrandom(2); 0, or -1 when the kernel would not give them. */
int nx_util_random(void *buf, size_t n);
/* The same, for small draws, from a thread-local pool that one getrandom
 * fills for many draws; no byte is ever handed out twice. */
int nx_util_random_pooled(void *buf, size_t n);

/* 2n lowercase hex digits and a NUL into out. */
void nx_util_hex_encode(const uint8_t *bytes, size_t n, char *out);
/* Exactly 2n lowercase hex digits into n bytes; 0, or -1 for anything else. */
int nx_util_hex_decode(const char *hex, size_t len, uint8_t *out, size_t n);

static inline void nx_util_le16_put(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void nx_util_le32_put(uint8_t *p, uint32_t v) {
  nx_util_le16_put(p, v);
  nx_util_le16_put(p + 2, v >> 16);
}
static inline void nx_util_le64_put(uint8_t *p, uint64_t v) {
  nx_util_le32_put(p, (uint32_t)v);
  nx_util_le32_put(p + 4, (uint32_t)(v >> 32));
}
static inline uint32_t nx_util_le16_get(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}
static inline uint32_t nx_util_le32_get(const uint8_t *p) {
  return nx_util_le16_get(p) | nx_util_le16_get(p + 2) << 16;
}
static inline uint64_t nx_util_le64_get(const uint8_t *p) {
  return (uint64_t)nx_util_le32_get(p) | (uint64_t)nx_util_le32_get(p + 4) << 32;
}

/* 32-bit FNV-1a: hash tables keyed by short strings. */
uint32_t nx_util_fnv1a(const void *bytes, size_t len);

/* All n bytes, retrying short reads and writes and EINTR; 0, or -1 on an
 * error or an early end of file. */
int nx_util_read_full(int fd, void *buf, size_t n);
int nx_util_write_full(int fd, const void *buf, size_t n);

#endif

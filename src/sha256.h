/* SHA-256 (FIPS 180-4), streaming and one-shot. Callers derive compile-cache
 * keys with it and the cache checksums its files with it; it is our own so
 * the addon links no crypto library. */
#ifndef NX_SHA256_H
#define NX_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define NX_SHA256_LEN 32u

typedef struct {
  uint32_t h[8];
  uint64_t len;    /* bytes hashed so far */
  uint8_t buf[64]; /* partial block */
  uint32_t fill;   /* bytes used in buf */
} nx_sha256_t;

void nx_sha256_init(nx_sha256_t *s);
void nx_sha256_update(nx_sha256_t *s, const void *data, size_t len);
/* Writes the digest and wipes the state; init again to reuse it. */
void nx_sha256_final(nx_sha256_t *s, uint8_t out[32]);
void nx_sha256(const void *data, size_t len, uint8_t out[32]);

#endif

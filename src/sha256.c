/* SHA-256 written from FIPS 180-4 sections 4.1.2, 4.2.2, 5.1.1, 5.3.3 and
 * 6.2. Portable C: words are assembled byte by byte, so host endianness and
 * input alignment never matter. */
#include "sha256.h"

#include <string.h>

/* First 32 bits of the fractional parts of the cube roots of the first 64
 * primes (FIPS 180-4, 4.2.2). */
static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static inline uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static inline uint32_t load_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* The message schedule is kept as a 16-word ring rather than 64 words:
 * W[t] only ever depends on W[t-2], W[t-7], W[t-15] and W[t-16]. */
static void compress(uint32_t h[8], const uint8_t block[64]) {
  uint32_t w[16], a, b, c, d, e, f, g, hh;
  unsigned t;

  for (t = 0; t < 16; t++) w[t] = load_be32(block + 4 * t);
  a = h[0];
  b = h[1];
  c = h[2];
  d = h[3];
  e = h[4];
  f = h[5];
  g = h[6];
  hh = h[7];
  for (t = 0; t < 64; t++) {
    uint32_t t1, t2;
    if (t >= 16) {
      uint32_t w15 = w[(t - 15) & 15], w2 = w[(t - 2) & 15];
      uint32_t s0 = rotr(w15, 7) ^ rotr(w15, 18) ^ (w15 >> 3);
      uint32_t s1 = rotr(w2, 17) ^ rotr(w2, 19) ^ (w2 >> 10);
      w[t & 15] += s0 + w[(t - 7) & 15] + s1;
    }
    t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t & 15];
    t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  h[0] += a;
  h[1] += b;
  h[2] += c;
  h[3] += d;
  h[4] += e;
  h[5] += f;
  h[6] += g;
  h[7] += hh;
}

void nx_sha256_init(nx_sha256_t *s) {
  /* FIPS 180-4, 5.3.3: fractional parts of the square roots of the first
   * eight primes. */
  static const uint32_t iv[8] = {
      0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
      0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  };
  memcpy(s->h, iv, sizeof iv);
  s->len = 0;
  s->fill = 0;
}

void nx_sha256_update(nx_sha256_t *s, const void *data, size_t len) {
  const uint8_t *p = data;

  s->len += len;
  if (s->fill) {
    size_t take = 64 - s->fill;
    if (take > len) take = len;
    memcpy(s->buf + s->fill, p, take);
    s->fill += (uint32_t)take;
    p += take;
    len -= take;
    if (s->fill < 64) return;
    compress(s->h, s->buf);
    s->fill = 0;
  }
  /* Whole blocks straight from the caller's buffer: no copy. */
  for (; len >= 64; p += 64, len -= 64) compress(s->h, p);
  if (len) {
    memcpy(s->buf, p, len);
    s->fill = (uint32_t)len;
  }
}

void nx_sha256_final(nx_sha256_t *s, uint8_t out[32]) {
  uint64_t bits = s->len * 8;
  unsigned i;

  /* 5.1.1: a 1 bit, zeros up to 56 mod 64, then the length in bits as a
   * big-endian u64. The length must not spill past the block, so a fill
   * above 55 needs one extra block. */
  s->buf[s->fill++] = 0x80;
  if (s->fill > 56) {
    memset(s->buf + s->fill, 0, 64 - s->fill);
    compress(s->h, s->buf);
    s->fill = 0;
  }
  memset(s->buf + s->fill, 0, 56 - s->fill);
  store_be32(s->buf + 56, (uint32_t)(bits >> 32));
  store_be32(s->buf + 60, (uint32_t)bits);
  compress(s->h, s->buf);
  for (i = 0; i < 8; i++) store_be32(out + 4 * i, s->h[i]);
  /* The buffer may hold the tail of the caller's data: leave none behind. */
  memset(s, 0, sizeof *s);
}

void nx_sha256(const void *data, size_t len, uint8_t out[32]) {
  nx_sha256_t s;
  nx_sha256_init(&s);
  nx_sha256_update(&s, data, len);
  nx_sha256_final(&s, out);
}

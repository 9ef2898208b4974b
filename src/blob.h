/* Blobs: immutable, reference-counted bytes. The compile cache hands them
 * out, and a worker keeps one while it reads it into a sandbox even if
 * another thread evicts it meanwhile. Header and payload are one
 * allocation, so the payload can never outlive its count. */
#ifndef NX_BLOB_H
#define NX_BLOB_H

#include <stddef.h>
#include <stdint.h>

typedef struct nx_blob_s {
  const uint8_t *data;
  size_t len;
  uint32_t refs; /* private: touch only through retain/release */
} nx_blob_t;

/* A blob of len bytes (to be filled through nx_blob_bytes) holding one
 * reference; NULL when memory ran out. */
nx_blob_t *nx_blob_new(size_t len);
uint8_t *nx_blob_bytes(nx_blob_t *b);
/* Both thread-safe; NULL ok. */
nx_blob_t *nx_blob_retain(nx_blob_t *b);
void nx_blob_release(nx_blob_t *b);

#endif

/* Refcounted immutable byte blobs (see blob.h). */
#include "blob.h"

#include <stdlib.h>

/* Header and payload in one allocation: one malloc per blob, and the
 * payload can never outlive its refcount. */
nx_blob_t *nx_blob_new(size_t len) {
  nx_blob_t *b;
  if (len > SIZE_MAX - sizeof *b) return NULL;
  b = malloc(sizeof *b + len);
  if (b == NULL) return NULL;
  b->data = (const uint8_t *)(b + 1);
  b->len = len;
  b->refs = 1;
  return b;
}

uint8_t *nx_blob_bytes(nx_blob_t *b) { return (uint8_t *)(b + 1); }

/* Taking a reference needs no ordering: the caller already holds one (or
 * the lock that protects the table's), so the blob cannot be freed under
 * it. Dropping one must publish our reads before a free elsewhere. */
nx_blob_t *nx_blob_retain(nx_blob_t *b) {
  if (b != NULL) __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
  return b;
}

void nx_blob_release(nx_blob_t *b) {
  if (b != NULL && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) free(b);
}

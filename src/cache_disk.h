/* The compile cache's directory: one file per key (magic, version, length,
 * SHA-256 of key and payload, payload), written to a temporary name and
 * renamed so that any number of processes can share it, checked on every
 * read, trimmed to a size by oldest mtime. Thread-safe. */
#ifndef NX_CACHE_DISK_H
#define NX_CACHE_DISK_H

#include <stddef.h>
#include <stdint.h>

#include "cache.h"

typedef struct nx_cache_disk_s nx_cache_disk_t;

typedef enum {
  NX_CACHE_DISK_ABSENT, /* no file, or none that could be read (EMFILE, ENOMEM, ...) */
  NX_CACHE_DISK_OK,
  NX_CACHE_DISK_REJECTED, /* a file that failed a check: removed */
} nx_cache_disk_status_t;

/* Creates dir (and its parents, mode 0700) when missing; it must be
 * writable. max_bytes 0: unbounded. NULL with a message in err. */
nx_cache_disk_t *nx_cache_disk_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen);
void nx_cache_disk_close(nx_cache_disk_t *d);
/* *out gets a new blob when the status is NX_CACHE_DISK_OK. */
nx_cache_disk_status_t nx_cache_disk_read(nx_cache_disk_t *d, const uint8_t key[32],
                                          nx_blob_t **out);
/* Writes key's file; a failure is counted, not reported (the memory copy
 * is still good). The write that takes the directory over its bound trims
 * it. */
void nx_cache_disk_store(nx_cache_disk_t *d, const uint8_t key[32], const uint8_t *data,
                         size_t len);
/* Fills the disk_* fields of out. */
void nx_cache_disk_stats(nx_cache_disk_t *d, nx_cache_stats_t *out);

#endif

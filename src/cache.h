/* Compile cache: handler bytecode (opaque blobs) by 32-byte key, held in a
 * memory LRU bounded by bytes and, optionally, in a directory shared by any
 * number of processes. Every function is safe to call from several threads
 * at once, except nx_cache_free. */
#ifndef NX_CACHE_H
#define NX_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "blob.h"

typedef struct nx_cache_s nx_cache_t;

typedef enum { NX_CACHE_MISS = 0, NX_CACHE_HIT_MEMORY, NX_CACHE_HIT_DISK } nx_cache_where_t;

typedef struct {
  uint64_t entries, bytes; /* memory cache now */
  uint64_t hits_memory, hits_disk, misses;
  uint64_t disk_writes, disk_rejected; /* files refused: corrupt, truncated, foreign */
  uint64_t disk_bytes;                 /* estimate of the directory's size */
  uint64_t evictions;                  /* entries dropped from memory for room */
  uint64_t disk_write_errors;          /* puts that stayed memory-only (ENOSPC, ...) */
  uint64_t disk_trims;                 /* trims run by this cache object */
} nx_cache_stats_t;

/* What one memory entry costs beyond its payload, counted against
 * max_memory_bytes: the entry (key, hash chain and LRU links: 64 bytes), the
 * blob header (24), the hash bucket slot at load factor 1 (8) and two malloc
 * chunk headers (16 each) come to 128. A fixed number rather than sizeof so
 * the budget means the same on every build. */
#define NX_CACHE_ENTRY_OVERHEAD 128u

/* Largest payload written to or read from disk. A foreign file claiming
 * more is rejected before anything is allocated. */
#define NX_CACHE_MAX_DISK_BLOB (64u * 1024u * 1024u)

/* File layout: magic, version (u32 LE), payload length (u64 LE),
 * SHA-256(key || payload), payload. */
#define NX_CACHE_MAGIC "NXBC"
#define NX_CACHE_FORMAT 1u
#define NX_CACHE_HEADER_LEN 48u

/* max_memory_bytes bounds payloads plus NX_CACHE_ENTRY_OVERHEAD each; 0
 * keeps nothing in memory (disk only). dir may be NULL (memory only); it is
 * created with its parents (mode 0700) when missing, and must be writable.
 * max_disk_bytes 0 means unlimited. Returns NULL with a message in err on
 * failure. */
nx_cache_t *nx_cache_new(uint64_t max_memory_bytes, const char *dir, uint64_t max_disk_bytes,
                         char *err, size_t errlen);
/* No other call may run concurrently. Blobs still referenced stay valid
 * until released. */
void nx_cache_free(nx_cache_t *c);

/* Memory first, then disk (a disk hit is promoted into memory). Returns a
 * new reference or NULL. *where (may be NULL) says what happened; it is
 * counted in the stats. */
nx_blob_t *nx_cache_get(nx_cache_t *c, const uint8_t key[32], nx_cache_where_t *where);
/* The memory copy only, not counted and not moved in the LRU: for reading
 * a handler in ahead of its execution (loader.c). A new reference or NULL. */
nx_blob_t *nx_cache_peek(nx_cache_t *c, const uint8_t key[32]);
/* What nx_cache_get counts and does for a memory hit, for an execution that
 * uses bytecode read ahead with nx_cache_peek. */
void nx_cache_touch(nx_cache_t *c, const uint8_t key[32]);
/* Stores a copy of data in memory (LRU eviction by bytes; an entry larger
 * than the whole budget is not kept in memory) and, when a dir is set, on
 * disk. A failed disk write is counted, not reported: the blob is still
 * good. Returns a new reference to the stored blob, or NULL on allocation
 * failure. */
nx_blob_t *nx_cache_put(nx_cache_t *c, const uint8_t key[32], const uint8_t *data, size_t len);

void nx_cache_stats(nx_cache_t *c, nx_cache_stats_t *out);

#endif

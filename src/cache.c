/* Compile cache (see cache.h): refcounted blobs and the memory LRU; the
 * directory is cache_disk.c's. The mutex guards the table, the LRU list and
 * the memory stats only; file I/O always runs with it released. */
#include "cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blob.h"
#include "cache_disk.h"
#include "list.h"

#define NX_INITIAL_BUCKETS 64u

typedef struct nx_entry_s {
  uint8_t key[32];
  nx_blob_t *blob;          /* the table's own reference */
  struct nx_entry_s *chain; /* next in the bucket */
  nx_link_t lru;            /* newest first */
} nx_entry_t;

struct nx_cache_s {
  pthread_mutex_t lock;
  nx_entry_t **buckets;
  size_t nbuckets; /* power of two */
  nx_link_t lru;
  uint64_t max_memory;
  nx_cache_disk_t *disk; /* NULL: memory only */
  nx_cache_stats_t stats;
};

/* ---- memory LRU (all under c->lock) ------------------------------------ */

static uint64_t entry_cost(size_t len) { return (uint64_t)len + NX_CACHE_ENTRY_OVERHEAD; }

static int fits_in_memory(const nx_cache_t *c, size_t len) {
  return c->max_memory >= NX_CACHE_ENTRY_OVERHEAD &&
         (uint64_t)len <= c->max_memory - NX_CACHE_ENTRY_OVERHEAD;
}

/* Keys are SHA-256 digests, uniformly random already: their first eight
 * bytes are as good a hash as any function of them. */
static nx_entry_t **find_slot(nx_cache_t *c, const uint8_t key[32]) {
  uint64_t h;
  nx_entry_t **pp;
  memcpy(&h, key, sizeof h);
  pp = &c->buckets[h & (c->nbuckets - 1)];
  while (*pp != NULL && memcmp((*pp)->key, key, 32) != 0) pp = &(*pp)->chain;
  return pp;
}

static nx_entry_t *oldest(const nx_cache_t *c) {
  nx_link_t *l = nx_list_last(&c->lru);
  return l ? NX_LIST_ENTRY(l, nx_entry_t, lru) : NULL;
}

/* Unlinks e from the table and the list and puts it on *dead, to be freed
 * once the lock is released. */
static void drop_locked(nx_cache_t *c, nx_entry_t *e, nx_entry_t **dead) {
  nx_entry_t **pp = find_slot(c, e->key);
  *pp = e->chain;
  nx_list_remove(&e->lru);
  c->stats.entries--;
  c->stats.bytes -= entry_cost(e->blob->len);
  e->chain = *dead;
  *dead = e;
}

/* Load factor 1. A failed allocation keeps the old table: chains grow
 * longer but every lookup still works. */
static void grow_locked(nx_cache_t *c) {
  size_t n = c->nbuckets * 2, i;
  nx_entry_t **nb;
  if (c->stats.entries <= c->nbuckets || n < c->nbuckets) return;
  nb = calloc(n, sizeof *nb);
  if (nb == NULL) return;
  for (i = 0; i < c->nbuckets; i++) {
    nx_entry_t *e = c->buckets[i], *next;
    for (; e != NULL; e = next) {
      uint64_t h;
      next = e->chain;
      memcpy(&h, e->key, sizeof h);
      e->chain = nb[h & (n - 1)];
      nb[h & (n - 1)] = e;
    }
  }
  free(c->buckets);
  c->buckets = nb;
  c->nbuckets = n;
}

/* Links e (which must fit the budget) as the newest entry, replacing any
 * entry with its key, then evicts from the old end until the budget holds.
 * e itself is never evicted: alone it fits. */
static void insert_locked(nx_cache_t *c, nx_entry_t *e, nx_entry_t **dead) {
  nx_entry_t *old = *find_slot(c, e->key);
  nx_entry_t **pp;
  if (old != NULL) drop_locked(c, old, dead);
  pp = find_slot(c, e->key);
  e->chain = NULL;
  *pp = e;
  nx_list_push_front(&c->lru, &e->lru);
  c->stats.entries++;
  c->stats.bytes += entry_cost(e->blob->len);
  while (c->stats.bytes > c->max_memory && oldest(c) != e) {
    drop_locked(c, oldest(c), dead);
    c->stats.evictions++;
  }
  grow_locked(c);
}

static nx_entry_t *entry_new(const uint8_t key[32], nx_blob_t *b) {
  nx_entry_t *e = calloc(1, sizeof *e);
  if (e == NULL) return NULL;
  nx_list_init(&e->lru);
  memcpy(e->key, key, 32);
  e->blob = nx_blob_retain(b);
  return e;
}

static void free_entries(nx_entry_t *e) {
  nx_entry_t *next;
  for (; e != NULL; e = next) {
    next = e->chain;
    nx_blob_release(e->blob);
    free(e);
  }
}

/* ---- public ------------------------------------------------------------- */

nx_cache_t *nx_cache_new(uint64_t max_memory_bytes, const char *dir, uint64_t max_disk_bytes,
                         char *err, size_t errlen) {
  nx_cache_t *c = calloc(1, sizeof *c);
  if (c == NULL) goto oom;
  nx_list_init(&c->lru);
  c->max_memory = max_memory_bytes;
  c->nbuckets = NX_INITIAL_BUCKETS;
  c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
  if (c->buckets == NULL || pthread_mutex_init(&c->lock, NULL) != 0) goto oom;
  if (dir != NULL && (c->disk = nx_cache_disk_open(dir, max_disk_bytes, err, errlen)) == NULL) {
    pthread_mutex_destroy(&c->lock);
    goto fail;
  }
  return c;
oom:
  if (err && errlen) snprintf(err, errlen, "out of memory");
fail:
  if (c) free(c->buckets);
  free(c);
  return NULL;
}

void nx_cache_free(nx_cache_t *c) {
  nx_link_t *l;
  if (c == NULL) return;
  while ((l = nx_list_first(&c->lru)) != NULL) {
    nx_entry_t *e = NX_LIST_ENTRY(l, nx_entry_t, lru);
    nx_list_remove(l);
    nx_blob_release(e->blob);
    free(e);
  }
  free(c->buckets);
  nx_cache_disk_close(c->disk);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

nx_blob_t *nx_cache_peek(nx_cache_t *c, const uint8_t key[32]) {
  nx_entry_t *e;
  nx_blob_t *b = NULL;
  pthread_mutex_lock(&c->lock);
  e = *find_slot(c, key);
  if (e != NULL) b = nx_blob_retain(e->blob);
  pthread_mutex_unlock(&c->lock);
  return b;
}

void nx_cache_touch(nx_cache_t *c, const uint8_t key[32]) {
  nx_entry_t *e;
  pthread_mutex_lock(&c->lock);
  e = *find_slot(c, key);
  if (e != NULL) {
    nx_list_remove(&e->lru);
    nx_list_push_front(&c->lru, &e->lru);
  }
  c->stats.hits_memory++; /* it was in memory when it was read */
  pthread_mutex_unlock(&c->lock);
}

nx_blob_t *nx_cache_get(nx_cache_t *c, const uint8_t key[32], nx_cache_where_t *where) {
  nx_cache_where_t found = NX_CACHE_MISS;
  nx_entry_t *e, *dead = NULL, *fresh = NULL;
  nx_blob_t *b = NULL;

  pthread_mutex_lock(&c->lock);
  e = *find_slot(c, key);
  if (e != NULL) {
    nx_list_remove(&e->lru);
    nx_list_push_front(&c->lru, &e->lru);
    b = nx_blob_retain(e->blob);
    found = NX_CACHE_HIT_MEMORY;
    c->stats.hits_memory++;
  } else if (c->disk == NULL) {
    c->stats.misses++;
  }
  pthread_mutex_unlock(&c->lock);
  if (b != NULL || c->disk == NULL) goto done;

  nx_cache_disk_read(c->disk, key, &b);
  /* Allocated before locking; without it the hit is served unpromoted. */
  if (b != NULL && fits_in_memory(c, b->len)) fresh = entry_new(key, b);
  pthread_mutex_lock(&c->lock);
  if (b != NULL) {
    found = NX_CACHE_HIT_DISK;
    c->stats.hits_disk++;
    /* A put that raced us holds the same bytes, and is newer: keep it. */
    if (fresh != NULL && *find_slot(c, key) == NULL) {
      insert_locked(c, fresh, &dead);
      fresh = NULL;
    }
  } else {
    c->stats.misses++;
  }
  pthread_mutex_unlock(&c->lock);
  free_entries(dead);
  free_entries(fresh);

done:
  if (where != NULL) *where = found;
  return b;
}

nx_blob_t *nx_cache_put(nx_cache_t *c, const uint8_t key[32], const uint8_t *data, size_t len) {
  nx_blob_t *b = nx_blob_new(len);
  nx_entry_t *e = NULL, *dead = NULL;

  if (b == NULL) goto fail;
  if (len > 0) memcpy(nx_blob_bytes(b), data, len);
  if (fits_in_memory(c, len)) {
    e = entry_new(key, b);
    if (e == NULL) goto fail;
    pthread_mutex_lock(&c->lock);
    insert_locked(c, e, &dead);
    pthread_mutex_unlock(&c->lock);
    free_entries(dead);
  }
  if (c->disk) nx_cache_disk_store(c->disk, key, b->data, b->len);
  return b;

fail:
  nx_blob_release(b);
  return NULL;
}

void nx_cache_stats(nx_cache_t *c, nx_cache_stats_t *out) {
  pthread_mutex_lock(&c->lock);
  *out = c->stats;
  pthread_mutex_unlock(&c->lock);
  if (c->disk) nx_cache_disk_stats(c->disk, out);
}

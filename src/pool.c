/* Instance pool bookkeeping (see pool.h). LIFO reuse keeps the most recently
 * touched linear memory, which is the one most likely still in cache. */
#include "pool.h"

#include <stdlib.h>

int nx_pool_init(nx_pool_t *pool, uint32_t max) {
  pool->idle = calloc(max ? max : 1, sizeof *pool->idle);
  pool->nidle = pool->live = 0;
  pool->max = max;
  pool->memory = 0;
  return pool->idle ? 0 : -1;
}

void nx_pool_destroy(nx_pool_t *pool) {
  while (pool->nidle) nx_sandbox_free(pool->idle[--pool->nidle]);
  free(pool->idle);
  pool->idle = NULL;
  pool->live = 0;
  pool->memory = 0;
}

nx_sandbox_t *nx_pool_take(nx_pool_t *pool) {
  return pool->nidle ? pool->idle[--pool->nidle] : NULL;
}

int nx_pool_reserve(nx_pool_t *pool) {
  if (pool->live >= pool->max) return 0;
  pool->live++;
  return 1;
}

void nx_pool_unreserve(nx_pool_t *pool) { pool->live--; }

void nx_pool_put(nx_pool_t *pool, nx_sandbox_t *sb, uint64_t memory_before,
                 nx_sandbox_t **discard) {
  uint64_t now = nx_sandbox_memory_bytes(sb);
  *discard = NULL;
  pool->memory = pool->memory + now - memory_before;
  /* Over the bound when a resumed execution brought its sandbox back
   * while new ones took its place. */
  if (sb->broken || pool->live > pool->max) {
    pool->live--;
    pool->memory -= now;
    *discard = sb;
    return;
  }
  pool->idle[pool->nidle++] = sb;
}

int nx_pool_available(const nx_pool_t *pool) { return pool->nidle > 0 || pool->live < pool->max; }

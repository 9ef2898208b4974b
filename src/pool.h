/* The instance pool: idle sandboxes ready for reuse and the count of live
 * ones, bounded by maxInstances. Not thread-safe by itself: the runtime
 * calls it under its lock, so taking a job and an instance is one step. */
#ifndef NX_POOL_H
#define NX_POOL_H

#include <stdint.h>

#include "sandbox.h"

typedef struct {
  nx_sandbox_t **idle;
  uint32_t nidle;
  uint32_t live; /* idle + executing + being created */
  uint32_t max;
  uint64_t memory; /* linear memory of live sandboxes, bytes */
} nx_pool_t;

int nx_pool_init(nx_pool_t *pool, uint32_t max);
/* Frees the idle sandboxes; executing ones must have been returned. */
void nx_pool_destroy(nx_pool_t *pool);

/* An idle sandbox (most recently used first), or NULL. */
nx_sandbox_t *nx_pool_take(nx_pool_t *pool);
/* Reserves room for one new sandbox; 0 when the pool is full. */
int nx_pool_reserve(nx_pool_t *pool);
/* Gives back a reservation whose sandbox could not be created. */
void nx_pool_unreserve(nx_pool_t *pool);
/* Returns a sandbox after use. Broken sandboxes are dropped from the count
 * and handed back through *discard for the caller to free unlocked. */
void nx_pool_put(nx_pool_t *pool, nx_sandbox_t *sb, uint64_t memory_before, nx_sandbox_t **discard);
int nx_pool_available(const nx_pool_t *pool);

#endif

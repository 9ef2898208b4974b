/* The runtime: worker threads of our own (never libuv's pool, never the JS
 * thread), a FIFO queue of jobs, the instance pool, and counters. Jobs
 * complete through a callback on the worker thread. */
#ifndef NX_RUNTIME_H
#define NX_RUNTIME_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "engine.h"
#include "pool.h"

typedef struct nx_job_s {
  struct nx_job_s *next;
  char *code;
  size_t code_len;
  uint8_t *context;
  size_t context_len;
  uint32_t timeout_ms;
  char *result; /* MessagePack WasmResult, malloc'd */
  size_t result_len;
  nx_exec_outcome_t outcome;
  void *data; /* the caller's (the addon keeps its napi_deferred here) */
} nx_job_t;

typedef void (*nx_job_done_cb)(nx_job_t *job, void *arg);

typedef struct {
  uint64_t total;
  uint64_t by_code[NX_E__COUNT]; /* [NX_OK] = successes */
  uint64_t duration_us_sum;
  uint32_t active;
  uint32_t idle;
  uint32_t live;
  uint32_t queued;
  uint32_t workers;
  uint64_t memory;
} nx_stats_t;

typedef struct nx_runtime_s nx_runtime_t;

nx_runtime_t *nx_runtime_start(const nx_config_t *cfg, nx_job_done_cb done,
                               void *arg, char *err, size_t errlen);
/* Queues a job; -1 when the runtime is stopping. */
int nx_runtime_submit(nx_runtime_t *rt, nx_job_t *job);
/* Interrupts running handlers at their next interrupt check. */
void nx_runtime_cancel(nx_runtime_t *rt);
/* Joins the workers and frees everything; queued jobs are completed with an
 * error first. Call once. */
void nx_runtime_stop(nx_runtime_t *rt);
void nx_runtime_stats(nx_runtime_t *rt, nx_stats_t *out);
void nx_job_free(nx_job_t *job);

#endif

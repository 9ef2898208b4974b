/* The runtime: worker threads of our own (never libuv's pool, never the JS
 * thread), a FIFO queue of new executions, a queue of resumes, the pool of
 * sandboxes, the suspended executions, a watchdog and the counters. Jobs
 * complete through a callback on the worker thread. */
#ifndef NX_RUNTIME_H
#define NX_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "engine.h"

typedef enum {
  NX_JOB_EXECUTE, /* start an execution of `code` (see `mode`) */
  NX_JOB_RESUME,  /* answer pending calls of `task` and continue it */
  NX_JOB_IMPORT,  /* park the execution in `context` (bytes from an export) */
} nx_job_kind_t;

struct nx_task_s;

typedef struct nx_job_s {
  struct nx_job_s *next;
  nx_job_kind_t kind;
  nx_exec_mode_t mode;
  char *code;
  size_t code_len;
  nx_lang_t lang; /* a source's language (TypeScript: stripped on the host) */
  uint8_t *context;
  size_t context_len;
  uint32_t timeout_ms;
  struct nx_task_s *task; /* resume */
  nx_answer_t *answers;   /* resume: .call filled in by nx_runtime_resume */
  uint32_t nanswers;
  uint8_t *answer_bytes; /* the answers point into these */
  char *result;          /* MessagePack WasmResult, malloc'd */
  size_t result_len;
  nx_exec_outcome_t outcome;
  /* When set, the caller's promise is rejected with an Error carrying this
   * code instead of resolving with a result. */
  const char *reject_code;
  char reject_message[160];
  struct nx_batch_s *batch; /* the caller's batch, if any */
  void *data;               /* the caller's (the addon keeps its promise here) */
} nx_job_t;

typedef void (*nx_job_done_cb)(nx_job_t *job, void *arg);

typedef struct {
  uint64_t total; /* results of any status */
  uint64_t by_status[NX_STATUS__COUNT];
  uint64_t by_code[NX_E__COUNT]; /* [NX_OK] = results that were not errors */
  uint64_t duration_us_sum;
  uint32_t active;
  uint32_t idle;
  uint32_t live;
  uint32_t queued;
  uint32_t workers;
  uint32_t suspended; /* parked now */
  uint64_t memory;    /* linear memory of live and parked sandboxes */
  uint64_t cache_entries, cache_bytes, cache_hits, cache_misses;
  uint64_t snapshot_bytes;
  uint64_t snapshot_create_us;                 /* fresh instance + QuickJS init + image */
  uint64_t resets, reset_ns_sum;               /* sandboxes put back to the image */
  uint64_t instantiations, instantiate_ns_sum; /* sandboxes made from the image */
  uint32_t memory_check;                       /* NX_MEMORY_CHECK_*: what the sandboxes use */
} nx_stats_t;

typedef struct nx_runtime_s nx_runtime_t;

/* NULL with a message in err when the runtime cannot start. */
nx_runtime_t *nx_runtime_start(const nx_config_t *cfg, nx_job_done_cb done, void *arg, char *err,
                               size_t errlen);
/* Queues a job; NX_RC_STOPPING when the runtime is stopping. */
int nx_runtime_submit(nx_runtime_t *rt, nx_job_t *job);
/* Queues n jobs in one hand-off (one lock, one wake-up); all or none. */
int nx_runtime_submit_many(nx_runtime_t *rt, nx_job_t **jobs, uint32_t n);

/* Claims the pending calls named by `ids` (all of one execution) for a
 * resume job whose answers are filled in, and queues it. Nothing is claimed
 * unless every id is found: NX_RC_NOTFOUND (unknown, expired, answered or
 * discarded; or the same call twice), NX_RC_INVALID (ids of different
 * executions), NX_RC_STOPPING. */
int nx_runtime_resume(nx_runtime_t *rt, nx_job_t *job,
                      const uint8_t (*ids)[NX_SUSPENSION_ID_BYTES]);
/* Writes the parked execution owning `id` into *out (malloc'd bytes,
 * portable.h) on the calling thread and releases it: from here on no id
 * of it is found, and a worker resets its sandbox. A failed export leaves
 * it parked as it was. 0, NX_RC_NOTFOUND (unknown, or a segment of it is
 * running), NX_RC_STOPPING, NX_RC_NOMEM. */
int nx_runtime_export(nx_runtime_t *rt, const uint8_t *id, char **out, size_t *out_len);
/* Parks the execution in `bytes` (from an export) on the calling thread,
 * in an idle sandbox: *result is its suspended result (malloc'd: the
 * pending calls, no effects). NX_RC_NOTFOUND when no sandbox is idle (then
 * queue the import with nx_runtime_import); NX_RC_STOPPING; any other
 * failure sets *reject, the code to reject with (INVALID_SUSPENSION: the
 * bytes, or ids parked here already; RESOURCE_LIMIT: maxSuspended;
 * SHUT_DOWN; INTERNAL_ERROR: out of memory), and `why`. */
int nx_runtime_import_now(nx_runtime_t *rt, const uint8_t *bytes, size_t len, char **result,
                          size_t *result_len, const char **reject, char *why, size_t whylen);
/* The same as a job a worker runs once a sandbox is free: job->context
 * holds the bytes (owned by the job from here). A refusal rejects the job
 * with the code above. NX_RC_STOPPING. */
int nx_runtime_import(nx_runtime_t *rt, nx_job_t *job);
/* One suspension id of each parked execution (malloc'd, *n of them; NULL
 * with *n = 0 when none or out of memory). */
uint8_t (*nx_runtime_parked_ids(nx_runtime_t *rt, uint32_t *n))[NX_SUSPENSION_ID_BYTES];
/* The SHA-256 of the snapshot image: part of the build id exports carry. */
void nx_runtime_image_sha256(nx_runtime_t *rt, uint8_t out[32]);
/* Discards the execution owning `id`: at once when parked, at the end of
 * its running segment otherwise. 1 when there was one, else 0. */
int nx_runtime_cancel_suspended(nx_runtime_t *rt, const uint8_t *id);

/* Begins shutdown: executions not yet started end with an error result at
 * once, running ones finish, and none parks any more (a suspension ends
 * with an error result instead). */
void nx_runtime_close(nx_runtime_t *rt);
/* Interrupts running handlers at their next interrupt check. */
void nx_runtime_cancel(nx_runtime_t *rt);
/* Joins the workers and frees everything; queued jobs are completed with an
 * error first and parked executions are discarded. Call once. */
void nx_runtime_stop(nx_runtime_t *rt);
void nx_runtime_stats(nx_runtime_t *rt, nx_stats_t *out);

/* Test hook: the next execution to start (on any thread) makes its sandbox
 * fault (NX_ENGINE_FAULT_*) before it runs the handler. NX_RC_INVALID for
 * a stack overflow without guard pages, which would end the process. */
int nx_runtime_inject_fault(nx_runtime_t *rt, uint32_t kind);
/* Prometheus text exposition (malloc'd), or NULL on allocation failure. */
char *nx_runtime_prometheus(nx_runtime_t *rt, size_t *len);
void nx_job_free(nx_job_t *job);

#endif

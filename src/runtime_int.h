/* The runtime's internals, shared by runtime.c (the public calls) and
 * worker.c (the threads that run jobs). Everything below `lock` is guarded
 * by it unless its comment says otherwise. No other lock is taken while it
 * is held: results go to lock-free metric counters, and the watchdog's,
 * the compile cache's and the metric series' locks are taken without it. */
#ifndef NX_RUNTIME_INT_H
#define NX_RUNTIME_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine.h"
#include "list.h"
#include "metrics.h"
#include "pool.h"
#include "result.h"
#include "runtime.h"
#include "snapshot.h"
#include "suspend.h"
#include "watchdog.h"

typedef struct {
  struct nx_runtime_s *rt;
  uint32_t index; /* its watchdog slot */
} nx_worker_t;

/* executeHandlerSync's sandboxes (sync.c): run on the calling thread, reset
 * by a worker afterwards, outside the pool and its maxInstances. Enough
 * that back-to-back calls find a clean one while a worker still resets
 * the ones used before. */
#define NX_SYNC_SANDBOXES 4
typedef enum {
  NX_SYNC_NONE,      /* no sandbox yet */
  NX_SYNC_CLEAN,     /* pristine, ready */
  NX_SYNC_BUSY,      /* a caller runs in it (or creates it) */
  NX_SYNC_DIRTY,     /* waiting for a worker to reset it */
  NX_SYNC_RESETTING, /* a worker resets it now */
} nx_sync_state_t;

typedef struct {
  nx_sandbox_t *sb;
  nx_sync_state_t state;
} nx_sync_slot_t;

struct nx_runtime_s {
  nx_config_t cfg;         /* read-only after start */
  nx_engine_t engine;      /* read-only after start: tag, compile cache */
  nx_snapshot_t *snap;     /* the image every sandbox starts from */
  nx_metrics_t *metrics;   /* has its own lock */
  nx_watchdog_t *watchdog; /* has its own locks */
  nx_job_done_cb done;
  void *done_arg;
  pthread_t *threads;
  nx_worker_t *workers;
  uint32_t nthreads;

  /* Read without the lock by workers polling for work (see worker.c):
   * jobs and cancelled tasks waiting, and the stop flag. */
  _Atomic uint32_t work;
  _Atomic uint32_t spinning; /* workers polling now: submitters skip the wake */
  _Atomic int stopping;
  _Atomic int cancel;          /* every sandbox's interrupt check reads it */
  _Atomic uint32_t fault_next; /* engine.fault_next points here (test hook) */

  pthread_mutex_t lock;
  pthread_cond_t cond;     /* on CLOCK_MONOTONIC, for parking deadlines */
  nx_job_t *head, *tail;   /* new executions */
  nx_job_t *rhead, *rtail; /* resumes */
  uint32_t queued;
  nx_link_t cancelled; /* tasks unparked by cancelSuspended, to retire */
  nx_pool_t pool;
  nx_susp_t susp;      /* suspension ids, parked tasks */
  uint32_t nsuspended; /* tasks between their first park and their end */
  uint64_t parked_memory;
  uint32_t resetting; /* sandboxes between their last result and the pool */
  int closing;        /* shutdown() began: no new starts, no new parking */
  nx_sync_slot_t sync[NX_SYNC_SANDBOXES];
  pthread_cond_t sync_cond; /* a sync sandbox came back from its reset */
  nx_stats_t stats;         /* the runtime's own fields; results are in metrics */
};

/* The helpers runtime.c and worker.c share, here so that neither calls
 * the other: runtime.c starts the workers, and that is all. */

static inline void nx_runtime_fail_job(nx_job_t *job, nx_error_code_t code, const char *message) {
  free(job->result);
  if (nx_result_error(code, message, &job->result, &job->result_len) != 0) {
    job->result = NULL;
    job->result_len = 0;
  }
  job->outcome.status = NX_STATUS_ERROR;
  job->outcome.code = code;
}

static inline void nx_runtime_reject_job(nx_job_t *job, const char *code, const char *message) {
  free(job->result);
  job->result = NULL;
  job->result_len = 0;
  job->reject_code = code;
  snprintf(job->reject_message, sizeof job->reject_message, "%s", message);
}

/* Counts a job's result (lock-free metrics) and hands the job to the
 * caller. Called under the lock on purpose: the completion callback posts
 * to a threadsafe function whose queue is unbounded
 * (napi_call_threadsafe_function never blocks on it), and posting under the
 * lock keeps completions in queue order when the pool serialises
 * executions. */
static inline void nx_runtime_complete(nx_runtime_t *rt, nx_job_t *job) {
  /* Exports and imports move executions; they are not results. */
  if (job->reject_code == NULL && (job->kind == NX_JOB_EXECUTE || job->kind == NX_JOB_RESUME))
    nx_metrics_record_result(rt->metrics, job->outcome.status, job->outcome.code,
                             job->outcome.duration_us);
  rt->done(job, rt->done_arg); /* the job belongs to the caller from here */
}

/* Frees a task and its execution (the sandbox is not touched). */
static inline void nx_runtime_task_free(nx_task_t *task) {
  nx_engine_exec_free(task->exec);
  free(task);
}

/* A task's sandbox counts as live again: it is about to run or be dropped. */
static inline void nx_runtime_unpark(nx_runtime_t *rt, nx_task_t *task) {
  nx_susp_unpark(&rt->susp, task);
  rt->parked_memory -= task->parked_bytes;
  rt->pool.memory += task->parked_bytes;
  rt->pool.live++;
}

/* Wakes a worker for new work unless one is polling for it. */
static inline void nx_runtime_signal_work(nx_runtime_t *rt) {
  atomic_fetch_add(&rt->work, 1);
  if (atomic_load(&rt->spinning) == 0) pthread_cond_signal(&rt->cond);
}

/* Queues a resume; wakes a worker unless one is polling. */
static inline void nx_runtime_push_resume(nx_runtime_t *rt, nx_job_t *job) {
  job->next = NULL;
  if (rt->rtail)
    rt->rtail->next = job;
  else
    rt->rhead = job;
  rt->rtail = job;
  nx_runtime_signal_work(rt);
}

/* task.c: what becomes of a task after a segment (any thread). */
/* Reads in the handler the sandbox ran last, after a reset; -1 when the
 * sandbox must be reset again and could not be. */
int nx_task_preload(nx_runtime_t *rt, nx_sandbox_t *sb);
/* Frees a task that is over, completes `job` (may be NULL), fails
 * `waiters`, and gives its sandbox back to the pool once reset. */
void nx_task_retire(nx_runtime_t *rt, nx_task_t *task, nx_job_t *job, nx_job_t *waiters);
/* Under the lock: why the task cannot park (and its error code), or NULL
 * when it can: then its ids are published. Two of the reasons, by name: */
#define NX_TASK_IDS_PARKED "its suspension ids are parked here already"
#define NX_TASK_NOMEM "host out of memory while suspending"
const char *nx_task_cannot_park(nx_runtime_t *rt, nx_task_t *task, nx_error_code_t *code, char *msg,
                                size_t len);
/* Under the lock: parks it until deadline_ns, its sandbox (`bytes` of
 * memory) out of the pool's count. */
void nx_task_park(nx_runtime_t *rt, nx_task_t *task, uint64_t bytes, uint64_t deadline_ns);

/* transfer.c: an import job, on the worker that took `sb` for it. */
void nx_transfer_run_import(nx_runtime_t *rt, nx_job_t *job, nx_sandbox_t *sb, uint64_t before);

/* worker.c: a worker thread's main loop. */
void *nx_worker_main(void *arg);
/* A segment's host calls and compile-cache outcome, into the metrics (the
 * sync path records its segments with it too). */
void nx_worker_record_calls(nx_runtime_t *rt, const nx_exec_outcome_t *o);

#endif

/* The end of a task's segment, whichever thread ran it (workers, or the
 * caller's for an import): parking it with its sandbox, or retiring it
 * (freed, its sandbox reset to the image and back in the pool). */
#include <stdio.h>
#include <stdlib.h>

#include "loader.h"
#include "runtime_int.h"
#include "util.h"

/* After a reset, reads in the handler the sandbox ran last (loader.h), off
 * the next caller's latency. A preload that failed badly or grew the
 * memory is undone by another reset: the pool hands out sandboxes of the
 * snapshot's size. -1 when the sandbox cannot be reset. */
int nx_task_preload(nx_runtime_t *rt, nx_sandbox_t *sb) {
  nx_loader_preload(sb, &rt->engine);
  if (sb->broken || nx_sandbox_memory_bytes(sb) != nx_snap_size(rt->snap))
    return nx_snap_reset(rt->snap, sb);
  return 0;
}

static void fail_waiters(nx_runtime_t *rt, nx_job_t *w, const char *why) {
  while (w) {
    nx_job_t *next = w->next;
    nx_runtime_reject_job(w, "SUSPENSION_NOT_FOUND", why);
    nx_runtime_complete(rt, w);
    w = next;
  }
}

/* Frees a task that is over, completes `job` (may be NULL), fails
 * `waiters`, and gives the sandbox back to the pool once it is reset. The
 * reset runs after the completion is posted, off the caller's latency; the
 * sandbox counts as available meanwhile, and nothing can start on it before
 * it is back in the pool, so completions still come in queue order. */
void nx_task_retire(nx_runtime_t *rt, nx_task_t *task, nx_job_t *job, nx_job_t *waiters) {
  nx_sandbox_t *sb = nx_engine_sandbox(task->exec), *discard = NULL;
  uint64_t t0, before = nx_sandbox_memory_bytes(sb); /* what the pool counts */
  nx_runtime_task_free(task);
  pthread_mutex_lock(&rt->lock);
  rt->resetting++;
  if (job) nx_runtime_complete(rt, job);
  fail_waiters(rt, waiters, "The execution ended before this call was answered");
  pthread_mutex_unlock(&rt->lock);
  /* Whatever the handler did, even a trap mid-operation, is undone here:
   * the next execution on this sandbox starts from the pristine image. */
  t0 = nx_util_now_ns();
  if (nx_snap_reset(rt->snap, sb) != 0) sb->broken = 1;
  t0 = nx_util_now_ns() - t0;
  if (!sb->broken && nx_task_preload(rt, sb) != 0) sb->broken = 1;
  pthread_mutex_lock(&rt->lock);
  rt->stats.resets++;
  rt->stats.reset_ns_sum += t0;
  rt->resetting--;
  nx_pool_put(&rt->pool, sb, before, &discard);
  pthread_cond_broadcast(&rt->cond);
  pthread_mutex_unlock(&rt->lock);
  nx_sandbox_free(discard);
}

/* Why a suspended task cannot park (under the lock); NULL when it can. */
const char *nx_task_cannot_park(nx_runtime_t *rt, nx_task_t *task, nx_error_code_t *code, char *msg,
                                size_t len) {
  *code = NX_E_INTERNAL_ERROR;
  if (atomic_load(&rt->stopping) || rt->closing)
    return "The runtime shut down while the handler was suspended";
  if (task->doomed) return "The execution was cancelled while it ran";
  if (!task->counted && rt->nsuspended >= rt->cfg.max_suspended) {
    *code = NX_E_RESOURCE_LIMIT;
    snprintf(msg, len, "Too many suspended executions (maxSuspended is %llu)",
             (unsigned long long)rt->cfg.max_suspended);
    return msg;
  }
  switch (nx_susp_publish(&rt->susp, task)) {
    case NX_RC_OK: return NULL;
    case NX_RC_INVALID: return NX_TASK_IDS_PARKED;
    default: return NX_TASK_NOMEM;
  }
}

/* Parks a suspended task with its sandbox, out of the pool's live count,
 * until deadline_ns, and hands over a resume that arrived while its
 * segment ran. */
void nx_task_park(nx_runtime_t *rt, nx_task_t *task, uint64_t bytes, uint64_t deadline_ns) {
  if (!task->counted) {
    task->counted = 1;
    rt->nsuspended++;
  }
  rt->pool.live--;
  rt->pool.memory -= bytes;
  task->parked_bytes = bytes;
  rt->parked_memory += bytes;
  nx_susp_park(&rt->susp, task, deadline_ns);
  if (task->waiters) {
    nx_job_t *w = task->waiters;
    task->waiters = w->next;
    nx_runtime_unpark(rt, task);
    nx_runtime_push_resume(rt, w);
  }
}

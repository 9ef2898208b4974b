/* Worker threads (see runtime_int.h): each takes resumes first, then the
 * oldest new execution once it can also get a sandbox, so waiting
 * executions start strictly first in, first out. A segment runs without
 * the lock; whether it parks (suspended) or is over is decided under it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loader.h"
#include "portable.h"
#include "runtime_int.h"
#include "util.h"
#include "wasm_rt/nx_wasm.h"

/* Waking a sleeping thread costs tens of microseconds, more than a trivial
 * handler runs. A worker that just finished polls for work for a short
 * while before it sleeps, so back-to-back executions skip the wake-up. */
#define NX_SPIN_NS 50000u

/* After a reset, reads in the handler the sandbox ran last (loader.h), off
 * the next caller's latency. A preload that failed badly or grew the
 * memory is undone by another reset: the pool hands out sandboxes of the
 * snapshot's size. -1 when the sandbox cannot be reset. */
static int preload(nx_runtime_t *rt, nx_sandbox_t *sb) {
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
static void retire(nx_runtime_t *rt, nx_task_t *task, nx_job_t *job, nx_job_t *waiters) {
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
  if (!sb->broken && preload(rt, sb) != 0) sb->broken = 1;
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
static const char *cannot_park(nx_runtime_t *rt, nx_task_t *task, nx_error_code_t *code, char *msg,
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
  if (nx_susp_publish(&rt->susp, task) != 0) return "host out of memory while suspending";
  return NULL;
}

/* Parks a suspended task with its sandbox, out of the pool's live count,
 * until deadline_ns, and hands over a resume that arrived while its
 * segment ran. */
static void park(nx_runtime_t *rt, nx_task_t *task, uint64_t bytes, uint64_t deadline_ns) {
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

/* Host calls and the compile-cache outcome of the segment just run, into
 * the metrics (their series table has a lock of its own: not under ours). */
void nx_worker_record_calls(nx_runtime_t *rt, const nx_exec_outcome_t *o) {
  uint32_t i;
  for (i = 0; i < o->ncounts; i++)
    if (o->counts[i].count)
      nx_metrics_record_hostcall(rt->metrics, o->counts[i].name, strlen(o->counts[i].name),
                                 o->counts[i].count);
  if (o->cache >= 0) nx_metrics_record_cache(rt->metrics, o->cache);
}

/* Runs one segment of a task and decides, under the lock, whether it parks
 * or is over. `before`: the sandbox memory the pool accounts for already. */
static void run_segment(nx_worker_t *self, nx_job_t *job, nx_task_t *task, uint64_t before) {
  nx_runtime_t *rt = self->rt;
  nx_sandbox_t *sb = nx_engine_sandbox(task->exec);
  nx_error_code_t end = NX_OK;
  char msg[160];
  const char *why = NULL;
  nx_job_t *waiters;
  uint64_t now;

  nx_watchdog_watch(rt->watchdog, self->index, sb);
  if (nx_engine_run(task->exec, job->answers, job->nanswers, &job->result, &job->result_len,
                    &job->outcome) != 0)
    nx_runtime_fail_job(job, NX_E_INTERNAL_ERROR, "could not build the result");
  nx_watchdog_watch(rt->watchdog, self->index, NULL);
  now = nx_sandbox_memory_bytes(sb);
  nx_worker_record_calls(rt, &job->outcome);

  pthread_mutex_lock(&rt->lock);
  rt->pool.memory += now - before;
  rt->stats.active--;
  if (job->outcome.status == NX_STATUS_SUSPENDED) {
    why = cannot_park(rt, task, &end, msg, sizeof msg);
    if (why == NULL) {
      park(rt, task, now, nx_util_now_ns() + rt->cfg.suspension_timeout_ms * UINT64_C(1000000));
      nx_runtime_complete(rt, job);
      pthread_cond_broadcast(&rt->cond);
      pthread_mutex_unlock(&rt->lock);
      return;
    }
  }
  /* The execution is over: nobody may find it from here on. */
  nx_susp_unpublish(&rt->susp, task);
  waiters = task->waiters;
  task->waiters = NULL;
  if (task->counted) rt->nsuspended--;
  pthread_mutex_unlock(&rt->lock);

  if (why) nx_runtime_fail_job(job, end, why);
  retire(rt, task, job, waiters);
}

/* A new sandbox from the image, timed for getStats(). */
static nx_sandbox_t *instantiate(nx_runtime_t *rt, char *err, size_t errlen) {
  uint64_t t0 = nx_util_now_ns();
  nx_sandbox_t *sb = nx_snap_instantiate(rt->snap, &rt->cfg, err, errlen);
  t0 = nx_util_now_ns() - t0;
  if (sb) {
    sb->cancel = &rt->cancel;
    pthread_mutex_lock(&rt->lock);
    rt->stats.instantiations++;
    rt->stats.instantiate_ns_sum += t0;
    pthread_mutex_unlock(&rt->lock);
  }
  return sb;
}

/* A job that never got to run: counted, completed, its sandbox (if any)
 * handed back. */
static void finish_early(nx_runtime_t *rt, nx_job_t *job, nx_sandbox_t *sb, uint64_t before) {
  nx_sandbox_t *discard = NULL;
  pthread_mutex_lock(&rt->lock);
  if (sb)
    nx_pool_put(&rt->pool, sb, before, &discard);
  else
    nx_pool_unreserve(&rt->pool);
  rt->stats.active--;
  nx_runtime_complete(rt, job);
  pthread_cond_broadcast(&rt->cond);
  pthread_mutex_unlock(&rt->lock);
  nx_sandbox_free(discard);
}

/* ---- portable suspensions (portable.h) ---------------------------------------- */

/* The image an export is compared against, with the pages `sb` still
 * shares with it when the kernel can say. `changed` has a byte per page. */
static void image_of(nx_runtime_t *rt, const nx_sandbox_t *sb, uint8_t *changed,
                     nx_portable_image_t *img) {
  img->bytes = nx_snap_image(rt->snap);
  img->size = nx_snap_size(rt->snap);
  img->page = nx_snap_page_size(rt->snap);
  img->sha256 = nx_snap_sha256(rt->snap);
  img->changed =
      changed && sb && nx_snap_changed_pages(rt->snap, sb, changed) == 0 ? changed : NULL;
}

/* Writes a claimed task out and retires it; when that fails it parks
 * again, as it was. */
static void run_export(nx_worker_t *self, nx_job_t *job) {
  nx_runtime_t *rt = self->rt;
  nx_task_t *task = job->task;
  nx_sandbox_t *sb = nx_engine_sandbox(task->exec);
  uint8_t *changed = malloc(nx_snap_size(rt->snap) / nx_snap_page_size(rt->snap) + 1);
  nx_portable_image_t img;
  nx_error_code_t code;
  char msg[160];
  int rc;

  image_of(rt, sb, changed, &img);
  rc = nx_portable_export(task->exec, &img, job->remaining_ns, &job->result, &job->result_len);
  free(changed);
  if (rc == NX_RC_OK) {
    pthread_mutex_lock(&rt->lock);
    rt->stats.active--;
    pthread_mutex_unlock(&rt->lock);
    retire(rt, task, job, NULL);
    return;
  }
  nx_runtime_reject_job(job, "INTERNAL_ERROR",
                        rc == NX_RC_NOMEM ? "host out of memory while exporting the suspension"
                                          : "the suspension could not be exported");
  pthread_mutex_lock(&rt->lock);
  rt->stats.active--;
  if (cannot_park(rt, task, &code, msg, sizeof msg) == NULL) {
    park(rt, task, nx_sandbox_memory_bytes(sb), nx_util_now_ns() + job->remaining_ns);
    nx_runtime_complete(rt, job);
    pthread_mutex_unlock(&rt->lock);
    return;
  }
  nx_susp_unpublish(&rt->susp, task);
  pthread_mutex_unlock(&rt->lock);
  retire(rt, task, job, NULL);
}

/* 0 when none of the execution's pending call ids is known here already
 * (under the lock). */
static int ids_are_new(nx_runtime_t *rt, const nx_exec_t *ex) {
  uint32_t i, j;
  for (i = 0; i < nx_engine_calls(ex); i++) {
    if (!nx_engine_call_pending(ex, i)) continue;
    if (nx_susp_find(&rt->susp, nx_engine_call_id(ex, i))) return -1;
    for (j = 0; j < i; j++)
      if (memcmp(nx_engine_call_id(ex, i), nx_engine_call_id(ex, j), NX_SUSPENSION_ID_BYTES) == 0)
        return -1;
  }
  return 0;
}

/* Loads an export into `sb` (reset first: a preload may have run in it)
 * and parks it for what was left of its time. */
static void run_import(nx_worker_t *self, nx_job_t *job, nx_sandbox_t *sb, uint64_t before) {
  nx_runtime_t *rt = self->rt;
  nx_portable_image_t img;
  nx_task_t *task = calloc(1, sizeof *task);
  nx_exec_t *ex = NULL;
  nx_error_code_t code;
  uint64_t remaining = 0, now;
  const char *why = NULL;
  char err[100], msg[160];
  int rc = NX_RC_NOMEM;

  image_of(rt, NULL, NULL, &img);
  if (task && nx_snap_reset(rt->snap, sb) == 0)
    rc = nx_portable_import(sb, &rt->engine, &img, job->context, job->context_len, &ex, &remaining,
                            &job->result, &job->result_len, err, sizeof err);
  free(job->context);
  job->context = NULL;
  if (rc != NX_RC_OK) {
    free(task);
    sb->broken = 1; /* part of the memory is in: never reuse it */
    snprintf(msg, sizeof msg, "the engine refused the bytes (%.100s)",
             rc == NX_RC_NOMEM ? "host out of memory" : err);
    nx_runtime_reject_job(job, "INVALID_SUSPENSION", msg);
    finish_early(rt, job, sb, before);
    return;
  }
  nx_list_init(&task->link);
  task->exec = ex;
  job->outcome.status = NX_STATUS_SUSPENDED;
  now = nx_sandbox_memory_bytes(sb);
  pthread_mutex_lock(&rt->lock);
  rt->pool.memory += now - before;
  rt->stats.active--;
  if (ids_are_new(rt, ex) != 0)
    why = "already imported (its suspension ids are parked here)";
  else if (cannot_park(rt, task, &code, err, sizeof err) != NULL)
    why = err;
  if (why == NULL) {
    park(rt, task, now, nx_util_now_ns() + remaining);
    nx_runtime_complete(rt, job);
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
    return;
  }
  pthread_mutex_unlock(&rt->lock);
  nx_runtime_reject_job(job, "INVALID_SUSPENSION", why);
  retire(rt, task, job, NULL);
}

static void run_execute(nx_worker_t *self, nx_job_t *job, nx_sandbox_t *sb) {
  nx_runtime_t *rt = self->rt;
  uint64_t before = sb ? nx_sandbox_memory_bytes(sb) : 0;
  nx_task_t *task;
  char err[200];

  if (sb == NULL && (sb = instantiate(rt, err, sizeof err)) == NULL) {
    if (job->kind == NX_JOB_IMPORT) {
      free(job->context);
      job->context = NULL;
      nx_runtime_reject_job(job, "INTERNAL_ERROR", "could not create a sandbox for the import");
    } else {
      nx_runtime_fail_job(job, NX_E_INTERNAL_ERROR, err);
    }
    finish_early(rt, job, NULL, 0);
    return;
  }
  if (job->kind == NX_JOB_IMPORT) {
    run_import(self, job, sb, before);
    return;
  }
  task = calloc(1, sizeof *task);
  if (task) {
    nx_list_init(&task->link);
    task->exec = nx_engine_exec_new(sb, &rt->engine, job->mode, job->code, job->code_len,
                                    &job->lang, job->context, job->context_len, job->timeout_ms);
  } else {
    free(job->code);
    nx_engine_lang_free(&job->lang);
    free(job->context);
  }
  job->code = NULL; /* owned by the execution now */
  job->context = NULL;
  if (task == NULL || task->exec == NULL) {
    free(task);
    nx_runtime_fail_job(job, NX_E_INTERNAL_ERROR, "host out of memory");
    finish_early(rt, job, sb, before);
    return;
  }
  run_segment(self, job, task, before);
}

static void prewarm(nx_runtime_t *rt) {
  char err[200];
  for (;;) {
    nx_sandbox_t *sb, *discard;
    pthread_mutex_lock(&rt->lock);
    if (atomic_load(&rt->stopping) || rt->pool.live >= rt->cfg.min_instances ||
        !nx_pool_reserve(&rt->pool)) {
      pthread_mutex_unlock(&rt->lock);
      return;
    }
    pthread_mutex_unlock(&rt->lock);
    sb = instantiate(rt, err, sizeof err);
    pthread_mutex_lock(&rt->lock);
    if (sb == NULL)
      nx_pool_unreserve(&rt->pool);
    else
      nx_pool_put(&rt->pool, sb, 0, &discard);
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
    if (sb == NULL) return;
  }
}

static void spin_for_work(nx_runtime_t *rt) {
  uint64_t until = nx_util_now_ns() + NX_SPIN_NS;
  while (nx_util_now_ns() < until) {
    if (atomic_load_explicit(&rt->work, memory_order_relaxed) ||
        atomic_load_explicit(&rt->stopping, memory_order_relaxed))
      return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

static int expired(const nx_runtime_t *rt) {
  const nx_task_t *t = nx_susp_oldest(&rt->susp);
  return t && t->deadline_ns <= nx_util_now_ns();
}

/* A sync sandbox waiting for its reset (sync.c), or NULL. */
static nx_sync_slot_t *dirty_sync(nx_runtime_t *rt) {
  int i;
  for (i = 0; i < NX_SYNC_SANDBOXES; i++)
    if (rt->sync[i].state == NX_SYNC_DIRTY) return &rt->sync[i];
  return NULL;
}

/* Resets a sync sandbox for its next caller (a broken one is replaced on
 * demand). */
static void reset_sync(nx_runtime_t *rt, nx_sync_slot_t *slot) {
  nx_sandbox_t *sb = slot->sb, *discard = NULL;
  uint64_t t0;
  slot->state = NX_SYNC_RESETTING;
  atomic_fetch_sub(&rt->work, 1);
  pthread_mutex_unlock(&rt->lock);
  t0 = nx_util_now_ns();
  if (sb->broken || nx_snap_reset(rt->snap, sb) != 0) discard = sb;
  t0 = nx_util_now_ns() - t0;
  if (!discard && preload(rt, sb) != 0) discard = sb;
  pthread_mutex_lock(&rt->lock);
  rt->stats.resets++;
  rt->stats.reset_ns_sum += t0;
  slot->state = discard ? NX_SYNC_NONE : NX_SYNC_CLEAN;
  if (discard) slot->sb = NULL;
  pthread_cond_broadcast(&rt->sync_cond);
  pthread_mutex_unlock(&rt->lock);
  nx_sandbox_free(discard);
}

static void wait_for_work(nx_runtime_t *rt) {
  while (!atomic_load(&rt->stopping) && !rt->rhead && nx_list_empty(&rt->cancelled) &&
         !(rt->head && nx_pool_available(&rt->pool)) && !expired(rt) && !dirty_sync(rt)) {
    const nx_task_t *oldest = nx_susp_oldest(&rt->susp);
    if (oldest) {
      struct timespec ts;
      ts.tv_sec = (time_t)(oldest->deadline_ns / 1000000000u);
      ts.tv_nsec = (long)(oldest->deadline_ns % 1000000000u);
      pthread_cond_timedwait(&rt->cond, &rt->lock, &ts);
    } else {
      pthread_cond_wait(&rt->cond, &rt->lock);
    }
  }
}

/* Takes the next thing to do (under the lock) and does it (without). */
static void run_next(nx_worker_t *self) {
  nx_runtime_t *rt = self->rt;
  nx_sync_slot_t *slot;
  nx_job_t *job;
  nx_task_t *task;
  nx_link_t *l;

  if ((slot = dirty_sync(rt)) != NULL) {
    reset_sync(rt, slot);
  } else if (rt->rhead) {
    job = rt->rhead;
    rt->rhead = job->next;
    if (rt->rhead == NULL) rt->rtail = NULL;
    atomic_fetch_sub(&rt->work, 1);
    rt->stats.active++;
    pthread_mutex_unlock(&rt->lock);
    if (job->kind == NX_JOB_EXPORT)
      run_export(self, job);
    else
      run_segment(self, job, job->task,
                  nx_sandbox_memory_bytes(nx_engine_sandbox(job->task->exec)));
  } else if ((l = nx_list_first(&rt->cancelled)) != NULL) {
    task = NX_LIST_ENTRY(l, nx_task_t, link);
    nx_list_remove(l);
    atomic_fetch_sub(&rt->work, 1);
    pthread_mutex_unlock(&rt->lock);
    retire(rt, task, NULL, NULL);
  } else if (expired(rt)) {
    task = nx_susp_oldest(&rt->susp);
    nx_runtime_unpark(rt, task);
    nx_susp_unpublish(&rt->susp, task);
    rt->nsuspended--;
    pthread_mutex_unlock(&rt->lock);
    retire(rt, task, NULL, NULL);
  } else {
    nx_sandbox_t *sb;
    job = rt->head;
    rt->head = job->next;
    if (rt->head == NULL) rt->tail = NULL;
    rt->queued--;
    atomic_fetch_sub(&rt->work, 1);
    sb = nx_pool_take(&rt->pool);
    if (sb == NULL) nx_pool_reserve(&rt->pool); /* available() said room */
    rt->stats.active++;
    pthread_mutex_unlock(&rt->lock);
    run_execute(self, job, sb);
  }
  pthread_mutex_lock(&rt->lock);
}

void *nx_worker_main(void *arg) {
  nx_worker_t *self = arg;
  nx_runtime_t *rt = self->rt;

  nx_wasm_thread_set_depth_limit(nx_config_wasm_depth(&rt->cfg));
  prewarm(rt);
  pthread_mutex_lock(&rt->lock);
  for (;;) {
    /* One poller at a time: a second one would only burn a core that the
     * sync path's caller (or a handler on another worker) needs, on a
     * machine with as many cores as workers. */
    if (!atomic_load(&rt->stopping) && atomic_load(&rt->work) == 0 &&
        atomic_load(&rt->spinning) == 0) {
      /* Counted under the lock, so a submitter that sees a poller skips
       * the futex wake and the poller still finds the job. */
      atomic_fetch_add(&rt->spinning, 1);
      pthread_mutex_unlock(&rt->lock);
      spin_for_work(rt);
      pthread_mutex_lock(&rt->lock);
      atomic_fetch_sub(&rt->spinning, 1);
    }
    wait_for_work(rt);
    if (atomic_load(&rt->stopping)) break;
    /* Submitters skipped the wake while someone polled: if more than this
     * one thing is waiting, pass a wake on so it does not wait for us. */
    if (atomic_load(&rt->work) > 1 && atomic_load(&rt->spinning) == 0)
      pthread_cond_signal(&rt->cond);
    run_next(self);
  }
  pthread_mutex_unlock(&rt->lock);
  return NULL;
}

/* Worker threads (see runtime_int.h): each takes resumes first, then the
 * oldest new execution once it can also get a sandbox, so waiting
 * executions start strictly first in, first out. A segment runs without
 * the lock; whether it parks (suspended) or is over is decided under it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loader.h"
#include "runtime_int.h"
#include "util.h"
#include "wasm_rt/nx_wasm.h"

/* Waking a sleeping thread costs tens of microseconds, more than a trivial
 * handler runs. A worker that just finished polls for work for a short
 * while before it sleeps, so back-to-back executions skip the wake-up. */
#define NX_SPIN_NS 50000u

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
    why = nx_task_cannot_park(rt, task, &end, msg, sizeof msg);
    if (why == NULL) {
      nx_task_park(rt, task, now,
                   nx_util_now_ns() + rt->cfg.suspension_timeout_ms * UINT64_C(1000000));
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
  nx_task_retire(rt, task, job, waiters);
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
    nx_transfer_run_import(rt, job, sb, before);
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
  if (!discard && nx_task_preload(rt, sb) != 0) discard = sb;
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
    run_segment(self, job, job->task, nx_sandbox_memory_bytes(nx_engine_sandbox(job->task->exec)));
  } else if ((l = nx_list_first(&rt->cancelled)) != NULL) {
    task = NX_LIST_ENTRY(l, nx_task_t, link);
    nx_list_remove(l);
    atomic_fetch_sub(&rt->work, 1);
    pthread_mutex_unlock(&rt->lock);
    nx_task_retire(rt, task, NULL, NULL);
  } else if (expired(rt)) {
    task = nx_susp_oldest(&rt->susp);
    nx_runtime_unpark(rt, task);
    nx_susp_unpublish(&rt->susp, task);
    rt->nsuspended--;
    pthread_mutex_unlock(&rt->lock);
    nx_task_retire(rt, task, NULL, NULL);
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

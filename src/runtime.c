/* The runtime's public calls (see runtime.h): starting and stopping it,
 * queueing executions and resumes, cancelling suspended ones, and the
 * numbers behind getStats() and the Prometheus text. The threads that run
 * jobs are in worker.c. */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compiler.h"
#include "hostcalls.h"
#include "result.h"
#include "runtime_int.h"
#include "util.h"
#include "wasm_rt/nx_fault.h"

/* ---- jobs -------------------------------------------------------------------- */

void nx_job_free(nx_job_t *job) {
  if (job == NULL) return;
  free(job->code);
  nx_engine_lang_free(&job->lang);
  free(job->context);
  free(job->answers);
  free(job->answer_bytes);
  free(job->result);
  free(job);
}

/* ---- starting and stopping ------------------------------------------------------ */

/* Frees what a runtime holds; its threads are joined already. */
static void runtime_free(nx_runtime_t *rt) {
  nx_watchdog_stop(rt->watchdog);
  nx_pool_destroy(&rt->pool);
  nx_susp_destroy(&rt->susp);
  nx_snap_free(rt->snap);
  nx_cache_free(rt->engine.cache);
  nx_metrics_free(rt->metrics);
  free(rt->threads);
  free(rt->workers);
  pthread_mutex_destroy(&rt->lock);
  pthread_cond_destroy(&rt->cond);
  pthread_cond_destroy(&rt->sync_cond);
  free(rt);
}

/* Everything but the threads; NX_RC_NOMEM or NX_RC_INVALID with err. */
static int runtime_init(nx_runtime_t *rt, const nx_config_t *cfg, char *err, size_t errlen) {
  pthread_condattr_t attr;
  pthread_mutexattr_t mattr;
  uint64_t t0;
  rt->cfg = *cfg;
  /* Guard pages need our fault handler in place; if it cannot be (or
   * something replaced it), the sandboxes check bounds instead, and
   * getStats().memoryCheck says so. */
  if (rt->cfg.memory_check == NX_MEMORY_CHECK_GUARD && nx_fault_ready() != 0)
    rt->cfg.memory_check = NX_MEMORY_CHECK_BOUNDS;
  /* Adaptive: the lock is held for a few hundred nanoseconds at a time, so
   * a thread that finds it taken spins briefly instead of sleeping in the
   * kernel and making the holder pay a futex wake (both showed in the
   * profile of back-to-back sync calls, where the caller and a worker
   * meet on it around every reset). */
  pthread_mutexattr_init(&mattr);
  pthread_mutexattr_settype(&mattr, PTHREAD_MUTEX_ADAPTIVE_NP);
  pthread_mutex_init(&rt->lock, &mattr);
  pthread_mutexattr_destroy(&mattr);
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&rt->cond, &attr);
  pthread_condattr_destroy(&attr);
  pthread_cond_init(&rt->sync_cond, NULL);
  nx_list_init(&rt->cancelled);
  if (nx_pool_init(&rt->pool, (uint32_t)cfg->max_instances) != 0 || nx_susp_init(&rt->susp) != 0)
    goto oom;
  t0 = nx_util_now_ns();
  rt->snap = nx_snap_create(&rt->cfg, nx_host_names, err, errlen);
  if (rt->snap == NULL) return NX_RC_INVALID;
  rt->stats.snapshot_create_us = (nx_util_now_ns() - t0) / 1000u;
  rt->engine.cfg = &rt->cfg;
  rt->engine.fault_next = &rt->fault_next;
  nx_compiler_engine_tag(rt->engine.tag, sizeof rt->engine.tag, nx_snap_qjs_version(rt->snap));
  rt->engine.heap_used_offset = nx_snap_heap_used_offset(rt->snap);
  rt->engine.cache = nx_cache_new(cfg->max_cache_bytes, cfg->cache_dir[0] ? cfg->cache_dir : NULL,
                                  cfg->max_disk_cache_bytes, err, errlen);
  if (rt->engine.cache == NULL) return NX_RC_INVALID;
  rt->metrics = nx_metrics_new();
  rt->threads = calloc(cfg->workers, sizeof *rt->threads);
  rt->workers = calloc(cfg->workers, sizeof *rt->workers);
  if (rt->metrics == NULL || rt->threads == NULL || rt->workers == NULL) goto oom;
  return NX_RC_OK;
oom:
  snprintf(err, errlen, "out of memory starting the runtime");
  return NX_RC_NOMEM;
}

nx_runtime_t *nx_runtime_start(const nx_config_t *cfg, nx_job_done_cb done, void *arg, char *err,
                               size_t errlen) {
  nx_runtime_t *rt = calloc(1, sizeof *rt);
  pthread_attr_t attr;
  uint32_t i;

  err[0] = 0;
  if (rt == NULL) {
    snprintf(err, errlen, "out of memory starting the runtime");
    return NULL;
  }
  rt->done = done;
  rt->done_arg = arg;
  if (runtime_init(rt, cfg, err, errlen) != 0 || pthread_attr_init(&attr) != 0) {
    if (err[0] == 0) snprintf(err, errlen, "could not start the runtime");
    runtime_free(rt);
    return NULL;
  }
  pthread_attr_setstacksize(&attr, (size_t)cfg->stack_size);
  for (i = 0; i < cfg->workers; i++) {
    rt->workers[i].rt = rt;
    rt->workers[i].index = i;
    if (pthread_create(&rt->threads[i], &attr, nx_worker_main, &rt->workers[i]) != 0) {
      pthread_attr_destroy(&attr);
      snprintf(err, errlen, "could not start worker thread %u", i);
      nx_runtime_stop(rt);
      return NULL;
    }
    rt->nthreads++;
  }
  pthread_attr_destroy(&attr);
  /* One slot per worker, and one for executeHandlerSync's caller. */
  rt->watchdog = nx_watchdog_start(rt->nthreads + 1);
  return rt;
}

/* Executions that never started: answered with an error result. */
static void fail_queued(nx_runtime_t *rt, nx_job_t *job) {
  while (job) {
    nx_job_t *next = job->next;
    if (job->kind == NX_JOB_IMPORT)
      nx_runtime_reject_job(job, "SHUT_DOWN", "runtime shut down before the import ran");
    else
      nx_runtime_fail_job(job, NX_E_INTERNAL_ERROR,
                          "runtime shut down before the execution started");
    rt->done(job, rt->done_arg);
    job = next;
  }
}

void nx_runtime_close(nx_runtime_t *rt) {
  nx_job_t *job;
  pthread_mutex_lock(&rt->lock);
  rt->closing = 1;
  job = rt->head;
  rt->head = rt->tail = NULL;
  atomic_fetch_sub(&rt->work, rt->queued);
  rt->queued = 0;
  pthread_mutex_unlock(&rt->lock);
  fail_queued(rt, job);
}

void nx_runtime_cancel(nx_runtime_t *rt) { atomic_store(&rt->cancel, 1); }

/* Frees a task and its sandbox without running guest code (the workers
 * are gone). */
static void drop_task(nx_task_t *task) {
  nx_sandbox_t *sb = nx_engine_sandbox(task->exec);
  nx_runtime_task_free(task);
  nx_sandbox_free(sb);
}

/* With the workers gone, what is left is answered or freed here, on the
 * calling thread: queued resumes are rejected (and their waiters), parked
 * and cancelled tasks are dropped. */
static void drain(nx_runtime_t *rt) {
  nx_job_t *resume = rt->rhead;
  nx_link_t *l;
  int i;
  rt->rhead = rt->rtail = NULL;
  while (resume) {
    nx_job_t *next = resume->next, *waiters = resume->task->waiters;
    nx_task_t *task = resume->task;
    task->waiters = NULL;
    nx_runtime_reject_job(resume, "SUSPENSION_NOT_FOUND",
                          "The runtime shut down before the resume ran");
    rt->done(resume, rt->done_arg);
    while (waiters) {
      nx_job_t *w = waiters->next;
      nx_runtime_reject_job(waiters, "SUSPENSION_NOT_FOUND",
                            "The runtime shut down before the resume ran");
      rt->done(waiters, rt->done_arg);
      waiters = w;
    }
    drop_task(task);
    resume = next;
  }
  while ((l = nx_list_first(&rt->susp.parked)) != NULL) {
    nx_task_t *task = NX_LIST_ENTRY(l, nx_task_t, link);
    nx_susp_unpark(&rt->susp, task);
    drop_task(task);
  }
  while ((l = nx_list_first(&rt->cancelled)) != NULL) {
    nx_list_remove(l);
    drop_task(NX_LIST_ENTRY(l, nx_task_t, link));
  }
  for (i = 0; i < NX_SYNC_SANDBOXES; i++) {
    nx_sandbox_free(rt->sync[i].sb);
    rt->sync[i].sb = NULL;
    rt->sync[i].state = NX_SYNC_NONE;
  }
}

void nx_runtime_stop(nx_runtime_t *rt) {
  uint32_t i;
  nx_runtime_close(rt);
  pthread_mutex_lock(&rt->lock);
  atomic_store(&rt->stopping, 1);
  pthread_cond_broadcast(&rt->cond);
  pthread_mutex_unlock(&rt->lock);
  for (i = 0; i < rt->nthreads; i++) pthread_join(rt->threads[i], NULL);
  /* The watchdog outlived the workers: a hung one is what it is for. */
  nx_watchdog_stop(rt->watchdog);
  rt->watchdog = NULL;
  drain(rt);
  runtime_free(rt);
}

/* ---- jobs in ------------------------------------------------------------------ */

int nx_runtime_submit_many(nx_runtime_t *rt, nx_job_t **jobs, uint32_t n) {
  uint32_t i;
  pthread_mutex_lock(&rt->lock);
  if (atomic_load(&rt->stopping)) {
    pthread_mutex_unlock(&rt->lock);
    return NX_RC_STOPPING;
  }
  for (i = 0; i < n; i++) {
    nx_job_t *job = jobs[i];
    /* New work needs a sandbox: an execution, or an import */
    if (job->kind != NX_JOB_IMPORT) job->kind = NX_JOB_EXECUTE;
    job->next = NULL;
    if (rt->tail)
      rt->tail->next = job;
    else
      rt->head = job;
    rt->tail = job;
    rt->queued++;
  }
  atomic_fetch_add(&rt->work, n);
  if (atomic_load(&rt->spinning) == 0) {
    if (n > 1)
      pthread_cond_broadcast(&rt->cond);
    else
      pthread_cond_signal(&rt->cond);
  }
  pthread_mutex_unlock(&rt->lock);
  return NX_RC_OK;
}

int nx_runtime_submit(nx_runtime_t *rt, nx_job_t *job) {
  return nx_runtime_submit_many(rt, &job, 1);
}

/* Looks every id up before claiming any, so a bad batch claims nothing. */
static int find_calls(nx_runtime_t *rt, nx_job_t *job, const uint8_t (*ids)[NX_SUSPENSION_ID_BYTES],
                      nx_task_t **task) {
  uint32_t i, j;
  *task = NULL;
  for (i = 0; i < job->nanswers; i++) {
    nx_susp_entry_t *e = nx_susp_find(&rt->susp, ids[i]);
    if (e == NULL) return NX_RC_NOTFOUND;
    if (*task && e->task != *task) return NX_RC_INVALID;
    *task = e->task;
    job->answers[i].call = e->call;
    for (j = 0; j < i; j++)
      if (job->answers[j].call == e->call) return NX_RC_NOTFOUND; /* the same call twice */
  }
  return *task ? NX_RC_OK : NX_RC_NOTFOUND;
}

int nx_runtime_resume(nx_runtime_t *rt, nx_job_t *job,
                      const uint8_t (*ids)[NX_SUSPENSION_ID_BYTES]) {
  nx_task_t *task;
  uint32_t i;
  int rc;

  pthread_mutex_lock(&rt->lock);
  if (atomic_load(&rt->stopping)) {
    rc = NX_RC_STOPPING;
    goto done;
  }
  rc = find_calls(rt, job, ids, &task);
  if (rc != NX_RC_OK) goto done;
  for (i = 0; i < job->nanswers; i++) nx_susp_remove(&rt->susp, nx_susp_find(&rt->susp, ids[i]));
  job->kind = NX_JOB_RESUME;
  job->task = task;
  job->next = NULL;
  if (task->parked) {
    nx_runtime_unpark(rt, task);
    nx_runtime_push_resume(rt, job);
  } else { /* a segment is running: go next, once it parks again */
    nx_job_t **tail = &task->waiters;
    while (*tail) tail = &(*tail)->next;
    *tail = job;
  }
done:
  pthread_mutex_unlock(&rt->lock);
  return rc;
}

int nx_runtime_cancel_suspended(nx_runtime_t *rt, const uint8_t *id) {
  nx_susp_entry_t *e;
  nx_task_t *task;
  pthread_mutex_lock(&rt->lock);
  e = nx_susp_find(&rt->susp, id);
  if (e == NULL) {
    pthread_mutex_unlock(&rt->lock);
    return 0;
  }
  task = e->task;
  nx_susp_unpublish(&rt->susp, task);
  if (task->parked) { /* gone from every count now; a worker resets its sandbox */
    nx_runtime_unpark(rt, task);
    rt->nsuspended--;
    nx_list_push_back(&rt->cancelled, &task->link);
    nx_runtime_signal_work(rt);
  } else {
    task->doomed = 1;
  }
  pthread_mutex_unlock(&rt->lock);
  return 1;
}

/* ---- numbers out -------------------------------------------------------------- */

int nx_runtime_inject_fault(nx_runtime_t *rt, uint32_t kind) {
  /* Without our handler a stack overflow is the process's end. */
  if (kind == NX_ENGINE_FAULT_STACK && rt->cfg.memory_check != NX_MEMORY_CHECK_GUARD)
    return NX_RC_INVALID;
  atomic_store(&rt->fault_next, kind);
  return NX_RC_OK;
}

void nx_runtime_stats(nx_runtime_t *rt, nx_stats_t *out) {
  nx_cache_stats_t cs;
  nx_metrics_totals_t mt;
  int i;
  pthread_mutex_lock(&rt->lock);
  *out = rt->stats;
  out->idle = rt->pool.nidle + rt->resetting;
  out->live = rt->pool.live;
  out->queued = rt->queued;
  out->workers = rt->nthreads;
  out->suspended = rt->susp.nparked;
  out->memory = rt->pool.memory + rt->parked_memory;
  out->memory_check = rt->cfg.memory_check;
  pthread_mutex_unlock(&rt->lock);
  nx_cache_stats(rt->engine.cache, &cs);
  nx_metrics_totals(rt->metrics, &mt);
  out->total = mt.count;
  for (i = 0; i < NX_STATUS__COUNT; i++) out->by_status[i] = mt.by_status[i];
  for (i = 0; i < NX_E__COUNT; i++) out->by_code[i] = mt.by_code[i];
  out->duration_us_sum = mt.duration_us_sum;
  out->cache_entries = cs.entries;
  out->cache_bytes = cs.bytes;
  out->cache_hits = mt.cache_hits;
  out->cache_misses = mt.cache_misses;
  out->snapshot_bytes = nx_snap_size(rt->snap);
}

char *nx_runtime_prometheus(nx_runtime_t *rt, size_t *len) {
  nx_stats_t s;
  nx_metrics_gauges_t g;
  nx_runtime_stats(rt, &s);
  memset(&g, 0, sizeof g);
  g.instances_active = s.active;
  g.instances_idle = s.idle;
  g.executions_suspended = s.suspended;
  g.executions_queued = s.queued;
  g.memory_bytes = s.memory;
  g.cache_entries = s.cache_entries;
  g.cache_bytes = s.cache_bytes;
  return nx_metrics_render(rt->metrics, &g, len);
}

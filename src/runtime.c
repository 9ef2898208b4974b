/* Worker threads, the job queues, the pool and the parked executions under
 * one lock (see runtime.h). A worker takes the oldest new execution only
 * when it can also get an instance, so waiting executions start strictly
 * first-in, first-out; resumes already own their instance and go first. */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compiler.h"
#include "metrics.h"
#include "snapshot.h"
#include "suspend.h"
#include "wasm_rt/nx_wasm.h"

/* A worker as the watchdog sees it: the sandbox it is running, if any. */
typedef struct {
  struct nx_runtime_s *rt;
  pthread_mutex_t lock;
  nx_sandbox_t *running;
} nx_worker_t;

/* How long past its deadline a segment may go on before the watchdog
 * stops it from outside: QuickJS polls its interrupt handler only from the
 * interpreter, so a loop inside the engine's C code (crafted bytecode
 * can make JS_ReadObject spin) never sees the deadline. */
#define NX_HARD_GRACE_NS 250000000ull
#define NX_WATCHDOG_PERIOD_NS 50000000ull

static __thread nx_worker_t *current_worker;

struct nx_runtime_s {
  nx_config_t cfg;
  pthread_mutex_t lock;
  pthread_cond_t cond;       /* on CLOCK_MONOTONIC, for parking deadlines */
  nx_job_t *head, *tail;     /* new executions */
  nx_job_t *rhead, *rtail;   /* resumes */
  uint32_t queued;
  nx_pool_t pool;
  nx_snapshot_t *snap;       /* the image every sandbox starts from */
  nx_engine_env_t env;       /* engine tag, compile cache */
  nx_metrics_t *metrics;     /* has its own lock */
  nx_susp_table_t susp;      /* suspension id -> parked execution */
  nx_exec_t *park_head, *park_tail; /* by deadline: parked in time order */
  nx_exec_t *cancelled;      /* unparked by cancelSuspended, for a worker to retire */
  uint32_t nparked;
  uint32_t nsuspended;       /* executions between their first park and their end */
  uint64_t parked_memory;
  uint32_t resetting;        /* sandboxes between their last result and the pool */
  pthread_t *threads;
  nx_worker_t *workers;
  uint32_t nthreads;
  pthread_t watchdog;
  int has_watchdog, wd_stop;
  pthread_cond_t wd_cond;
  int stopping;
  int closing;               /* shutdown() began: no new starts, no new parking */
  uint32_t spinning;         /* workers polling the queues (see spin_for_work) */
  volatile int cancel;
  nx_job_done_cb done;
  void *done_arg;
  nx_stats_t stats;
};

void nx_job_free(nx_job_t *job) {
  if (job == NULL) return;
  free(job->code);
  free(job->context);
  free(job->answers);
  free(job->answer_bytes);
  free(job->result);
  free(job);
}

static void fail_job(nx_job_t *job, nx_error_code_t code, const char *message) {
  free(job->result);
  if (nx_engine_error_result(code, message, &job->result, &job->result_len) != 0) {
    job->result = NULL;
    job->result_len = 0;
  }
  job->outcome.status = NX_STATUS_ERROR;
  job->outcome.code = code;
}

static void reject_job(nx_job_t *job, const char *code, const char *message) {
  free(job->result);
  job->result = NULL;
  job->result_len = 0;
  job->reject_code = code;
  snprintf(job->reject_message, sizeof job->reject_message, "%s", message);
}

/* Counts one result and hands the job to the caller. Under the lock: when
 * the pool serialises executions their promises settle in queue order, and
 * stats are current by the time a caller sees its result. */
static void complete(nx_runtime_t *rt, nx_job_t *job) {
  if (job->reject_code == NULL) {
    nx_metrics_record_result(rt->metrics, job->outcome.status, job->outcome.code,
                             job->outcome.duration_us);
    rt->stats.total++;
    rt->stats.by_status[job->outcome.status]++;
    rt->stats.by_code[job->outcome.code]++;
    rt->stats.duration_us_sum += job->outcome.duration_us;
  }
  rt->done(job, rt->done_arg); /* job belongs to the caller from here */
}

/* ---- parking (all under the lock) ------------------------------------------ */

static void park_unlink(nx_runtime_t *rt, nx_exec_t *ex) {
  if (ex->park_prev) ex->park_prev->park_next = ex->park_next;
  else rt->park_head = ex->park_next;
  if (ex->park_next) ex->park_next->park_prev = ex->park_prev;
  else rt->park_tail = ex->park_prev;
  ex->park_prev = ex->park_next = NULL;
  ex->parked = 0;
  rt->nparked--;
}

static void park_append(nx_runtime_t *rt, nx_exec_t *ex) {
  ex->park_deadline_ns = nx_now_ns() + (uint64_t)rt->cfg.suspension_timeout_ms * 1000000u;
  ex->park_prev = rt->park_tail;
  ex->park_next = NULL;
  if (rt->park_tail) rt->park_tail->park_next = ex;
  else rt->park_head = ex;
  rt->park_tail = ex;
  ex->parked = 1;
  rt->nparked++;
}

/* Makes the unanswered calls resumable by id. */
static int publish(nx_runtime_t *rt, nx_exec_t *ex) {
  uint32_t i;
  for (i = 0; i < ex->ncalls; i++) {
    nx_ext_call_t *c = &ex->calls[i];
    if (c->answered || c->published) continue;
    if (nx_susp_add(&rt->susp, c->id, ex, i) != 0) return -1;
    c->published = 1;
  }
  return 0;
}

static void unpublish(nx_runtime_t *rt, nx_exec_t *ex) {
  uint32_t i;
  for (i = 0; i < ex->ncalls; i++) {
    nx_ext_call_t *c = &ex->calls[i];
    nx_susp_slot_t *slot;
    if (!c->published || c->claimed) continue;
    slot = nx_susp_find(&rt->susp, c->id);
    if (slot) nx_susp_remove(&rt->susp, slot);
    c->claimed = 1;
  }
}

/* A parked execution is about to run (or be dropped) on a worker: its
 * sandbox counts as live again. */
static void unpark(nx_runtime_t *rt, nx_exec_t *ex) {
  park_unlink(rt, ex);
  rt->parked_memory -= ex->parked_bytes;
  rt->pool.memory += ex->parked_bytes;
  rt->pool.live++;
  ex->busy = 1;
}

static void push_resume(nx_runtime_t *rt, nx_job_t *job) {
  job->next = NULL;
  if (rt->rtail) rt->rtail->next = job;
  else rt->rhead = job;
  rt->rtail = job;
  if (rt->spinning == 0) pthread_cond_signal(&rt->cond);
}

/* ---- running jobs (worker threads) ----------------------------------------- */

static void fail_waiters(nx_runtime_t *rt, nx_job_t *w, const char *why) {
  while (w) {
    nx_job_t *next = w->next;
    reject_job(w, "SUSPENSION_NOT_FOUND", why);
    complete(rt, w);
    w = next;
  }
}

/* Frees an execution that is over, completes `job` (may be NULL), fails
 * `waiters`, and gives the sandbox back to the pool once it is reset. The
 * reset runs after the completion is posted, off the caller's latency; the
 * sandbox counts as available meanwhile, and nothing can start on it before
 * it is back in the pool, so completions still come in queue order. */
static void retire(nx_runtime_t *rt, nx_exec_t *ex, nx_job_t *job, nx_job_t *waiters) {
  nx_sandbox_t *sb = ex->sb, *discard = NULL;
  uint64_t t0, before = nx_sandbox_memory_bytes(sb); /* what the pool counts */
  nx_exec_free(ex);
  pthread_mutex_lock(&rt->lock);
  rt->resetting++;
  if (job) complete(rt, job);
  fail_waiters(rt, waiters, "The execution ended before this call was answered");
  pthread_mutex_unlock(&rt->lock);
  /* Whatever the handler did, even a trap mid-operation, is undone here:
   * the next execution on this sandbox starts from the pristine image. */
  t0 = nx_now_ns();
  if (nx_snap_reset(rt->snap, sb) != 0) sb->broken = 1;
  t0 = nx_now_ns() - t0;
  pthread_mutex_lock(&rt->lock);
  rt->stats.resets++;
  rt->stats.reset_ns_sum += t0;
  rt->resetting--;
  nx_pool_put(&rt->pool, sb, before, &discard);
  pthread_cond_broadcast(&rt->cond);
  pthread_mutex_unlock(&rt->lock);
  nx_sandbox_free(discard);
}

/* Tells the watchdog which sandbox this worker runs (NULL: none). */
static void watch(nx_sandbox_t *sb) {
  nx_worker_t *w = current_worker;
  pthread_mutex_lock(&w->lock);
  w->running = sb;
  pthread_mutex_unlock(&w->lock);
}

/* Stops segments that outlive their deadline by NX_HARD_GRACE_NS: it sets
 * the sandbox's memory size to zero, so the next bounds check traps and
 * unwinds the worker to its guard (the engine reports TIMEOUT, the reset
 * restores the size). Under the worker's lock, so it never touches a
 * sandbox after its segment ended. */
static void *watchdog_main(void *arg) {
  nx_runtime_t *rt = arg;
  pthread_mutex_lock(&rt->lock);
  while (!rt->wd_stop) {
    struct timespec ts;
    uint64_t now = nx_now_ns(), at = now + NX_WATCHDOG_PERIOD_NS;
    uint32_t i;
    ts.tv_sec = (time_t)(at / 1000000000u);
    ts.tv_nsec = (long)(at % 1000000000u);
    pthread_cond_timedwait(&rt->wd_cond, &rt->lock, &ts);
    if (rt->wd_stop) break;
    pthread_mutex_unlock(&rt->lock);
    now = nx_now_ns();
    for (i = 0; i < rt->nthreads; i++) {
      nx_worker_t *w = &rt->workers[i];
      nx_sandbox_t *sb;
      pthread_mutex_lock(&w->lock);
      sb = w->running;
      if (sb) {
        uint64_t deadline = __atomic_load_n(&sb->deadline_ns, __ATOMIC_RELAXED);
        if (deadline && now > deadline + NX_HARD_GRACE_NS) {
          __atomic_store_n(&sb->killed, 1, __ATOMIC_RELAXED);
          __atomic_store_n(&sb->inst.w2c_memory.size, 0, __ATOMIC_RELAXED);
        }
      }
      pthread_mutex_unlock(&w->lock);
    }
    pthread_mutex_lock(&rt->lock);
  }
  pthread_mutex_unlock(&rt->lock);
  return NULL;
}

/* Host calls and the compile-cache outcome of the segment just run. */
static void record_calls(nx_runtime_t *rt, const nx_exec_t *ex, const nx_exec_outcome_t *o) {
  uint32_t i;
  for (i = 0; i < NX_HOSTCALL__COUNT; i++)
    if (ex->hostcalls[i]) {
      const char *name = nx_engine_hostcall_name((nx_hostcall_kind_t)i);
      nx_metrics_record_hostcall(rt->metrics, name, strlen(name), ex->hostcalls[i]);
    }
  for (i = 0; i < ex->next_counts; i++)
    if (ex->ext_counts[i].count)
      nx_metrics_record_hostcall(rt->metrics, ex->ext_counts[i].name,
                                 strlen(ex->ext_counts[i].name), ex->ext_counts[i].count);
  if (o->cache >= 0) nx_metrics_record_cache(rt->metrics, o->cache);
}

/* Runs one segment of an execution and decides, under the lock, whether it
 * parks (suspended) or is over. `before`: the sandbox memory the pool
 * accounts for already. */
static void run_segment(nx_runtime_t *rt, nx_job_t *job, nx_exec_t *ex, uint64_t before) {
  nx_sandbox_t *sb = ex->sb;
  uint64_t now;
  nx_job_t *waiters;
  nx_error_code_t end = NX_OK; /* why a suspension cannot park */
  char end_msg[160];

  watch(sb);
  if (nx_engine_run(ex, job->answers, job->nanswers, &job->result, &job->result_len,
                    &job->outcome) != 0)
    fail_job(job, NX_E_INTERNAL_ERROR, "could not build the result");
  watch(NULL);
  record_calls(rt, ex, &job->outcome);
  now = nx_sandbox_memory_bytes(sb);

  pthread_mutex_lock(&rt->lock);
  rt->pool.memory += now - before;
  rt->stats.active--;
  if (job->outcome.status == NX_STATUS_SUSPENDED) {
    if (rt->stopping || rt->closing) {
      end = NX_E_INTERNAL_ERROR;
      snprintf(end_msg, sizeof end_msg, "The runtime shut down while the handler was suspended");
    } else if (ex->doomed) {
      end = NX_E_INTERNAL_ERROR;
      snprintf(end_msg, sizeof end_msg, "The execution was cancelled while it ran");
    } else if (!ex->counted && rt->nsuspended >= rt->cfg.max_suspended) {
      end = NX_E_RESOURCE_LIMIT;
      snprintf(end_msg, sizeof end_msg,
               "Too many suspended executions (maxSuspended is %u)", rt->cfg.max_suspended);
    } else if (publish(rt, ex) != 0) {
      end = NX_E_INTERNAL_ERROR;
      snprintf(end_msg, sizeof end_msg, "host out of memory while suspending");
    } else {
      if (!ex->counted) {
        ex->counted = 1;
        rt->nsuspended++;
      }
      ex->busy = 0;
      rt->pool.live--;
      rt->pool.memory -= now;
      ex->parked_bytes = now;
      rt->parked_memory += now;
      park_append(rt, ex);
      complete(rt, job);
      if (ex->waiters) { /* a resume that arrived while this segment ran */
        nx_job_t *w = ex->waiters;
        ex->waiters = w->next;
        unpark(rt, ex);
        push_resume(rt, w);
      }
      pthread_cond_broadcast(&rt->cond);
      pthread_mutex_unlock(&rt->lock);
      return;
    }
  }
  /* The execution is over: nobody may find it from here on. */
  unpublish(rt, ex);
  waiters = ex->waiters;
  ex->waiters = NULL;
  if (ex->counted) rt->nsuspended--;
  pthread_mutex_unlock(&rt->lock);

  if (end != NX_OK) fail_job(job, end, end_msg);
  retire(rt, ex, job, waiters);
}

/* A new sandbox from the image, timed for getStats(). */
static nx_sandbox_t *instantiate(nx_runtime_t *rt, char *err, size_t errlen) {
  uint64_t t0 = nx_now_ns();
  nx_sandbox_t *sb = nx_snap_instantiate(rt->snap, &rt->cfg, err, errlen);
  t0 = nx_now_ns() - t0;
  if (sb) {
    sb->cancel = &rt->cancel;
    pthread_mutex_lock(&rt->lock);
    rt->stats.instantiations++;
    rt->stats.instantiate_ns_sum += t0;
    pthread_mutex_unlock(&rt->lock);
  }
  return sb;
}

static void run_execute(nx_runtime_t *rt, nx_job_t *job, nx_sandbox_t *sb) {
  nx_exec_t *ex;
  uint64_t before = sb ? nx_sandbox_memory_bytes(sb) : 0;
  char err[200];

  if (sb == NULL) {
    sb = instantiate(rt, err, sizeof err);
    if (sb == NULL) {
      fail_job(job, NX_E_INTERNAL_ERROR, err);
      pthread_mutex_lock(&rt->lock);
      nx_pool_unreserve(&rt->pool);
      rt->stats.active--;
      complete(rt, job);
      pthread_cond_broadcast(&rt->cond);
      pthread_mutex_unlock(&rt->lock);
      return;
    }
  }
  ex = nx_exec_new(sb, &rt->env, job->mode, job->code, job->code_len, job->context,
                   job->context_len, job->timeout_ms);
  job->code = NULL; /* owned by the execution now */
  job->context = NULL;
  if (ex == NULL) {
    nx_sandbox_t *discard = NULL;
    fail_job(job, NX_E_INTERNAL_ERROR, "host out of memory");
    pthread_mutex_lock(&rt->lock);
    nx_pool_put(&rt->pool, sb, before, &discard);
    rt->stats.active--;
    complete(rt, job);
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
    nx_sandbox_free(discard);
    return;
  }
  ex->busy = 1;
  run_segment(rt, job, ex, before);
}

static void prewarm(nx_runtime_t *rt) {
  char err[200];
  for (;;) {
    nx_sandbox_t *sb, *discard;
    pthread_mutex_lock(&rt->lock);
    if (rt->stopping || rt->pool.live >= rt->cfg.min_instances ||
        !nx_pool_reserve(&rt->pool)) {
      pthread_mutex_unlock(&rt->lock);
      return;
    }
    pthread_mutex_unlock(&rt->lock);
    sb = instantiate(rt, err, sizeof err);
    pthread_mutex_lock(&rt->lock);
    if (sb == NULL) nx_pool_unreserve(&rt->pool);
    else nx_pool_put(&rt->pool, sb, 0, &discard);
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
    if (sb == NULL) return;
  }
}

/* Waking a sleeping thread costs tens of microseconds, more than a trivial
 * handler runs. A worker that just finished polls the queues for a short
 * while before it sleeps, so back-to-back executions skip the wake-up. */
#define NX_SPIN_NS 50000u

static void spin_for_work(nx_runtime_t *rt) {
  uint64_t until = nx_now_ns() + NX_SPIN_NS;
  while (nx_now_ns() < until) {
    if (__atomic_load_n(&rt->head, __ATOMIC_RELAXED) != NULL ||
        __atomic_load_n(&rt->rhead, __ATOMIC_RELAXED) != NULL ||
        __atomic_load_n(&rt->cancelled, __ATOMIC_RELAXED) != NULL ||
        __atomic_load_n(&rt->stopping, __ATOMIC_RELAXED))
      return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

static int expired(const nx_runtime_t *rt) {
  return rt->park_head && rt->park_head->park_deadline_ns <= nx_now_ns();
}

static void wait_for_work(nx_runtime_t *rt) {
  while (!rt->stopping && !rt->rhead && !rt->cancelled &&
         !(rt->head && nx_pool_available(&rt->pool)) && !expired(rt)) {
    if (rt->park_head) {
      struct timespec ts;
      uint64_t at = rt->park_head->park_deadline_ns;
      ts.tv_sec = (time_t)(at / 1000000000u);
      ts.tv_nsec = (long)(at % 1000000000u);
      pthread_cond_timedwait(&rt->cond, &rt->lock, &ts);
    } else {
      pthread_cond_wait(&rt->cond, &rt->lock);
    }
  }
}

static void *worker_main(void *arg) {
  nx_worker_t *self = arg;
  nx_runtime_t *rt = self->rt;

  current_worker = self;
  nx_wasm_thread_set_depth_limit(nx_config_wasm_depth(&rt->cfg));
  prewarm(rt);
  pthread_mutex_lock(&rt->lock);
  for (;;) {
    nx_job_t *job;
    nx_sandbox_t *sb;
    if (!rt->stopping && rt->head == NULL && rt->rhead == NULL && !rt->cancelled) {
      /* Counted under the lock, so a submitter that sees a poller skips
       * the futex wake and the poller still finds the job. */
      rt->spinning++;
      pthread_mutex_unlock(&rt->lock);
      spin_for_work(rt);
      pthread_mutex_lock(&rt->lock);
      rt->spinning--;
    }
    wait_for_work(rt);
    if (rt->stopping) break;
    if (rt->rhead) {
      job = rt->rhead;
      rt->rhead = job->next;
      if (rt->rhead == NULL) rt->rtail = NULL;
      rt->stats.active++;
      pthread_mutex_unlock(&rt->lock);
      run_segment(rt, job, job->exec, nx_sandbox_memory_bytes(job->exec->sb));
    } else if (rt->cancelled) {
      nx_exec_t *ex = rt->cancelled;
      rt->cancelled = ex->park_next;
      ex->park_next = NULL;
      pthread_mutex_unlock(&rt->lock);
      retire(rt, ex, NULL, NULL);
    } else if (expired(rt)) {
      nx_exec_t *ex = rt->park_head;
      unpark(rt, ex);
      unpublish(rt, ex);
      rt->nsuspended--;
      pthread_mutex_unlock(&rt->lock);
      retire(rt, ex, NULL, NULL);
    } else {
      job = rt->head;
      rt->head = job->next;
      if (rt->head == NULL) rt->tail = NULL;
      rt->queued--;
      sb = nx_pool_take(&rt->pool);
      if (sb == NULL) nx_pool_reserve(&rt->pool); /* available() said room */
      rt->stats.active++;
      pthread_mutex_unlock(&rt->lock);
      run_execute(rt, job, sb);
    }
    pthread_mutex_lock(&rt->lock);
  }
  pthread_mutex_unlock(&rt->lock);
  return NULL;
}

/* ---- public ------------------------------------------------------------------ */

nx_runtime_t *nx_runtime_start(const nx_config_t *cfg, nx_job_done_cb done,
                               void *arg, char *err, size_t errlen) {
  nx_runtime_t *rt = calloc(1, sizeof *rt);
  pthread_attr_t attr;
  pthread_condattr_t cattr_mono;
  uint32_t i;

  if (rt == NULL) goto oom;
  rt->cfg = *cfg;
  rt->done = done;
  rt->done_arg = arg;
  pthread_mutex_init(&rt->lock, NULL);
  pthread_condattr_init(&cattr_mono);
  pthread_condattr_setclock(&cattr_mono, CLOCK_MONOTONIC);
  pthread_cond_init(&rt->cond, &cattr_mono);
  pthread_cond_init(&rt->wd_cond, &cattr_mono);
  pthread_condattr_destroy(&cattr_mono);
  if (nx_pool_init(&rt->pool, cfg->max_instances) != 0) goto oom;
  if (nx_susp_init(&rt->susp) != 0) goto oom;
  {
    uint64_t t0 = nx_now_ns();
    rt->snap = nx_snap_create(cfg, err, errlen);
    if (rt->snap == NULL) goto fail;
    rt->stats.snapshot_create_us = (nx_now_ns() - t0) / 1000u;
  }
  rt->env.cfg = &rt->cfg;
  nx_compiler_engine_tag(rt->env.engine, sizeof rt->env.engine, nx_snap_qjs_version(rt->snap));
  rt->env.heap_used_offset = nx_snap_heap_used_offset(rt->snap);
  rt->env.cache = nx_cache_new(cfg->max_cache_bytes, cfg->cache_dir[0] ? cfg->cache_dir : NULL,
                               cfg->max_disk_cache_bytes, err, errlen);
  if (rt->env.cache == NULL) goto fail;
  rt->metrics = nx_metrics_new();
  if (rt->metrics == NULL) goto oom;
  rt->threads = calloc(cfg->workers, sizeof *rt->threads);
  rt->workers = calloc(cfg->workers, sizeof *rt->workers);
  if (rt->threads == NULL || rt->workers == NULL) goto oom;
  for (i = 0; i < cfg->workers; i++) {
    rt->workers[i].rt = rt;
    pthread_mutex_init(&rt->workers[i].lock, NULL);
  }
  if (pthread_attr_init(&attr) != 0) goto oom;
  pthread_attr_setstacksize(&attr, (size_t)cfg->stack_size);
  for (i = 0; i < cfg->workers; i++) {
    if (pthread_create(&rt->threads[i], &attr, worker_main, &rt->workers[i]) != 0) {
      pthread_attr_destroy(&attr);
      snprintf(err, errlen, "could not start worker thread %u", i);
      nx_runtime_stop(rt);
      return NULL;
    }
    rt->nthreads++;
  }
  pthread_attr_destroy(&attr);
  /* Without a watchdog only engine-internal loops go unstopped: run on. */
  rt->has_watchdog = pthread_create(&rt->watchdog, NULL, watchdog_main, rt) == 0;
  return rt;
oom:
  snprintf(err, errlen, "out of memory starting the runtime");
fail:
  if (rt) {
    nx_pool_destroy(&rt->pool);
    nx_susp_destroy(&rt->susp);
    nx_snap_free(rt->snap);
    nx_cache_free(rt->env.cache);
    nx_metrics_free(rt->metrics);
    free(rt->threads);
    free(rt->workers);
    pthread_mutex_destroy(&rt->lock);
    pthread_cond_destroy(&rt->cond);
    pthread_cond_destroy(&rt->wd_cond);
    free(rt);
  }
  return NULL;
}

int nx_runtime_submit(nx_runtime_t *rt, nx_job_t *job) {
  pthread_mutex_lock(&rt->lock);
  if (rt->stopping) {
    pthread_mutex_unlock(&rt->lock);
    return -1;
  }
  job->kind = NX_JOB_EXECUTE;
  job->next = NULL;
  if (rt->tail) rt->tail->next = job;
  else rt->head = job;
  rt->tail = job;
  rt->queued++;
  if (rt->spinning == 0) pthread_cond_signal(&rt->cond);
  pthread_mutex_unlock(&rt->lock);
  return 0;
}

nx_resume_status_t nx_runtime_resume(nx_runtime_t *rt, nx_job_t *job,
                                     const uint8_t (*ids)[NX_SUSPENSION_ID_BYTES]) {
  nx_exec_t *ex = NULL;
  nx_resume_status_t st = NX_RESUME_OK;
  uint32_t i, j;

  pthread_mutex_lock(&rt->lock);
  if (rt->stopping) {
    st = NX_RESUME_STOPPING;
    goto done;
  }
  /* Look every id up before claiming any, so a bad batch claims nothing. */
  for (i = 0; i < job->nanswers; i++) {
    nx_susp_slot_t *slot = nx_susp_find(&rt->susp, ids[i]);
    if (slot == NULL) {
      st = NX_RESUME_NOT_FOUND;
      goto done;
    }
    if (ex && slot->exec != ex) {
      st = NX_RESUME_MIXED;
      goto done;
    }
    ex = slot->exec;
    job->answers[i].call = slot->call;
    for (j = 0; j < i; j++)
      if (job->answers[j].call == slot->call) {
        st = NX_RESUME_NOT_FOUND; /* the same call answered twice */
        goto done;
      }
  }
  if (ex == NULL) {
    st = NX_RESUME_NOT_FOUND;
    goto done;
  }
  for (i = 0; i < job->nanswers; i++) {
    nx_susp_remove(&rt->susp, nx_susp_find(&rt->susp, ids[i]));
    ex->calls[job->answers[i].call].claimed = 1;
  }
  job->kind = NX_JOB_RESUME;
  job->exec = ex;
  job->next = NULL;
  if (ex->parked) {
    unpark(rt, ex);
    push_resume(rt, job);
  } else { /* a segment is running: go next, once it parks again */
    nx_job_t **tail = &ex->waiters;
    while (*tail) tail = &(*tail)->next;
    *tail = job;
  }
done:
  pthread_mutex_unlock(&rt->lock);
  return st;
}

int nx_runtime_cancel_suspended(nx_runtime_t *rt, const uint8_t *id) {
  nx_susp_slot_t *slot;
  nx_exec_t *ex;
  pthread_mutex_lock(&rt->lock);
  slot = nx_susp_find(&rt->susp, id);
  if (slot == NULL) {
    pthread_mutex_unlock(&rt->lock);
    return 0;
  }
  ex = slot->exec;
  unpublish(rt, ex);
  if (ex->parked) { /* gone from every count now; a worker resets its sandbox */
    unpark(rt, ex);
    rt->nsuspended--;
    ex->park_next = rt->cancelled;
    rt->cancelled = ex;
    if (rt->spinning == 0) pthread_cond_signal(&rt->cond);
  } else {
    ex->doomed = 1;
  }
  pthread_mutex_unlock(&rt->lock);
  return 1;
}

/* Executions that never started: answered with an error result. */
static void fail_queued(nx_runtime_t *rt, nx_job_t *job) {
  while (job) {
    nx_job_t *next = job->next;
    fail_job(job, NX_E_INTERNAL_ERROR, "runtime shut down before the execution started");
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
  rt->queued = 0;
  pthread_mutex_unlock(&rt->lock);
  fail_queued(rt, job);
}

void nx_runtime_cancel(nx_runtime_t *rt) { rt->cancel = 1; }

/* Frees an execution and its sandbox without running guest code (the
 * workers are gone). */
static void drop_exec(nx_exec_t *ex) {
  nx_sandbox_t *sb = ex->sb;
  nx_exec_free(ex);
  nx_sandbox_free(sb);
}

void nx_runtime_stop(nx_runtime_t *rt) {
  nx_job_t *resumes;
  uint32_t i;

  nx_runtime_close(rt);
  pthread_mutex_lock(&rt->lock);
  rt->stopping = 1;
  pthread_cond_broadcast(&rt->cond);
  pthread_mutex_unlock(&rt->lock);
  /* The watchdog outlives the workers: a hung one is what it is for. */
  for (i = 0; i < rt->nthreads; i++) pthread_join(rt->threads[i], NULL);
  if (rt->has_watchdog) {
    pthread_mutex_lock(&rt->lock);
    rt->wd_stop = 1;
    pthread_cond_signal(&rt->wd_cond);
    pthread_mutex_unlock(&rt->lock);
    pthread_join(rt->watchdog, NULL);
  }

  /* Workers are gone: what is left runs here, on the calling thread. */
  resumes = rt->rhead;
  rt->rhead = rt->rtail = NULL;
  while (resumes) {
    nx_job_t *next = resumes->next;
    nx_exec_t *ex = resumes->exec;
    nx_job_t *waiters = ex->waiters;
    ex->waiters = NULL;
    reject_job(resumes, "SUSPENSION_NOT_FOUND", "The runtime shut down before the resume ran");
    rt->done(resumes, rt->done_arg);
    fail_waiters(rt, waiters, "The runtime shut down before the resume ran");
    drop_exec(ex);
    resumes = next;
  }
  while (rt->park_head) {
    nx_exec_t *ex = rt->park_head;
    park_unlink(rt, ex);
    drop_exec(ex);
  }
  while (rt->cancelled) {
    nx_exec_t *ex = rt->cancelled;
    rt->cancelled = ex->park_next;
    drop_exec(ex);
  }
  nx_pool_destroy(&rt->pool);
  nx_susp_destroy(&rt->susp);
  nx_snap_free(rt->snap);
  nx_cache_free(rt->env.cache);
  nx_metrics_free(rt->metrics);
  for (i = 0; i < rt->nthreads; i++) pthread_mutex_destroy(&rt->workers[i].lock);
  free(rt->threads);
  free(rt->workers);
  pthread_mutex_destroy(&rt->lock);
  pthread_cond_destroy(&rt->cond);
  pthread_cond_destroy(&rt->wd_cond);
  free(rt);
}

void nx_runtime_stats(nx_runtime_t *rt, nx_stats_t *out) {
  nx_cache_stats_t cs;
  nx_metrics_totals_t mt;
  pthread_mutex_lock(&rt->lock);
  *out = rt->stats;
  out->idle = rt->pool.nidle + rt->resetting;
  out->live = rt->pool.live;
  out->queued = rt->queued;
  out->workers = rt->nthreads;
  out->suspended = rt->nparked;
  out->memory = rt->pool.memory + rt->parked_memory;
  pthread_mutex_unlock(&rt->lock);
  nx_cache_stats(rt->env.cache, &cs);
  nx_metrics_totals(rt->metrics, &mt);
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

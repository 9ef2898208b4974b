/* Worker threads, the job queue and the pool under one lock (see
 * runtime.h). A worker takes the oldest job only when it can also get an
 * instance, so waiting jobs are served strictly first-in, first-out. */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wasm_rt/nx_wasm.h"

struct nx_runtime_s {
  nx_config_t cfg;
  pthread_mutex_t lock;
  pthread_cond_t cond;
  nx_job_t *head, *tail;
  uint32_t queued;
  nx_pool_t pool;
  pthread_t *threads;
  uint32_t nthreads;
  int stopping;
  uint32_t spinning;     /* workers polling the queue (see spin_for_work) */
  volatile int cancel;
  nx_job_done_cb done;
  void *done_arg;
  nx_stats_t stats;
};

void nx_job_free(nx_job_t *job) {
  if (job == NULL) return;
  free(job->code);
  free(job->context);
  free(job->result);
  free(job);
}

static void fail_job(nx_job_t *job, nx_error_code_t code, const char *message) {
  if (nx_engine_error_result(code, message, &job->result, &job->result_len) != 0) {
    job->result = NULL;
    job->result_len = 0;
  }
  job->outcome.code = code;
}

/* Runs one job and completes it. The completion is posted under the lock
 * that returns the sandbox to the pool: when the pool serialises executions
 * their promises settle in queue order, and stats are current by the time
 * a caller sees its result. Posting never blocks (the queue is unbounded). */
static void run_job(nx_runtime_t *rt, nx_job_t *job, nx_sandbox_t *sb) {
  nx_exec_request_t req;
  nx_exec_outcome_t outcome;
  nx_sandbox_t *discard = NULL;
  uint64_t before = sb ? nx_sandbox_memory_bytes(sb) : 0;
  char err[200];

  if (sb == NULL) {
    sb = nx_sandbox_new(&rt->cfg, err, sizeof err);
    if (sb == NULL) {
      fail_job(job, NX_E_INTERNAL_ERROR, err);
      pthread_mutex_lock(&rt->lock);
      nx_pool_unreserve(&rt->pool);
      rt->stats.total++;
      rt->stats.by_code[NX_E_INTERNAL_ERROR]++;
      rt->stats.active--;
      rt->done(job, rt->done_arg);
      pthread_cond_broadcast(&rt->cond);
      pthread_mutex_unlock(&rt->lock);
      return;
    }
    sb->cancel = &rt->cancel;
  }
  req.code = job->code;
  req.code_len = job->code_len;
  req.context = job->context;
  req.context_len = job->context_len;
  req.timeout_ms = job->timeout_ms;
  if (nx_engine_execute(sb, &rt->cfg, &req, &job->result, &job->result_len,
                        &job->outcome) != 0)
    fail_job(job, NX_E_INTERNAL_ERROR, "could not build the result");
  outcome = job->outcome;

  pthread_mutex_lock(&rt->lock);
  nx_pool_put(&rt->pool, sb, before, &discard);
  rt->stats.total++;
  rt->stats.by_code[outcome.code]++;
  rt->stats.duration_us_sum += outcome.duration_us;
  rt->stats.active--;
  rt->done(job, rt->done_arg); /* job belongs to the JS thread from here */
  pthread_cond_broadcast(&rt->cond);
  pthread_mutex_unlock(&rt->lock);
  nx_sandbox_free(discard);
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
    sb = nx_sandbox_new(&rt->cfg, err, sizeof err);
    pthread_mutex_lock(&rt->lock);
    if (sb == NULL) nx_pool_unreserve(&rt->pool);
    else {
      sb->cancel = &rt->cancel;
      nx_pool_put(&rt->pool, sb, 0, &discard);
    }
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
    if (sb == NULL) return;
  }
}

/* Waking a sleeping thread costs tens of microseconds, more than a trivial
 * handler runs. A worker that just finished polls the queue for a short
 * while before it sleeps, so back-to-back executions skip the wake-up. */
#define NX_SPIN_NS 50000u

static void spin_for_work(nx_runtime_t *rt) {
  uint64_t until = nx_now_ns() + NX_SPIN_NS;
  while (nx_now_ns() < until) {
    if (__atomic_load_n(&rt->head, __ATOMIC_RELAXED) != NULL ||
        __atomic_load_n(&rt->stopping, __ATOMIC_RELAXED))
      return;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

static void *worker_main(void *arg) {
  nx_runtime_t *rt = arg;

  nx_wasm_thread_set_depth_limit(nx_config_wasm_depth(&rt->cfg));
  prewarm(rt);
  pthread_mutex_lock(&rt->lock);
  for (;;) {
    nx_job_t *job;
    nx_sandbox_t *sb;
    if (!rt->stopping && rt->head == NULL) {
      /* Counted under the lock, so a submitter that sees a poller skips
       * the futex wake and the poller still finds the job. */
      rt->spinning++;
      pthread_mutex_unlock(&rt->lock);
      spin_for_work(rt);
      pthread_mutex_lock(&rt->lock);
      rt->spinning--;
    }
    while (!rt->stopping && !(rt->head && nx_pool_available(&rt->pool)))
      pthread_cond_wait(&rt->cond, &rt->lock);
    if (rt->stopping) break;
    job = rt->head;
    rt->head = job->next;
    if (rt->head == NULL) rt->tail = NULL;
    rt->queued--;
    sb = nx_pool_take(&rt->pool);
    if (sb == NULL) nx_pool_reserve(&rt->pool); /* available() said room */
    rt->stats.active++;
    pthread_mutex_unlock(&rt->lock);

    run_job(rt, job, sb);
    pthread_mutex_lock(&rt->lock);
  }
  pthread_mutex_unlock(&rt->lock);
  return NULL;
}

nx_runtime_t *nx_runtime_start(const nx_config_t *cfg, nx_job_done_cb done,
                               void *arg, char *err, size_t errlen) {
  nx_runtime_t *rt = calloc(1, sizeof *rt);
  pthread_attr_t attr;
  uint32_t i;

  if (rt == NULL) goto oom;
  rt->cfg = *cfg;
  rt->done = done;
  rt->done_arg = arg;
  pthread_mutex_init(&rt->lock, NULL);
  pthread_cond_init(&rt->cond, NULL);
  if (nx_pool_init(&rt->pool, cfg->max_instances) != 0) goto oom;
  rt->threads = calloc(cfg->workers, sizeof *rt->threads);
  if (rt->threads == NULL) goto oom;
  if (pthread_attr_init(&attr) != 0) goto oom;
  pthread_attr_setstacksize(&attr, (size_t)cfg->stack_size);
  for (i = 0; i < cfg->workers; i++) {
    if (pthread_create(&rt->threads[i], &attr, worker_main, rt) != 0) {
      pthread_attr_destroy(&attr);
      snprintf(err, errlen, "could not start worker thread %u", i);
      nx_runtime_stop(rt);
      return NULL;
    }
    rt->nthreads++;
  }
  pthread_attr_destroy(&attr);
  return rt;
oom:
  snprintf(err, errlen, "out of memory starting the runtime");
  if (rt) {
    nx_pool_destroy(&rt->pool);
    free(rt->threads);
    pthread_mutex_destroy(&rt->lock);
    pthread_cond_destroy(&rt->cond);
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
  job->next = NULL;
  if (rt->tail) rt->tail->next = job;
  else rt->head = job;
  rt->tail = job;
  rt->queued++;
  if (rt->spinning == 0) pthread_cond_signal(&rt->cond);
  pthread_mutex_unlock(&rt->lock);
  return 0;
}

void nx_runtime_cancel(nx_runtime_t *rt) { rt->cancel = 1; }

void nx_runtime_stop(nx_runtime_t *rt) {
  nx_job_t *job;
  uint32_t i;

  pthread_mutex_lock(&rt->lock);
  rt->stopping = 1;
  job = rt->head;
  rt->head = rt->tail = NULL;
  rt->queued = 0;
  pthread_cond_broadcast(&rt->cond);
  pthread_mutex_unlock(&rt->lock);
  while (job) {
    nx_job_t *next = job->next;
    fail_job(job, NX_E_INTERNAL_ERROR, "runtime shut down before the execution started");
    rt->done(job, rt->done_arg);
    job = next;
  }
  for (i = 0; i < rt->nthreads; i++) pthread_join(rt->threads[i], NULL);
  nx_pool_destroy(&rt->pool);
  free(rt->threads);
  pthread_mutex_destroy(&rt->lock);
  pthread_cond_destroy(&rt->cond);
  free(rt);
}

void nx_runtime_stats(nx_runtime_t *rt, nx_stats_t *out) {
  pthread_mutex_lock(&rt->lock);
  *out = rt->stats;
  out->idle = rt->pool.nidle;
  out->live = rt->pool.live;
  out->queued = rt->queued;
  out->workers = rt->nthreads;
  out->memory = rt->pool.memory;
  pthread_mutex_unlock(&rt->lock);
}

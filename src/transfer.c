/* Portable suspensions at the runtime's level (portable.h has the bytes):
 * claiming a parked execution and writing it out, and parking one that
 * came in, on the caller's thread when a sandbox is idle (no hand-off
 * either way) or else as a job a worker runs once a sandbox is free. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "portable.h"
#include "runtime_int.h"
#include "util.h"

/* The image exports are compared against, with the pages `sb` still
 * shares with it when the kernel can say. `changed`: a byte per page. */
static void image_of(nx_runtime_t *rt, const nx_sandbox_t *sb, uint8_t *changed,
                     nx_portable_image_t *img) {
  img->bytes = nx_snap_image(rt->snap);
  img->size = nx_snap_size(rt->snap);
  img->page = nx_snap_page_size(rt->snap);
  img->sha256 = nx_snap_sha256(rt->snap);
  img->changed =
      changed && sb && nx_snap_changed_pages(rt->snap, sb, changed) == 0 ? changed : NULL;
}

int nx_runtime_export(nx_runtime_t *rt, const uint8_t *id, char **out, size_t *out_len) {
  nx_portable_image_t img;
  nx_susp_entry_t *e;
  nx_task_t *task;
  nx_sandbox_t *sb;
  nx_error_code_t code;
  uint8_t *changed;
  uint64_t now = nx_util_now_ns(), remaining;
  char msg[160];
  int rc;

  pthread_mutex_lock(&rt->lock);
  if (atomic_load(&rt->stopping)) {
    pthread_mutex_unlock(&rt->lock);
    return NX_RC_STOPPING;
  }
  e = nx_susp_find(&rt->susp, id);
  if (e == NULL || !e->task->parked) {
    pthread_mutex_unlock(&rt->lock);
    return NX_RC_NOTFOUND;
  }
  /* Claimed: from here no resume, cancel or expiry can reach it, so its
   * sandbox, idle while parked, is read without the lock. It still counts
   * against maxSuspended until it is written out. */
  task = e->task;
  nx_susp_unpublish(&rt->susp, task);
  nx_runtime_unpark(rt, task);
  remaining = task->deadline_ns > now ? task->deadline_ns - now : 1;
  pthread_mutex_unlock(&rt->lock);

  sb = nx_engine_sandbox(task->exec);
  changed = malloc(nx_snap_size(rt->snap) / nx_snap_page_size(rt->snap) + 1);
  image_of(rt, sb, changed, &img);
  rc = nx_portable_export(task->exec, &img, remaining, out, out_len);
  free(changed);

  pthread_mutex_lock(&rt->lock);
  if (rc != NX_RC_OK) {
    /* Not written out: it parks again as it was, every id published anew
     * (the watermark restarts), and a waiting worker sees its deadline. */
    task->published = 0;
    if (nx_task_cannot_park(rt, task, &code, msg, sizeof msg) == NULL) {
      nx_task_park(rt, task, nx_sandbox_memory_bytes(sb), task->deadline_ns);
      pthread_cond_broadcast(&rt->cond);
      pthread_mutex_unlock(&rt->lock);
      return rc;
    }
  }
  /* Written out (or past keeping): a worker resets its sandbox (retire),
   * off the caller's thread. */
  nx_susp_unpublish(&rt->susp, task);
  rt->nsuspended--;
  task->counted = 0;
  nx_list_push_back(&rt->cancelled, &task->link);
  nx_runtime_signal_work(rt);
  pthread_mutex_unlock(&rt->lock);
  return rc;
}

/* Loads bytes into `sb` (taken from the pool; `before`: the memory the pool
 * counts for it) and parks the execution for what was left of its time,
 * at most this runtime's suspensionTimeoutMs. The sandbox is reset first
 * (a preload may have run in it), and again after a refusal. 0 with the
 * suspended result in *result; else a negative nx_rc_t, the rejection code
 * in *reject and `why` set, the sandbox back in the pool. */
static int import_into(nx_runtime_t *rt, nx_sandbox_t *sb, uint64_t before, const uint8_t *bytes,
                       size_t len, char **result, size_t *result_len, const char **reject,
                       char *why, size_t whylen) {
  nx_task_t *task = calloc(1, sizeof *task);
  nx_sandbox_t *discard = NULL;
  nx_portable_image_t img;
  nx_exec_t *ex = NULL;
  nx_error_code_t code;
  uint64_t remaining = 0, now, most = rt->cfg.suspension_timeout_ms * UINT64_C(1000000);
  const char *refusal;
  char err[100];
  int rc = NX_RC_NOMEM;

  image_of(rt, NULL, NULL, &img);
  snprintf(err, sizeof err, "host out of memory");
  if (task && nx_snap_reset(rt->snap, sb) == 0)
    rc = nx_portable_import(sb, &rt->engine, &img, bytes, len, &ex, &remaining, result, result_len,
                            err, sizeof err);
  if (rc != NX_RC_OK) {
    free(task);
    /* Part of the memory may be in: the image again, or the sandbox goes. */
    if (nx_snap_reset(rt->snap, sb) != 0) sb->broken = 1;
    pthread_mutex_lock(&rt->lock);
    nx_pool_put(&rt->pool, sb, before, &discard);
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
    nx_sandbox_free(discard);
    *reject = rc == NX_RC_NOMEM ? "INTERNAL_ERROR" : "INVALID_SUSPENSION";
    snprintf(why, whylen, "the engine refused the bytes (%s)", err);
    return rc;
  }
  nx_list_init(&task->link);
  task->exec = ex;
  now = nx_sandbox_memory_bytes(sb);
  pthread_mutex_lock(&rt->lock);
  rt->pool.memory += now - before;
  refusal = nx_task_cannot_park(rt, task, &code, why, whylen);
  if (refusal == NULL) {
    nx_task_park(rt, task, now, nx_util_now_ns() + (remaining < most ? remaining : most));
    pthread_cond_broadcast(&rt->cond);
    pthread_mutex_unlock(&rt->lock);
    return NX_RC_OK;
  }
  /* Some of its ids may be published: none may outlive the task. */
  nx_susp_unpublish(&rt->susp, task);
  if (atomic_load(&rt->stopping) || rt->closing) {
    *reject = "SHUT_DOWN";
    rc = NX_RC_STOPPING;
  } else if (code == NX_E_RESOURCE_LIMIT) {
    *reject = "RESOURCE_LIMIT";
    rc = NX_RC_INVALID;
  } else if (strcmp(refusal, NX_TASK_NOMEM) == 0) {
    *reject = "INTERNAL_ERROR";
    rc = NX_RC_NOMEM;
  } else {
    *reject = "INVALID_SUSPENSION";
    rc = NX_RC_INVALID;
  }
  if (refusal != why) snprintf(why, whylen, "%s", refusal);
  pthread_mutex_unlock(&rt->lock);
  free(*result);
  *result = NULL;
  nx_task_retire(rt, task, NULL, NULL);
  return rc;
}

int nx_runtime_import_now(nx_runtime_t *rt, const uint8_t *bytes, size_t len, char **result,
                          size_t *result_len, const char **reject, char *why, size_t whylen) {
  nx_sandbox_t *sb;
  pthread_mutex_lock(&rt->lock);
  if (atomic_load(&rt->stopping) || rt->closing) {
    pthread_mutex_unlock(&rt->lock);
    return NX_RC_STOPPING;
  }
  sb = nx_pool_take(&rt->pool);
  pthread_mutex_unlock(&rt->lock);
  if (sb == NULL) return NX_RC_NOTFOUND; /* none idle: the caller queues a job */
  return import_into(rt, sb, nx_sandbox_memory_bytes(sb), bytes, len, result, result_len, reject,
                     why, whylen);
}

int nx_runtime_import(nx_runtime_t *rt, nx_job_t *job) {
  job->kind = NX_JOB_IMPORT;
  return nx_runtime_submit(rt, job);
}

void nx_transfer_run_import(nx_runtime_t *rt, nx_job_t *job, nx_sandbox_t *sb, uint64_t before) {
  const char *reject = NULL;
  char why[160];
  int rc = import_into(rt, sb, before, job->context, job->context_len, &job->result,
                       &job->result_len, &reject, why, sizeof why);
  free(job->context);
  job->context = NULL;
  if (rc != NX_RC_OK) nx_runtime_reject_job(job, reject, why);
  job->outcome.status = NX_STATUS_SUSPENDED;
  pthread_mutex_lock(&rt->lock);
  rt->stats.active--;
  nx_runtime_complete(rt, job);
  pthread_cond_broadcast(&rt->cond);
  pthread_mutex_unlock(&rt->lock);
}

uint8_t (*nx_runtime_parked_ids(nx_runtime_t *rt, uint32_t *n))[NX_SUSPENSION_ID_BYTES] {
  uint8_t(*ids)[NX_SUSPENSION_ID_BYTES];
  nx_link_t *l;
  uint32_t i = 0, c;
  pthread_mutex_lock(&rt->lock);
  ids = malloc(((size_t)rt->susp.nparked + 1) * sizeof *ids);
  for (l = rt->susp.parked.next; ids && l != &rt->susp.parked; l = l->next) {
    nx_exec_t *ex = NX_LIST_ENTRY(l, nx_task_t, link)->exec;
    for (c = 0; c < nx_engine_calls(ex) && !nx_engine_call_pending(ex, c); c++) {
    }
    if (c < nx_engine_calls(ex)) memcpy(ids[i++], nx_engine_call_id(ex, c), NX_SUSPENSION_ID_BYTES);
  }
  pthread_mutex_unlock(&rt->lock);
  *n = i;
  if (i == 0) {
    free(ids);
    return NULL;
  }
  return ids;
}

void nx_runtime_image_sha256(nx_runtime_t *rt, uint8_t out[32]) {
  memcpy(out, nx_snap_sha256(rt->snap), 32);
}

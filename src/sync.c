/* executeHandlerSync (see sync.h). The calling thread is not one of ours:
 * its stack size is whatever its creator chose, so the wasm call-depth
 * budget is measured from where the call stands on it, every time. */
#include "sync.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime_int.h"
#include "util.h"
#include "wasm_rt/nx_wasm.h"

/* Bytes of host frames kept clear below the wasm code, and the budget per
 * nested wasm call (see nx_config_wasm_depth). */
#define NX_SYNC_STACK_RESERVE (256u << 10)
#define NX_SYNC_FRAME 768u

static __thread uintptr_t stack_low; /* lowest address of this thread's stack */

/* How many nested wasm calls fit below the current frame. */
static uint32_t depth_budget(void) {
  uintptr_t here = (uintptr_t)__builtin_frame_address(0);
  if (stack_low == 0) {
    pthread_attr_t attr;
    void *addr;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0) stack_low = (uintptr_t)addr;
    pthread_attr_destroy(&attr);
    if (stack_low == 0) return 0;
  }
  if (here - stack_low <= NX_SYNC_STACK_RESERVE) return 0;
  return (uint32_t)((here - stack_low - NX_SYNC_STACK_RESERVE) / NX_SYNC_FRAME);
}

/* A pristine sandbox for the caller, or NULL (err set): a clean one, else
 * a new one while there are free slots (each slot is created once), else
 * one that still waits for its reset, reset here rather than waited for:
 * the workers may all be busy with long handlers. Creating before
 * resetting matters: a tight loop of calls otherwise kept taking back the
 * sandbox it had just released before a worker could reset it, and paid
 * for the reset on its own latency every other call. */
static nx_sync_slot_t *acquire(nx_runtime_t *rt, char *err, size_t errlen) {
  nx_sync_slot_t *slot = NULL;
  int i, reset = 0;
  pthread_mutex_lock(&rt->lock);
  for (;;) {
    for (i = 0; i < NX_SYNC_SANDBOXES && !slot; i++)
      if (rt->sync[i].state == NX_SYNC_CLEAN) slot = &rt->sync[i];
    for (i = 0; i < NX_SYNC_SANDBOXES && !slot; i++)
      if (rt->sync[i].state == NX_SYNC_NONE) slot = &rt->sync[i];
    for (i = 0; i < NX_SYNC_SANDBOXES && !slot; i++)
      if (rt->sync[i].state == NX_SYNC_DIRTY) {
        slot = &rt->sync[i];
        reset = 1;
        atomic_fetch_sub(&rt->work, 1); /* no worker will take it now */
      }
    if (slot) break;
    pthread_cond_wait(&rt->sync_cond, &rt->lock); /* a worker is resetting one */
  }
  slot->state = NX_SYNC_BUSY;
  pthread_mutex_unlock(&rt->lock);
  if (slot->sb == NULL) {
    slot->sb = nx_snap_instantiate(rt->snap, &rt->cfg, err, errlen);
    if (slot->sb) slot->sb->cancel = &rt->cancel;
  } else if (reset && nx_snap_reset(rt->snap, slot->sb) != 0) {
    nx_sandbox_free(slot->sb);
    slot->sb = nx_snap_instantiate(rt->snap, &rt->cfg, err, errlen);
    if (slot->sb) slot->sb->cancel = &rt->cancel;
  }
  if (slot->sb == NULL) {
    pthread_mutex_lock(&rt->lock);
    slot->state = NX_SYNC_NONE;
    pthread_mutex_unlock(&rt->lock);
    return NULL;
  }
  return slot;
}

/* Hands the used sandbox to a worker for its reset. */
static void release(nx_runtime_t *rt, nx_sync_slot_t *slot) {
  pthread_mutex_lock(&rt->lock);
  slot->state = NX_SYNC_DIRTY;
  nx_runtime_signal_work(rt);
  pthread_mutex_unlock(&rt->lock);
}

static void record(nx_runtime_t *rt, const nx_exec_outcome_t *o) {
  nx_worker_record_calls(rt, o);
  nx_metrics_record_result(rt->metrics, o->status, o->code, o->duration_us);
}

int nx_sync_execute(nx_runtime_t *rt, nx_exec_mode_t mode, char *code, size_t code_len,
                    nx_lang_t *lang, uint8_t *context, size_t context_len, uint32_t timeout_ms,
                    char **out, size_t *out_len) {
  nx_exec_outcome_t outcome;
  nx_sync_slot_t *slot;
  nx_exec_t *ex;
  char err[200];
  uint32_t depth = depth_budget();
  int rc;

  *out = NULL;
  if (atomic_load(&rt->stopping) || rt->closing) {
    free(code);
    nx_engine_lang_free(lang);
    free(context);
    return NX_RC_STOPPING;
  }
  if (depth < 64) {
    free(code);
    nx_engine_lang_free(lang);
    free(context);
    return nx_result_error(NX_E_INTERNAL_ERROR, "not enough native stack left on this thread", out,
                           out_len);
  }
  slot = acquire(rt, err, sizeof err);
  if (slot == NULL) {
    free(code);
    nx_engine_lang_free(lang);
    free(context);
    return nx_result_error(NX_E_INTERNAL_ERROR, err, out, out_len);
  }
  ex = nx_engine_exec_new(slot->sb, &rt->engine, mode, code, code_len, lang, context, context_len,
                          timeout_ms);
  if (ex == NULL) {
    release(rt, slot);
    return nx_result_error(NX_E_INTERNAL_ERROR, "host out of memory", out, out_len);
  }
  nx_engine_exec_set_sync(ex);
  nx_wasm_thread_set_depth_limit(depth);
  nx_watchdog_watch(rt->watchdog, rt->nthreads, slot->sb);
  rc = nx_engine_run(ex, NULL, 0, out, out_len, &outcome);
  nx_watchdog_watch(rt->watchdog, rt->nthreads, NULL);
  record(rt, &outcome);
  nx_engine_exec_free(ex);
  release(rt, slot);
  return rc;
}

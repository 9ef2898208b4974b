/* One execution, segment by segment (see engine.h). Everything that
 * touches the guest runs inside one NX_WASM_TRY, and everything the host
 * allocates on the way belongs to the execution (exec.h): a trap or a
 * watchdog stop anywhere abandons the segment without losing a byte, and
 * becomes an error result, never a crash. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "failure.h"
#include "hostcalls.h"
#include "loader.h"
#include "mpack.h"
#include "result.h"
#include "state.h"
#include "util.h"
#include "wasm_rt/nx_fault.h"
#include "wasm_rt/nx_wasm.h"

/* ---- the first segment ------------------------------------------------------ */

/* A bin field's bytes (createState's offsets), or -1 for anything else. */
static int bin_field(const uint8_t *v, const uint8_t **bytes, size_t *len) {
  nx_mp_item_t bin;
  nx_mp_read(v, &bin);
  if (bin.type != NX_MPT_BIN) return -1;
  *bytes = bin.ptr;
  *len = bin.size;
  return 0;
}

static int field_is(const nx_mp_item_t *key, const char *name) {
  size_t n = strlen(name);
  return key->type == NX_MPT_STR && key->size == n && memcmp(key->ptr, name, n) == 0;
}

/* The context's fields, walked with the cursor (mpack.h): every field but
 * stateSnapshot is validated here; stateSnapshot, which lib puts last, is
 * only looked at key by key as the handler reads it (state.c). The
 * capabilities and the registry are read in place whenever the host
 * consults them. */
int nx_engine_parse_context(nx_exec_t *ex) {
  const uint8_t *c = ex->context;
  size_t len = ex->context_len, at;
  const uint8_t *caps = NULL;
  uint32_t count, i;
  /* A map header, then (key, value) pairs. */
  if (len == 0) goto bad;
  if ((c[0] & 0xf0) == 0x80) {
    count = c[0] & 0x0f, at = 1;
  } else if (c[0] == 0xde && len >= 3) {
    count = (uint32_t)c[1] << 8 | c[2], at = 3;
  } else {
    goto bad;
  }
  for (i = 0; i < count; i++) {
    nx_mp_item_t key;
    size_t kn = nx_mp_validate_one(c + at, len - at, 1), vn;
    const uint8_t *v;
    if (kn == 0) goto bad;
    nx_mp_read(c + at, &key);
    v = c + at + kn;
    if (field_is(&key, "stateSnapshot") && i + 1 == count) {
      ex->state.snapshot = v; /* validated as it is read */
      ex->state.snapshot_len = len - at - kn;
      at = len;
      break;
    }
    vn = nx_mp_validate_one(v, len - at - kn, NX_LIMIT_HOST_DEPTH - 1);
    if (vn == 0) goto bad;
    if (field_is(&key, "stateSnapshot")) {
      ex->state.snapshot = v;
      ex->state.snapshot_len = vn;
    } else if (field_is(&key, "stateIndex")) {
      if (bin_field(v, &ex->state.offsets, &ex->state.offsets_len) != 0) goto bad;
    } else if (field_is(&key, "stateItems")) {
      if (bin_field(v, &ex->state.items, &ex->state.items_len) != 0) goto bad;
    } else if (field_is(&key, "args")) {
      ex->args = v;
    } else if (field_is(&key, "scope")) {
      ex->scope = v;
    } else if (field_is(&key, "extensionRegistry")) {
      ex->registry_bytes = v;
    } else if (field_is(&key, "capabilities")) {
      caps = v;
    }
    at += kn + vn;
  }
  if (at != len) goto bad;
  if (nx_caps_parse(&ex->caps, caps) != 0) {
    nx_failure_set(ex, NX_E_INTERNAL_ERROR, "host out of memory");
    return NX_RC_NOMEM;
  }
  return NX_RC_OK;
bad:
  nx_failure_set(ex, NX_E_INTERNAL_ERROR,
                 "context is not a MessagePack map (nested deeper than 32 levels?)");
  return NX_RC_INVALID;
}

/* The entries of p (validated, or NULL) when it is a map, else -1
 * (msgpackr writes even {} as a map 16: the header's width says nothing). */
static int64_t map_size(const uint8_t *p) {
  nx_mp_item_t it;
  if (p == NULL) return -1;
  nx_mp_read(p, &it);
  return it.type == NX_MPT_MAP ? (int64_t)it.size : -1;
}

/* Decodes context.args / context.scope into a guest value; missing -> {}.
 * An empty map (the usual args and scope) is the same {} the decoder
 * would build, made without setting a decoder up. */
static int decode_field(nx_exec_t *ex, const uint8_t *bytes, const char *root, nx_jsval_t *out) {
  nx_sandbox_t *sb = ex->sb;
  nx_mp_decoder_t *dec;
  nx_mp_status_t st;
  if (bytes == NULL || map_size(bytes) == 0) {
    *out = Q(JS_NewObject)(&sb->inst, sb->ctx);
    if (nx_jsval_tag(*out) != NX_TAG_EXCEPTION) return NX_RC_OK;
    nx_failure_from_exception(ex, NX_E_EXECUTION_ERROR);
    return NX_RC_GUEST;
  }
  dec = nx_mem_alloc(&ex->seg, sizeof *dec);
  if (dec == NULL) {
    nx_failure_set(ex, NX_E_INTERNAL_ERROR, "host out of memory");
    return NX_RC_NOMEM;
  }
  nx_mp_decoder_init(dec, sb, root);
  st = nx_mp_decode_last(dec, bytes, out);
  if (st == NX_MP_UNCROSSABLE)
    nx_failure_set(ex, NX_E_EXECUTION_ERROR, dec->err);
  else if (st == NX_MP_GUEST)
    nx_failure_from_exception(ex, NX_E_EXECUTION_ERROR);
  else if (st == NX_MP_NOMEM)
    nx_failure_set(ex, NX_E_INTERNAL_ERROR, "host out of memory");
  nx_mem_free(&ex->seg, dec);
  return st == NX_MP_OK ? NX_RC_OK : NX_RC_GUEST;
}

/* Compiles or reads the handler, decodes its inputs and starts it. The
 * bootstrap's Math.random is seeded from the kernel for every execution
 * (fresh bytes each time, pooled only to save the syscall: util.c), so no
 * execution can learn another's sequence. */
static int start_handler(nx_exec_t *ex) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t a[8] = {NX_UNDEFINED, NX_UNDEFINED, NX_UNDEFINED, NX_UNDEFINED};
  uint32_t seed[4];
  uint64_t t = nx_util_now_ns();
  int rc = NX_RC_GUEST, i;

  a[0] = nx_loader_load(ex, NULL, NULL);
  ex->compile_us = (nx_util_now_ns() - t) / 1000u;
  if (nx_jsval_tag(a[0]) == NX_TAG_EXCEPTION || ex->fail.code != NX_OK) {
    if (nx_jsval_tag(a[0]) != NX_TAG_EXCEPTION) nx_sandbox_free_value(sb, a[0]);
    a[0] = NX_UNDEFINED;
    goto done;
  }
  if (decode_field(ex, ex->args, "args", &a[1]) != 0 ||
      decode_field(ex, ex->scope, "scope", &a[2]) != 0)
    goto done;
  if (map_size(ex->registry_bytes) > 0 &&
      decode_field(ex, ex->registry_bytes, "extensionRegistry", &a[3]) != 0)
    goto done;
  if (nx_util_random_pooled(seed, sizeof seed) != 0) {
    nx_failure_set(ex, NX_E_INTERNAL_ERROR, "the kernel's random source failed");
    goto done;
  }
  for (i = 0; i < 4; i++) a[4 + i] = NX_INT((int32_t)seed[i]);
  ex->promise = nx_sandbox_call(sb, sb->run, a, 8);
  if (nx_jsval_tag(ex->promise) == NX_TAG_EXCEPTION) {
    ex->promise = NX_UNDEFINED;
    nx_failure_from_exception(ex, NX_E_EXECUTION_ERROR);
    goto done;
  }
  rc = NX_RC_OK;
done:
  for (i = 0; i < 4; i++) nx_sandbox_free_value(sb, a[i]);
  return rc;
}

/* ---- a resume ------------------------------------------------------------------ */

/* Resolves or rejects the guest promise of each answered call. Settling may
 * run handler code (a `then` getter), so nothing here keeps a pointer into
 * the execution's tables across it. */
static int settle_calls(nx_exec_t *ex, const nx_answer_t *answers, uint32_t n) {
  nx_sandbox_t *sb = ex->sb;
  nx_mp_decoder_t *dec = nx_mem_alloc(&ex->seg, sizeof *dec); /* freed with the segment */
  uint32_t i;
  if (dec == NULL) {
    nx_failure_set(ex, NX_E_INTERNAL_ERROR, "host out of memory");
    return NX_RC_NOMEM;
  }
  for (i = 0; i < n; i++) {
    const nx_answer_t *an = &answers[i];
    nx_jsval_t a[3], r;
    nx_mp_status_t st = NX_MP_UNCROSSABLE;
    char *err;

    if (!nx_host_answer(ex, an->call)) continue;
    a[0] = NX_INT(an->call);
    a[1] = NX_BOOL(an->ok);
    a[2] = NX_UNDEFINED;
    nx_mp_decoder_init(dec, sb, "result.value");
    err = dec->err;
    snprintf(err, sizeof dec->err, "the host's answer could not be read");
    if (nx_mp_validate(an->bytes, an->len, NX_LIMIT_HOST_DEPTH) == 0)
      st = nx_mp_decode_last(dec, an->bytes, &a[2]);
    if (st == NX_MP_GUEST) {
      nx_failure_from_exception(ex, NX_E_EXECUTION_ERROR);
      return NX_RC_GUEST;
    }
    if (st == NX_MP_UNCROSSABLE) { /* reject the call rather than lose it */
      uint32_t p = nx_sandbox_put(sb, err, strlen(err));
      a[1] = NX_BOOL(0);
      a[2] = p ? Q(JS_NewStringLen)(&sb->inst, sb->ctx, p, (uint32_t)strlen(err)) : NX_EXCEPTION;
      if (nx_jsval_tag(a[2]) == NX_TAG_EXCEPTION) {
        nx_failure_from_exception(ex, NX_E_EXECUTION_ERROR);
        return NX_RC_GUEST;
      }
    }
    r = nx_sandbox_call(sb, sb->settle, a, 3);
    nx_sandbox_free_value(sb, a[2]);
    if (nx_jsval_tag(r) == NX_TAG_EXCEPTION) {
      nx_failure_from_exception(ex, NX_E_EXECUTION_ERROR);
      return NX_RC_GUEST;
    }
    nx_sandbox_free_value(sb, r);
  }
  return NX_RC_OK;
}

/* ---- every segment ------------------------------------------------------------ */

/* Runs promise jobs until none is left; NX_RC_GUEST if one threw past its
 * promise. */
static int drain_jobs(nx_exec_t *ex) {
  nx_sandbox_t *sb = ex->sb;
  uint32_t out = nx_sandbox_outs_push(sb, 1);
  int32_t r;
  if (out == 0) return NX_RC_GUEST;
  do {
    r = (int32_t)Q(JS_ExecutePendingJob)(&sb->inst, sb->qrt, out);
  } while (r > 0);
  nx_sandbox_outs_pop(sb, 1);
  return r < 0 ? NX_RC_GUEST : NX_RC_OK;
}

/* precompileHandler(): compile, no run; the result's returnValue is the
 * buffer. */
static nx_status_t run_compile(nx_exec_t *ex) {
  nx_sandbox_t *sb = ex->sb;
  uint8_t *packed = NULL;
  size_t packed_len = 0;
  uint64_t t = nx_util_now_ns();
  nx_jsval_t fn = nx_loader_load(ex, &packed, &packed_len);
  ex->compile_us = (nx_util_now_ns() - t) / 1000u;
  if (nx_jsval_tag(fn) != NX_TAG_EXCEPTION) nx_sandbox_free_value(sb, fn);
  if (packed == NULL || ex->fail.code != NX_OK) return NX_STATUS_ERROR;
  nx_mp_pack_bin(&ex->retval, packed, packed_len);
  if (ex->retval.refused) {
    nx_failure_set(ex, NX_E_INTERNAL_ERROR, "host out of memory");
    return NX_STATUS_ERROR;
  }
  return NX_STATUS_SUCCESS;
}

/* The handler's promise has settled or waits on the host: take what the
 * result needs out of the guest. Getters that run while values are copied
 * may still use $state, $emit, $view and $log (not $ext); then the host
 * functions close and only the host works. */
static nx_status_t finish_segment(nx_exec_t *ex) {
  nx_sandbox_t *sb = ex->sb;
  nx_status_t status = NX_STATUS_ERROR;
  nx_jsval_t value;
  int rc;

  switch ((int32_t)Q(JS_PromiseState)(&sb->inst, sb->ctx, ex->promise)) {
    case 1: /* fulfilled */
      ex->phase = NX_PHASE_FINISH;
      value = Q(JS_PromiseResult)(&sb->inst, sb->ctx, ex->promise);
      rc = nx_result_encode(ex, value, &ex->retval, "returnValue");
      nx_sandbox_free_value(sb, value);
      if (rc == 0 && nx_state_snapshot(ex) == 0) status = NX_STATUS_SUCCESS;
      break;
    case 2: /* rejected */
      value = Q(JS_PromiseResult)(&sb->inst, sb->ctx, ex->promise);
      nx_failure_from_value(ex, value, NX_E_EXECUTION_ERROR);
      nx_sandbox_free_value(sb, value);
      break;
    case 0:
      if (sb->interrupted) {
        nx_failure_timeout(ex);
      } else if (ex->nanswered < ex->ncalls) {
        ex->phase = NX_PHASE_FINISH;
        if (nx_state_snapshot(ex) == 0) status = NX_STATUS_SUSPENDED;
      } else {
        nx_failure_set(ex, NX_E_EXECUTION_ERROR,
                       "Handler never settled: it awaited a promise that nothing can resolve");
      }
      break;
    default: nx_failure_set(ex, NX_E_INTERNAL_ERROR, "run() did not return a promise");
  }
  ex->phase = NX_PHASE_CLOSED;
  return status;
}

/* Native recursion until the stack runs out: the fault lands on the
 * stack's guard, under the sandbox's NX_WASM_TRY. The volatile frame keeps
 * the compiler from turning it into a loop. */
static uint32_t exhaust_stack(uint32_t depth) {
  volatile uint8_t frame[1024];
  frame[0] = (uint8_t)depth;
  if (depth == UINT32_MAX) return frame[0]; /* 4 TiB of stack: never */
  return exhaust_stack(depth + 1) + frame[0];
}

static void inject_fault(nx_exec_t *ex, uint32_t kind) {
  nx_sandbox_t *sb = ex->sb;
  if (kind == NX_ENGINE_FAULT_OOB) /* JS_GetRuntime(ctx) loads ctx->rt: ctx is 4 GiB in */
    (void)Q(JS_GetRuntime)(&sb->inst, UINT32_C(0xFFFFFF00));
  else if (kind == NX_ENGINE_FAULT_STACK)
    (void)exhaust_stack(0);
}

/* The part of a segment that runs guest code. Kept out of nx_engine_run so
 * no local lives across its setjmp: everything it leaves is in `ex`. */
static nx_status_t run_guarded(nx_exec_t *ex, int first, const nx_answer_t *answers, uint32_t n) {
  _Atomic uint32_t *fault = ex->engine->fault_next;
  nx_sandbox_t *sb = ex->sb;
  nx_status_t status = NX_STATUS_ERROR;
  uint32_t kind;

  if (fault && atomic_load_explicit(fault, memory_order_relaxed) &&
      (kind = atomic_exchange(fault, 0)) != 0)
    inject_fault(ex, kind);

  if (ex->mode == NX_MODE_COMPILE) {
    status = run_compile(ex);
  } else if (first ? start_handler(ex) != 0 : settle_calls(ex, answers, n) != 0) {
    /* the failure is set */
  } else if (drain_jobs(ex) != 0) {
    nx_failure_from_exception(ex, NX_E_EXECUTION_ERROR);
  } else {
    status = finish_segment(ex);
  }
  if (sb->interrupted || sb->stop) sb->broken = 1;
  return status;
}

/* The guest was interrupted mid-operation by a trap: it is never run
 * again before the reset to its snapshot that the execution's end brings. */
static void trapped(nx_exec_t *ex, int trap) {
  char msg[120];
  ex->sb->broken = 1;
  if (atomic_load_explicit(&ex->sb->killed, memory_order_relaxed)) {
    snprintf(msg, sizeof msg, "Execution timed out after %u ms (stopped inside the engine)",
             (unsigned)(ex->timeout_ns / 1000000u));
    nx_failure_set(ex, NX_E_TIMEOUT, msg);
  } else if (trap == WASM_RT_TRAP_EXHAUSTION) {
    nx_failure_set(ex, NX_E_EXECUTION_ERROR, "RangeError: Maximum call stack size exceeded");
  } else {
    snprintf(msg, sizeof msg, "Sandbox trapped (%s); it was reset", nx_wasm_trap_name(trap));
    nx_failure_set(ex, NX_E_INTERNAL_ERROR, msg);
  }
}

/* The guest heap's size for the result's metrics, read under a guard of its
 * own: nothing outside a guard reads the memory of a sandbox the watchdog
 * may still stop, because in guard mode stopping it revokes access to every
 * page (watchdog.c) and that read would fault outside any sandbox. */
static void read_heap_used(nx_exec_t *ex) {
  nx_sandbox_t *sb = ex->sb;
  nx_wasm_guard_t guard;
  uint32_t used = 0;
  ex->heap_used = 0;
  if (ex->engine->heap_used_offset == 0) return;
  if (NX_WASM_TRY(&guard, nx_sandbox_trap_memory(sb)) != 0) return;
  if (nx_guest_read_u32(&sb->inst, sb->qrt + ex->engine->heap_used_offset, &used) == 0)
    ex->heap_used = used;
  nx_wasm_leave(&guard);
}

/* Each result reports what happened since the previous one, within a fresh
 * budget: what the segment writes plus the calls still pending, which its
 * result lists again. */
static void segment_begin(nx_exec_t *ex) {
  ex->budget.used = 0;
  nx_result_begin_segment(ex);
  nx_host_begin_segment(ex);
  nx_failure_clear(ex);
  ex->phase = NX_PHASE_RUN;
  ex->start_ns = nx_util_now_ns();
  ex->interrupts0 = ex->sb->interrupts;
}

/* What a segment leaves behind, on every path (a trap included): the
 * result's parts are in the result by now. */
static void segment_end(nx_exec_t *ex) {
  nx_buf_free(&ex->retval);
  nx_buf_free(&ex->mutations);
  if (ex->blob) nx_blob_release(ex->blob);
  ex->blob = NULL;
  nx_state_end_segment(ex);
  nx_failure_clear(ex);
  nx_mem_release(&ex->seg);
}

/* The result of a segment that ran: the mutations first (a suspension
 * makes them the new baselines), then the WasmResult. */
static int build_result(nx_exec_t *ex, nx_status_t *status, uint64_t duration_us,
                        uint64_t compile_us, char **out, size_t *out_len) {
  if (*status != NX_STATUS_ERROR && ex->mode != NX_MODE_COMPILE &&
      nx_state_mutations(ex, &ex->mutations, *status == NX_STATUS_SUSPENDED) != 0) {
    nx_failure_set(ex, NX_E_INTERNAL_ERROR, "host out of memory");
    *status = NX_STATUS_ERROR;
  }
  if (nx_result_finish(ex, *status, duration_us, compile_us, out, out_len) == 0) return NX_RC_OK;
  /* Not even the result could be built: the execution cannot go on. */
  *status = NX_STATUS_ERROR;
  if (ex->fail.code == NX_OK) nx_failure_set(ex, NX_E_INTERNAL_ERROR, "host out of memory");
  return NX_RC_NOMEM;
}

int nx_engine_run(nx_exec_t *ex, const nx_answer_t *answers, uint32_t nanswers, char **out,
                  size_t *out_len, nx_exec_outcome_t *outcome) {
  nx_sandbox_t *sb = ex->sb;
  nx_wasm_guard_t guard;
  volatile nx_status_t status = NX_STATUS_ERROR;
  nx_status_t final;
  uint64_t seg_ns, left;
  int first = !ex->started, trap, rc;

  segment_begin(ex);
  ex->started = 1;
  if (first && ex->mode != NX_MODE_COMPILE && nx_engine_parse_context(ex) != 0) goto finish;
  /* Segments of one execution may run on different threads: each that runs
   * a guard-page sandbox needs its alternate stack and stack bounds. */
  if (nx_sandbox_guard_pages(sb) && nx_fault_thread_ready() != 0) {
    nx_failure_set(ex, NX_E_INTERNAL_ERROR, "could not set up this thread for guard pages");
    goto finish;
  }

  sb->exec = ex;
  sb->interrupted = 0;
  sb->outs_top = 0;
  /* The timeout counts run time only, not time spent suspended. */
  left = ex->timeout_ns > ex->run_ns ? ex->timeout_ns - ex->run_ns : 0;
  atomic_store(&sb->deadline_ns, ex->start_ns + (left ? left : 1));

  trap = NX_WASM_TRY(&guard, nx_sandbox_trap_memory(sb));
  if (trap != 0) {
    trapped(ex, trap);
    read_heap_used(ex);
    goto finish;
  }
  status = run_guarded(ex, first, answers, nanswers);
  nx_wasm_leave(&guard);
  read_heap_used(ex);

finish:
  nx_failure_finish(ex);
  final = status;
  if (ex->fail.code != NX_OK) final = NX_STATUS_ERROR;
  if (final == NX_STATUS_ERROR && ex->fail.code == NX_OK)
    nx_failure_set(ex, NX_E_INTERNAL_ERROR, "the execution failed without a reason");
  seg_ns = nx_util_now_ns() - ex->start_ns;
  ex->run_ns += seg_ns;
  rc = build_result(ex, &final, seg_ns / 1000u, first ? ex->compile_us : 0, out, out_len);
  if (outcome) {
    outcome->status = final;
    outcome->code = final == NX_STATUS_ERROR ? ex->fail.code : NX_OK;
    outcome->duration_us = seg_ns / 1000u;
    outcome->compile_us = first ? ex->compile_us : 0;
    outcome->cache = first && ex->cache_lookup ? ex->cache_hit : -1;
    outcome->counts = ex->counts;
    outcome->ncounts = ex->ncounts;
  }
  sb->exec = NULL;
  atomic_store(&sb->deadline_ns, 0);
  segment_end(ex);
  return rc;
}

int nx_engine_suspended_result(nx_exec_t *ex, char **out, size_t *out_len) {
  int rc;
  segment_begin(ex);
  ex->phase = NX_PHASE_CLOSED;
  rc = nx_result_finish(ex, NX_STATUS_SUSPENDED, 0, 0, out, out_len);
  segment_end(ex);
  return rc == 0 ? NX_RC_OK : NX_RC_NOMEM;
}

/* ---- the execution ------------------------------------------------------------ */

void nx_engine_lang_free(nx_lang_t *lang) {
  free(lang->js);
  free(lang->error);
  memset(lang, 0, sizeof *lang);
}

nx_exec_t *nx_engine_exec_new(nx_sandbox_t *sb, const nx_engine_t *engine, nx_exec_mode_t mode,
                              char *code, size_t code_len, nx_lang_t *lang, uint8_t *context,
                              size_t context_len, uint32_t timeout_ms) {
  const nx_config_t *cfg = engine->cfg;
  nx_exec_t *ex = calloc(1, sizeof *ex);
  if (ex == NULL) goto fail;
  ex->sb = sb;
  ex->cfg = cfg;
  ex->engine = engine;
  ex->mode = mode;
  ex->code = code;
  ex->code_len = code_len;
  ex->lang = *lang;
  memset(lang, 0, sizeof *lang);
  ex->context = context;
  ex->context_len = context_len;
  ex->promise = NX_UNDEFINED;
  ex->timeout_ns = (uint64_t)(timeout_ms ? timeout_ms : cfg->default_timeout_ms) * 1000000u;
  nx_mem_init(&ex->mem);
  nx_mem_init(&ex->seg);
  ex->budget.limit = cfg->max_result_bytes;
  /* A precompiled buffer is not a handler's result: no budget. */
  nx_buf_init(&ex->retval, &ex->mem, mode == NX_MODE_COMPILE ? NULL : &ex->budget);
  nx_buf_init(&ex->mutations, &ex->mem, NULL); /* its values are charged already */
  nx_result_init(ex);
  if (nx_host_init(ex) != 0) {
    nx_engine_exec_free(ex);
    return NULL;
  }
  return ex;
fail:
  free(code);
  nx_engine_lang_free(lang);
  free(context);
  return NULL;
}

void nx_engine_exec_free(nx_exec_t *ex) {
  if (ex == NULL) return;
  /* Guest references are not released one by one: the sandbox is reset to
   * its snapshot (or destroyed), which drops the guest's whole heap. */
  nx_caps_free(&ex->caps);
  if (ex->blob) nx_blob_release(ex->blob);
  nx_mem_release(&ex->seg);
  nx_mem_release(&ex->mem);
  free(ex->code);
  nx_engine_lang_free(&ex->lang);
  free(ex->context);
  free(ex);
}

void nx_engine_exec_set_sync(nx_exec_t *ex) { ex->sync = 1; }

nx_sandbox_t *nx_engine_sandbox(const nx_exec_t *ex) { return ex->sb; }
uint32_t nx_engine_calls(const nx_exec_t *ex) { return ex->ncalls; }
const uint8_t *nx_engine_call_id(const nx_exec_t *ex, uint32_t call) { return ex->calls[call].id; }
int nx_engine_call_pending(const nx_exec_t *ex, uint32_t call) { return !ex->calls[call].answered; }

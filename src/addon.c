/* The Node-API surface: the native Runtime class behind lib/index.js, a
 * flat list of short functions in the manner of sodium-native's binding.c.
 * Context-aware (no globals), so it loads in several worker_threads at
 * once. Results come back from worker threads through one threadsafe
 * function per runtime and settle the caller's promise on the JS thread. */
#include <node_api.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "config.h"
#include "list.h"
#include "runtime.h"
#include "suspend.h"
#include "sync.h"
#include "util.h"

/* Every napi_status is checked: a failed call jumps to the function's one
 * cleanup label. */
#define NX_CALL(call)                 \
  do {                                \
    if ((call) != napi_ok) goto fail; \
  } while (0)

/* Throws `kind` (type or range) with `msg` and returns NULL from the
 * calling callback unless `cond` holds. */
#define NX_ASSERT(cond, kind, msg)               \
  do {                                           \
    if (!(cond)) {                               \
      napi_throw_##kind##_error(env, NULL, msg); \
      return NULL;                               \
    }                                            \
  } while (0)

/* The wrapped Runtime and its arguments: declares argc/argv/self/a. */
#define NX_ARGV(n)                                \
  size_t argc = n;                                \
  napi_value argv[(n) > 0 ? (n) : 1];             \
  nx_addon_t *a = unwrap(env, info, &argc, argv); \
  if (a == NULL) return NULL

/* A promise the JS thread waits for. Linked in the runtime's list until it
 * is settled, so an environment torn down with executions in flight
 * (a terminated worker thread) can still settle, and free, every one. */
typedef struct {
  nx_link_t link;
  napi_deferred deferred; /* NULL once settled */
} nx_pending_t;

/* executeBatch: the jobs of one call, settled together by the last one to
 * finish, so the batch costs one hand-off each way. */
typedef struct nx_batch_s {
  _Atomic uint32_t remaining;
  uint32_t n;
  nx_pending_t *pending;
  nx_job_t *jobs[];
} nx_batch_t;

typedef struct {
  napi_env env;
  nx_runtime_t *rt;
  napi_threadsafe_function tsfn;
  napi_ref self;     /* strong while executions are in flight */
  nx_link_t pending; /* nx_pending_t, unsettled */
  uint32_t inflight;
  int closing;            /* shutdown() called: refuse new work */
  int closed;             /* runtime stopped, tsfn released */
  napi_deferred *waiters; /* shutdown() promises to settle when drained */
  uint32_t nwaiters;
} nx_addon_t;

/* Rejects `d` with an Error whose .code is `code`. 0 or -1. */
static int reject_with_code(napi_env env, napi_deferred d, const char *code, const char *message) {
  napi_value msg, err, codev;
  NX_CALL(napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg));
  NX_CALL(napi_create_error(env, NULL, msg, &err));
  if (code) {
    NX_CALL(napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &codev));
    NX_CALL(napi_set_named_property(env, err, "code", codev));
  }
  NX_CALL(napi_reject_deferred(env, d, err));
  return 0;
fail:
  return -1;
}

/* A promise already rejected with `code`. */
static napi_value rejected(napi_env env, const char *code, const char *message) {
  napi_deferred d;
  napi_value promise;
  NX_CALL(napi_create_promise(env, &d, &promise));
  NX_CALL(reject_with_code(env, d, code, message) == 0 ? napi_ok : napi_generic_failure);
  return promise;
fail:
  nx_args_throw_last(env, message);
  return NULL;
}

static nx_addon_t *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  nx_addon_t *a = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok ||
      napi_unwrap(env, self, (void **)&a) != napi_ok || a == NULL) {
    nx_args_throw_last(env, "not a Runtime");
    return NULL;
  }
  return a;
}

/* ---- teardown ------------------------------------------------------------ */

/* Settles what is still pending when the environment goes away: the
 * promise can no longer be awaited, but its handle must be freed. */
static void abandon_pending(nx_addon_t *a) {
  nx_link_t *l;
  for (l = a->pending.next; l != &a->pending; l = l->next) {
    nx_pending_t *p = NX_LIST_ENTRY(l, nx_pending_t, link);
    napi_value undef;
    if (p->deferred && napi_get_undefined(a->env, &undef) == napi_ok)
      napi_reject_deferred(a->env, p->deferred, undef);
    p->deferred = NULL;
  }
}

static void settle_waiters(nx_addon_t *a) {
  napi_value undef;
  uint32_t i;
  if (napi_get_undefined(a->env, &undef) == napi_ok)
    for (i = 0; i < a->nwaiters; i++) napi_resolve_deferred(a->env, a->waiters[i], undef);
  free(a->waiters);
  a->waiters = NULL;
  a->nwaiters = 0;
}

static void env_cleanup(void *arg);

/* Stops the workers and releases the threadsafe function. Safe to call more
 * than once; `from_hook` when the environment itself is going away. */
static void teardown(nx_addon_t *a, int from_hook) {
  if (a->closed) return;
  a->closed = 1;
  a->closing = 1;
  if (from_hook) nx_runtime_cancel(a->rt);
  nx_runtime_stop(a->rt); /* every job has been handed to the tsfn by now */
  a->rt = NULL;
  if (from_hook) abandon_pending(a);
  napi_release_threadsafe_function(a->tsfn, napi_tsfn_abort);
  if (!from_hook) napi_remove_env_cleanup_hook(a->env, env_cleanup, a);
}

static void env_cleanup(void *arg) { teardown(arg, 1); }

static void finalize_runtime(napi_env env, void *data, void *hint) {
  nx_addon_t *a = data;
  (void)env;
  (void)hint;
  teardown(a, 0);
  if (a->self) napi_delete_reference(a->env, a->self);
  free(a->waiters);
  free(a);
}

/* ---- completion (JS thread) ---------------------------------------------- */

static void free_result(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

/* Results up to this size are copied into an ordinary Buffer: an external
 * one costs V8 a backing store and a finalizer to track and run, more than
 * copying a small result (8% of the sync path in a profile of a trivial
 * handler). Bigger ones are handed over without a copy. */
#define NX_COPY_RESULT (16u << 10)

/* The result bytes (consumed, whatever happens) as a Buffer. */
static napi_status result_buffer(napi_env env, char *bytes, size_t len, napi_value *buf) {
  napi_status st;
  if (len <= NX_COPY_RESULT) {
    st = napi_create_buffer_copy(env, len, bytes, NULL, buf);
    free(bytes);
    return st;
  }
  st = napi_create_external_buffer(env, len, bytes, free_result, NULL, buf);
  if (st != napi_ok) free(bytes);
  return st;
}

/* Settles one job's promise: a rejection with a code, or the result bytes
 * as a Buffer (result_buffer). */
static void settle(napi_env env, nx_job_t *job, napi_deferred d) {
  napi_value buf;
  char *bytes = job->reject_code ? NULL : job->result;
  if (bytes) job->result = NULL; /* result_buffer consumes it */
  if (job->reject_code) {
    reject_with_code(env, d, job->reject_code, job->reject_message);
  } else if (bytes && result_buffer(env, bytes, job->result_len, &buf) == napi_ok) {
    napi_resolve_deferred(env, d, buf);
  } else {
    reject_with_code(env, d, NULL, "nexus-wasm-bridge: could not build the result");
  }
}

/* Resolves a batch's promise with its results, in the order given. */
static void settle_batch(napi_env env, nx_batch_t *b, napi_deferred d) {
  napi_value arr, buf;
  uint32_t i;
  if (napi_create_array_with_length(env, b->n, &arr) != napi_ok) goto fail;
  for (i = 0; i < b->n; i++) {
    nx_job_t *job = b->jobs[i];
    char *bytes = job->result;
    job->result = NULL; /* result_buffer consumes it */
    if (bytes == NULL || result_buffer(env, bytes, job->result_len, &buf) != napi_ok) goto fail;
    if (napi_set_element(env, arr, i, buf) != napi_ok) goto fail;
  }
  napi_resolve_deferred(env, d, arr);
  return;
fail:
  reject_with_code(env, d, NULL, "nexus-wasm-bridge: could not build the results");
}

static void free_batch(nx_batch_t *b) {
  uint32_t i;
  for (i = 0; i < b->n; i++) nx_job_free(b->jobs[i]);
  free(b);
}

static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  nx_addon_t *a = context;
  nx_job_t *job = data;
  nx_batch_t *batch = job->batch;
  nx_pending_t *p = batch ? batch->pending : job->data;
  uint32_t refs;
  (void)js_cb;

  nx_list_remove(&p->link);
  if (env && p->deferred) {
    if (batch)
      settle_batch(env, batch, p->deferred);
    else
      settle(env, job, p->deferred);
  }
  free(p);
  if (batch)
    free_batch(batch);
  else
    nx_job_free(job);
  if (env == NULL) return; /* the tsfn is being torn down: the env is going away */
  if (--a->inflight == 0) {
    napi_unref_threadsafe_function(env, a->tsfn);
    napi_reference_unref(env, a->self, &refs);
    if (a->closing) {
      teardown(a, 0);
      settle_waiters(a);
    }
  }
}

/* On a worker thread: hands the job to the JS thread. The tsfn's queue is
 * unbounded (max_queue_size 0), so this never blocks, which is why the
 * runtime may call it under its lock. */
static void job_done(nx_job_t *job, void *arg) {
  nx_addon_t *a = arg;
  /* A batch goes back once, with its last job. */
  if (job->batch && atomic_fetch_sub(&job->batch->remaining, 1) != 1) return;
  /* It fails only once the tsfn is released, after every worker has been
   * joined, so never in practice; the job's promise then stays in the
   * pending list (only the JS thread touches it) for teardown to settle. */
  if (napi_call_threadsafe_function(a->tsfn, job, napi_tsfn_blocking) != napi_ok) nx_job_free(job);
}

/* A promise the JS thread now waits for (stored at *slot): while any is in
 * flight the threadsafe function and the wrapper keep the process alive. */
static int track_promise(napi_env env, nx_addon_t *a, nx_pending_t **slot, napi_value *promise) {
  nx_pending_t *p = calloc(1, sizeof *p);
  uint32_t refs;
  if (p == NULL) return -1;
  if (napi_create_promise(env, &p->deferred, promise) != napi_ok) {
    free(p);
    return -1;
  }
  nx_list_push_back(&a->pending, &p->link);
  *slot = p;
  if (a->inflight++ == 0) {
    napi_ref_threadsafe_function(env, a->tsfn);
    napi_reference_ref(env, a->self, &refs);
  }
  return 0;
}

static int track(napi_env env, nx_addon_t *a, nx_job_t *job, napi_value *promise) {
  return track_promise(env, a, (nx_pending_t **)&job->data, promise);
}

/* Undoes track_promise() for work that was never queued, rejecting the
 * promise. */
static void untrack(napi_env env, nx_addon_t *a, nx_pending_t **slot, const char *code,
                    const char *message) {
  nx_pending_t *p = *slot;
  uint32_t refs;
  reject_with_code(env, p->deferred, code, message);
  nx_list_remove(&p->link);
  free(p);
  *slot = NULL;
  if (--a->inflight == 0) {
    napi_unref_threadsafe_function(env, a->tsfn);
    napi_reference_unref(env, a->self, &refs);
  }
}

/* ---- methods ------------------------------------------------------------------ */

/* new Runtime(config) */
static napi_value addon_new(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self, name;
  napi_valuetype t = napi_undefined;
  nx_config_t cfg;
  nx_addon_t *a = NULL;
  char err[200];

  NX_CALL(napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  if (argc >= 1) NX_CALL(napi_typeof(env, argv[0], &t));
  NX_ASSERT(t == napi_object, type, "Runtime(config): config must be an object");
  if (nx_args_config(env, argv[0], &cfg) != 0) return NULL;
  a = calloc(1, sizeof *a);
  NX_ASSERT(a != NULL, range, "out of memory");
  a->env = env;
  nx_list_init(&a->pending);
  NX_CALL(napi_create_string_utf8(env, "nexus-wasm-bridge", NAPI_AUTO_LENGTH, &name));
  NX_CALL(napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, a, call_js,
                                          &a->tsfn));
  NX_CALL(napi_unref_threadsafe_function(env, a->tsfn));
  a->rt = nx_runtime_start(&cfg, job_done, a, err, sizeof err);
  if (a->rt == NULL) {
    napi_release_threadsafe_function(a->tsfn, napi_tsfn_abort);
    free(a);
    napi_throw_error(env, NULL, err);
    return NULL;
  }
  if (napi_wrap(env, self, a, finalize_runtime, NULL, NULL) != napi_ok ||
      napi_create_reference(env, self, 0, &a->self) != napi_ok) {
    teardown(a, 0);
    free(a);
    nx_args_throw_last(env, "could not wrap the runtime");
    return NULL;
  }
  NX_CALL(napi_add_env_cleanup_hook(env, env_cleanup, a));
  return self;
fail:
  if (a && a->rt == NULL) {
    if (a->tsfn) napi_release_threadsafe_function(a->tsfn, napi_tsfn_abort);
    free(a);
  }
  nx_args_throw_last(env, "could not create the runtime");
  return NULL;
}

/* The job an execute call describes: (handler, context: Buffer, timeoutMs,
 * mode?, language?, ts?) where mode 0 (default) means handler is source, 1
 * a precompiled Uint8Array, 2 compile only (context ignored; the result's
 * returnValue is the bytecode). language: the source's, an index into the
 * contract's languages (0: js); for TypeScript `ts` is the source with its
 * types stripped, or why they could not be (see nx_args_lang). NULL with an
 * exception thrown. */
static nx_job_t *read_job(napi_env env, size_t argc, napi_value *argv) {
  napi_valuetype t = napi_undefined;
  nx_job_t *job = NULL;
  double timeout = -1, mode = 0;
  int rc;

  if (argc >= 4) NX_CALL(napi_get_value_double(env, argv[3], &mode));
  NX_ASSERT(mode == 0 || mode == 1 || mode == 2, range,
            "execute(handler, context, timeoutMs, mode): mode must be 0, 1 or 2");
  if (argc >= 1) NX_CALL(napi_typeof(env, argv[0], &t));
  NX_ASSERT(argc >= 3 && (mode == 1 || t == napi_string), type,
            "execute(code, context, timeoutMs): code must be a string");
  if (napi_get_value_double(env, argv[2], &timeout) != napi_ok) timeout = -1;
  NX_ASSERT(timeout >= 0 && timeout <= NX_LIMIT_TIMEOUT_MS, range,
            "execute(code, context, timeoutMs): timeoutMs out of range");
  NX_ASSERT(mode != 1 || argc < 5, type, "execute: precompiled bytecode has no language");
  job = calloc(1, sizeof *job);
  if (job == NULL) goto oom;
  rc = nx_args_lang(env, argc >= 5 ? argv[4] : NULL, argc >= 6 ? argv[5] : NULL, &job->lang);
  if (rc == -2) goto oom;
  if (rc != 0) {
    nx_job_free(job);
    return NULL;
  }
  job->mode = (nx_exec_mode_t)mode;
  job->timeout_ms = (uint32_t)timeout;
  rc = nx_args_bytes(env, argv[1], &job->context, &job->context_len);
  if (rc == -2) goto oom;
  if (rc != 0) {
    nx_job_free(job);
    NX_ASSERT(0, type, "execute(code, context, timeoutMs): context must be a Buffer");
  }
  rc = mode == 1 ? nx_args_bytes(env, argv[0], (uint8_t **)&job->code, &job->code_len)
                 : nx_args_string(env, argv[0], &job->code, &job->code_len);
  if (rc == -2) goto oom;
  if (rc != 0) {
    nx_job_free(job);
    NX_ASSERT(0, type, "executeCompiled: bytecode must be a Uint8Array");
  }
  return job;
oom:
  nx_job_free(job);
  napi_throw_error(env, NULL, "out of memory");
  return NULL;
fail:
  nx_job_free(job);
  nx_args_throw_last(env, "execute failed");
  return NULL;
}

/* execute(handler, context, timeoutMs, mode?, language?, ts?) -> Promise<Buffer> */
static napi_value addon_execute(napi_env env, napi_callback_info info) {
  NX_ARGV(6);
  napi_value promise;
  nx_job_t *job;

  if (a->closing) return rejected(env, "SHUT_DOWN", "runtime is shut down");
  job = read_job(env, argc, argv);
  if (job == NULL) return NULL;
  if (track(env, a, job, &promise) != 0) {
    nx_job_free(job);
    nx_args_throw_last(env, "execute failed");
    return NULL;
  }
  if (nx_runtime_submit(a->rt, job) != 0) { /* not while `closing` is clear */
    untrack(env, a, (nx_pending_t **)&job->data, "SHUT_DOWN", "runtime is shut down");
    nx_job_free(job);
  }
  return promise;
}

/* executeBatch(items: [handler, context, timeoutMs, mode][]) -> Promise<Buffer[]>:
 * the jobs go to the workers in one hand-off and come back in one. */
static napi_value addon_execute_batch(napi_env env, napi_callback_info info) {
  NX_ARGV(1);
  napi_value promise = NULL, item, fields[4];
  nx_batch_t *b = NULL;
  bool is_array = false;
  uint32_t n = 0, i, len;

  if (argc >= 1) NX_CALL(napi_is_array(env, argv[0], &is_array));
  if (is_array) NX_CALL(napi_get_array_length(env, argv[0], &n));
  NX_ASSERT(is_array && n > 0 && n <= NX_LIMIT_ANSWERS, type,
            "executeBatch(items): items must be a non-empty array");
  if (a->closing) return rejected(env, "SHUT_DOWN", "runtime is shut down");
  b = calloc(1, sizeof *b + n * sizeof b->jobs[0]);
  NX_ASSERT(b != NULL, range, "out of memory");
  b->n = n;
  atomic_store(&b->remaining, n);
  for (i = 0; i < n; i++) {
    uint32_t k;
    NX_CALL(napi_get_element(env, argv[0], i, &item));
    NX_CALL(napi_get_array_length(env, item, &len));
    for (k = 0; k < 4; k++) NX_CALL(napi_get_element(env, item, k, &fields[k]));
    b->jobs[i] = read_job(env, len < 4 ? len : 4, fields);
    if (b->jobs[i] == NULL) goto thrown;
    b->jobs[i]->batch = b;
  }
  NX_CALL(track_promise(env, a, &b->pending, &promise) == 0 ? napi_ok : napi_generic_failure);
  if (nx_runtime_submit_many(a->rt, b->jobs, n) != 0) {
    untrack(env, a, &b->pending, "SHUT_DOWN", "runtime is shut down");
    free_batch(b);
  }
  return promise;
fail:
  nx_args_throw_last(env, "executeBatch failed");
thrown:
  if (b) free_batch(b);
  return NULL;
}

/* executeSync(handler, context, timeoutMs, mode?, language?, ts?) -> Buffer,
 * on this thread (sync.h). */
static napi_value addon_execute_sync(napi_env env, napi_callback_info info) {
  NX_ARGV(6);
  napi_value buf, code, err, msg;
  nx_job_t *job;
  char *out = NULL;
  size_t len = 0;
  int rc;

  if (a->closing || a->rt == NULL) goto shut;
  job = read_job(env, argc, argv);
  if (job == NULL) return NULL;
  rc = nx_sync_execute(a->rt, job->mode, job->code, job->code_len, &job->lang, job->context,
                       job->context_len, job->timeout_ms, &out, &len);
  job->code = NULL; /* the execution owned them */
  job->context = NULL;
  nx_job_free(job);
  if (rc == NX_RC_STOPPING) goto shut;
  if (out == NULL) {
    napi_throw_error(env, NULL, "nexus-wasm-bridge: could not build the result");
    return NULL;
  }
  if (result_buffer(env, out, len, &buf) != napi_ok) {
    nx_args_throw_last(env, "executeSync failed");
    return NULL;
  }
  return buf;
shut:
  if (napi_create_string_utf8(env, "runtime is shut down", NAPI_AUTO_LENGTH, &msg) == napi_ok &&
      napi_create_error(env, NULL, msg, &err) == napi_ok &&
      napi_create_string_utf8(env, "SHUT_DOWN", NAPI_AUTO_LENGTH, &code) == napi_ok &&
      napi_set_named_property(env, err, "code", code) == napi_ok)
    napi_throw(env, err);
  return NULL;
}

static const char *resume_error(int rc) {
  switch (rc) {
    case NX_RC_INVALID: return "these suspension ids belong to different executions";
    case NX_RC_STOPPING: return "runtime is shut down";
    default:
      return "No suspended execution has this suspension id (unknown, expired, already resumed "
             "or discarded)";
  }
}

/* resume(ids: string[], oks: boolean[], payloads: Buffer[]) -> Promise<Buffer>
 * Each payload is the MessagePack of the call's value (ok) or of its error
 * message. Every id must belong to the same suspended execution. */
static napi_value addon_resume(napi_env env, napi_callback_info info) {
  NX_ARGV(3);
  uint8_t(*ids)[NX_SUSPENSION_ID_BYTES] = NULL;
  napi_value promise = NULL;
  nx_job_t *job = NULL;
  bool is_array = false;
  uint32_t n = 0;
  int rc;

  if (argc >= 1) NX_CALL(napi_is_array(env, argv[0], &is_array));
  if (is_array) NX_CALL(napi_get_array_length(env, argv[0], &n));
  NX_ASSERT(argc >= 3 && is_array && n > 0 && n <= NX_LIMIT_ANSWERS, type,
            "resume(ids, oks, payloads): ids must be a non-empty array");
  if (a->closing) return rejected(env, "SUSPENSION_NOT_FOUND", "runtime is shut down");
  job = calloc(1, sizeof *job);
  ids = calloc(n, sizeof *ids);
  if (job == NULL || ids == NULL || (job->answers = calloc(n, sizeof *job->answers)) == NULL)
    goto oom;
  job->nanswers = n;
  rc = nx_args_answers(env, argv, job, ids);
  if (rc == -2) goto oom;
  if (rc == -1) goto done; /* thrown */
  if (rc == 1) {
    promise = rejected(env, "SUSPENSION_NOT_FOUND", resume_error(NX_RC_NOTFOUND));
    goto done;
  }
  NX_CALL(track(env, a, job, &promise) == 0 ? napi_ok : napi_generic_failure);
  rc = nx_runtime_resume(a->rt, job, (const uint8_t(*)[NX_SUSPENSION_ID_BYTES])ids);
  if (rc == NX_RC_OK)
    job = NULL; /* queued: its completion settles the promise */
  else
    untrack(env, a, (nx_pending_t **)&job->data, "SUSPENSION_NOT_FOUND", resume_error(rc));
  goto done;
oom:
  napi_throw_error(env, NULL, "out of memory");
  promise = NULL;
  goto done;
fail:
  nx_args_throw_last(env, "resume failed");
  promise = NULL;
done:
  free(ids);
  nx_job_free(job);
  return promise;
}

/* A suspension id argument; 0, or -1 when it is not one. */
static int get_id(napi_env env, size_t argc, napi_value *argv, uint8_t id[NX_SUSPENSION_ID_BYTES]) {
  char hex[2 * NX_SUSPENSION_ID_BYTES + 2];
  size_t len = 0;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], hex, sizeof hex, &len) != napi_ok)
    return -1;
  return nx_susp_parse_id(hex, len, id) == 0 ? 0 : -1;
}

/* exportSuspension(id: string) -> Buffer: the parked execution's bytes
 * (portable.h), written on this thread; it is released here. Throws an
 * Error with code SUSPENSION_NOT_FOUND when no parked execution has the id. */
static napi_value addon_export(napi_env env, napi_callback_info info) {
  NX_ARGV(1);
  uint8_t id[NX_SUSPENSION_ID_BYTES];
  napi_value buf;
  char *bytes = NULL;
  size_t len = 0;
  int rc = NX_RC_NOTFOUND;

  if (a->rt && !a->closing && get_id(env, argc, argv, id) == 0)
    rc = nx_runtime_export(a->rt, id, &bytes, &len);
  if (rc == NX_RC_NOMEM) {
    napi_throw_error(env, NULL, "out of memory while exporting the suspension");
    return NULL;
  }
  if (rc != NX_RC_OK) {
    napi_throw_error(env, "SUSPENSION_NOT_FOUND",
                     rc == NX_RC_NOTFOUND
                         ? "No parked execution has this suspension id (unknown, expired, resumed, "
                           "exported, or running a segment now)"
                         : "runtime is shut down");
    return NULL;
  }
  NX_CALL(result_buffer(env, bytes, len, &buf));
  return buf;
fail:
  nx_args_throw_last(env, "exportSuspension failed");
  return NULL;
}

/* importSuspension(bytes: Buffer) -> Promise<Buffer>: parks the exported
 * execution here and resolves with its suspended result (its pending
 * calls). In an idle sandbox it happens on this thread; when none is idle
 * a worker does it once one is free. */
static napi_value addon_import(napi_env env, napi_callback_info info) {
  NX_ARGV(1);
  napi_value promise = NULL, buf;
  nx_job_t *job = NULL;
  bool is_buffer = false;
  void *data = NULL;
  size_t len = 0, rlen = 0;
  char *result = NULL, why[160];
  const char *reject = "INVALID_SUSPENSION";
  int rc;

  if (argc >= 1) NX_CALL(napi_is_buffer(env, argv[0], &is_buffer));
  NX_ASSERT(is_buffer, type, "importSuspension(bytes): bytes must be a Buffer");
  NX_CALL(napi_get_buffer_info(env, argv[0], &data, &len));
  if (a->rt == NULL || a->closing) return rejected(env, "SHUT_DOWN", "runtime is shut down");
  rc = nx_runtime_import_now(a->rt, data, len, &result, &rlen, &reject, why, sizeof why);
  if (rc == NX_RC_OK) {
    napi_deferred d;
    NX_CALL(napi_create_promise(env, &d, &promise));
    if (result_buffer(env, result, rlen, &buf) == napi_ok)
      napi_resolve_deferred(env, d, buf);
    else
      reject_with_code(env, d, NULL, "nexus-wasm-bridge: could not build the result");
    return promise;
  }
  if (rc == NX_RC_STOPPING) return rejected(env, "SHUT_DOWN", "runtime is shut down");
  if (rc != NX_RC_NOTFOUND) return rejected(env, reject, why);
  /* no sandbox idle: a worker imports it once one is free */
  if ((job = calloc(1, sizeof *job)) == NULL || (job->context = malloc(len ? len : 1)) == NULL)
    goto oom;
  memcpy(job->context, data, len);
  job->context_len = len;
  NX_CALL(track(env, a, job, &promise) == 0 ? napi_ok : napi_generic_failure);
  if (nx_runtime_import(a->rt, job) == NX_RC_OK)
    job = NULL;
  else
    untrack(env, a, (nx_pending_t **)&job->data, "SHUT_DOWN", "runtime is shut down");
  goto done;
oom:
  napi_throw_error(env, NULL, "out of memory");
  promise = NULL;
  goto done;
fail:
  nx_args_throw_last(env, "importSuspension failed");
  promise = NULL;
done:
  nx_job_free(job);
  return promise;
}

/* imageSha256() -> string: the snapshot image's digest (hex), part of the
 * engine build an export must match. */
static napi_value addon_image_sha256(napi_env env, napi_callback_info info) {
  NX_ARGV(0);
  uint8_t sha[32];
  char hex[65];
  napi_value result;
  if (a->rt == NULL || a->closed) {
    napi_throw_error(env, "SHUT_DOWN", "runtime is shut down");
    return NULL;
  }
  nx_runtime_image_sha256(a->rt, sha);
  nx_util_hex_encode(sha, sizeof sha, hex);
  NX_CALL(napi_create_string_utf8(env, hex, 64, &result));
  return result;
fail:
  nx_args_throw_last(env, "imageSha256 failed");
  return NULL;
}

/* parkedIds() -> string[]: one suspension id per parked execution. */
static napi_value addon_parked_ids(napi_env env, napi_callback_info info) {
  NX_ARGV(0);
  uint8_t(*ids)[NX_SUSPENSION_ID_BYTES] = NULL;
  napi_value arr, s;
  char hex[2 * NX_SUSPENSION_ID_BYTES + 1];
  uint32_t n = 0, i;
  if (a->rt && !a->closed) ids = nx_runtime_parked_ids(a->rt, &n);
  NX_CALL(napi_create_array_with_length(env, n, &arr));
  for (i = 0; i < n; i++) {
    nx_util_hex_encode(ids[i], NX_SUSPENSION_ID_BYTES, hex);
    NX_CALL(napi_create_string_utf8(env, hex, 2 * NX_SUSPENSION_ID_BYTES, &s));
    NX_CALL(napi_set_element(env, arr, i, s));
  }
  free(ids);
  return arr;
fail:
  free(ids);
  nx_args_throw_last(env, "parkedIds failed");
  return NULL;
}

/* cancelSuspended(id: string) -> boolean */
static napi_value addon_cancel_suspended(napi_env env, napi_callback_info info) {
  NX_ARGV(1);
  napi_value result;
  uint8_t id[NX_SUSPENSION_ID_BYTES];
  char hex[2 * NX_SUSPENSION_ID_BYTES + 2];
  size_t len = 0;
  int found = 0;

  if (argc >= 1 && a->rt && !a->closed &&
      napi_get_value_string_utf8(env, argv[0], hex, sizeof hex, &len) == napi_ok &&
      nx_susp_parse_id(hex, len, id) == 0)
    found = nx_runtime_cancel_suspended(a->rt, id);
  NX_CALL(napi_get_boolean(env, found, &result));
  return result;
fail:
  nx_args_throw_last(env, "cancelSuspended failed");
  return NULL;
}

static int set_num(napi_env env, napi_value obj, const char *name, double v) {
  napi_value n;
  return napi_create_double(env, v, &n) == napi_ok &&
                 napi_set_named_property(env, obj, name, n) == napi_ok
             ? 0
             : -1;
}

static double avg(uint64_t sum, uint64_t n, double scale) {
  return n ? (double)sum / scale / (double)n : 0;
}

/* stats() -> object (sync) */
static napi_value addon_stats(napi_env env, napi_callback_info info) {
  NX_ARGV(0);
  napi_value obj, by;
  nx_stats_t s;
  int i;

  memset(&s, 0, sizeof s);
  if (a->rt) nx_runtime_stats(a->rt, &s);
  NX_CALL(napi_create_object(env, &obj));
  NX_CALL(napi_create_object(env, &by));
  if (set_num(env, obj, "totalExecutions", (double)s.total) ||
      set_num(env, obj, "activeInstances", s.active) ||
      set_num(env, obj, "availableInstances", s.idle) ||
      set_num(env, obj, "liveInstances", s.live) ||
      set_num(env, obj, "queuedExecutions", s.queued) || set_num(env, obj, "workers", s.workers) ||
      set_num(env, obj, "inFlight", a->inflight) ||
      set_num(env, obj, "suspendedExecutions", s.suspended) ||
      set_num(env, obj, "cacheEntries", (double)s.cache_entries) ||
      set_num(env, obj, "cacheBytes", (double)s.cache_bytes) ||
      set_num(env, obj, "cacheHits", (double)s.cache_hits) ||
      set_num(env, obj, "cacheMisses", (double)s.cache_misses) ||
      set_num(env, obj, "snapshotBytes", (double)s.snapshot_bytes) ||
      set_num(env, obj, "snapshotCreateUs", (double)s.snapshot_create_us) ||
      set_num(env, obj, "avgResetUs", avg(s.reset_ns_sum, s.resets, 1000.0)) ||
      set_num(env, obj, "avgInstantiateUs", avg(s.instantiate_ns_sum, s.instantiations, 1000.0)) ||
      set_num(env, obj, "resets", (double)s.resets) ||
      set_num(env, obj, "instantiations", (double)s.instantiations) ||
      set_num(env, obj, "successes", (double)s.by_status[NX_STATUS_SUCCESS]) ||
      set_num(env, obj, "errors", (double)s.by_status[NX_STATUS_ERROR]) ||
      set_num(env, obj, "suspensions", (double)s.by_status[NX_STATUS_SUSPENDED]) ||
      set_num(env, obj, "totalMemoryBytes", (double)s.memory) ||
      set_num(env, obj, "avgExecutionTimeUs", avg(s.duration_us_sum, s.total, 1.0)))
    goto fail;
  for (i = 1; i < NX_E__COUNT; i++)
    if (s.by_code[i] && set_num(env, by, nx_error_name((nx_error_code_t)i), (double)s.by_code[i]))
      goto fail;
  NX_CALL(napi_set_named_property(env, obj, "executionsByCode", by));
  if (a->rt) {
    static const char *const names[] = NX_MEMORY_CHECK_NAMES;
    napi_value mode;
    NX_CALL(napi_create_string_utf8(env, names[s.memory_check], NAPI_AUTO_LENGTH, &mode));
    NX_CALL(napi_set_named_property(env, obj, "memoryCheck", mode));
  }
  return obj;
fail:
  nx_args_throw_last(env, "stats failed");
  return NULL;
}

/* prometheus() -> string (sync) */
static napi_value addon_prometheus(napi_env env, napi_callback_info info) {
  NX_ARGV(0);
  napi_value out;
  size_t len = 0;
  char *text;

  NX_ASSERT(a->rt != NULL, type, "runtime is shut down");
  text = nx_runtime_prometheus(a->rt, &len);
  NX_ASSERT(text != NULL, range, "out of memory");
  if (napi_create_string_utf8(env, text, len, &out) != napi_ok) {
    free(text);
    nx_args_throw_last(env, "prometheus failed");
    return NULL;
  }
  free(text);
  return out;
}

/* shutdown() -> Promise<void>: settles once in-flight executions have. */
static napi_value addon_shutdown(napi_env env, napi_callback_info info) {
  NX_ARGV(0);
  napi_deferred d, *w;
  napi_value promise, undef;

  NX_CALL(napi_create_promise(env, &d, &promise));
  a->closing = 1;
  if (a->rt) nx_runtime_close(a->rt);
  if (a->inflight == 0) {
    teardown(a, 0);
    NX_CALL(napi_get_undefined(env, &undef));
    NX_CALL(napi_resolve_deferred(env, d, undef));
    return promise;
  }
  w = realloc(a->waiters, (a->nwaiters + 1) * sizeof *w);
  if (w == NULL) {
    reject_with_code(env, d, NULL, "out of memory");
    return promise;
  }
  a->waiters = w;
  a->waiters[a->nwaiters++] = d;
  return promise;
fail:
  nx_args_throw_last(env, "shutdown failed");
  return NULL;
}

/* injectFault(kind) (sync), kind 'oob' or 'stack': the next execution's
 * sandbox faults before its handler runs (nx_runtime_inject_fault). For the
 * tests; it can only make that execution fail. */
static napi_value addon_inject_fault(napi_env env, napi_callback_info info) {
  NX_ARGV(1);
  char kind[8];
  size_t len = 0;
  uint32_t code;
  napi_valuetype t;

  NX_CALL(napi_typeof(env, argv[0], &t));
  if (t == napi_string) NX_CALL(napi_get_value_string_utf8(env, argv[0], kind, sizeof kind, &len));
  code = t != napi_string             ? 0
         : strcmp(kind, "oob") == 0   ? NX_ENGINE_FAULT_OOB
         : strcmp(kind, "stack") == 0 ? NX_ENGINE_FAULT_STACK
                                      : 0;
  if (code == 0 || a->rt == NULL || nx_runtime_inject_fault(a->rt, code) != NX_RC_OK) {
    napi_throw_range_error(
        env, NULL, "injectFault(kind): 'oob', or 'stack' with guard pages, on a live runtime");
    return NULL;
  }
  return NULL;
fail:
  nx_args_throw_last(env, "injectFault failed");
  return NULL;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor methods[] = {
      {"execute", NULL, addon_execute, NULL, NULL, NULL, napi_default, NULL},
      {"executeSync", NULL, addon_execute_sync, NULL, NULL, NULL, napi_default, NULL},
      {"executeBatch", NULL, addon_execute_batch, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, addon_stats, NULL, NULL, NULL, napi_default, NULL},
      {"resume", NULL, addon_resume, NULL, NULL, NULL, napi_default, NULL},
      {"prometheus", NULL, addon_prometheus, NULL, NULL, NULL, napi_default, NULL},
      {"cancelSuspended", NULL, addon_cancel_suspended, NULL, NULL, NULL, napi_default, NULL},
      {"exportSuspension", NULL, addon_export, NULL, NULL, NULL, napi_default, NULL},
      {"importSuspension", NULL, addon_import, NULL, NULL, NULL, napi_default, NULL},
      {"imageSha256", NULL, addon_image_sha256, NULL, NULL, NULL, napi_default, NULL},
      {"parkedIds", NULL, addon_parked_ids, NULL, NULL, NULL, napi_default, NULL},
      {"shutdown", NULL, addon_shutdown, NULL, NULL, NULL, napi_default, NULL},
      {"injectFault", NULL, addon_inject_fault, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls;
  if (napi_define_class(env, "Runtime", NAPI_AUTO_LENGTH, addon_new, NULL,
                        sizeof methods / sizeof methods[0], methods, &cls) != napi_ok ||
      napi_set_named_property(env, exports, "Runtime", cls) != napi_ok)
    return NULL;
  return exports;
}

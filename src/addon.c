/* The Node-API surface: the native Runtime class behind lib/index.js.
 * Context-aware (no globals), so it loads in several worker_threads at
 * once. Results come back from worker threads through one threadsafe
 * function per runtime and settle the caller's promise on the JS thread. */
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "mpack.h"
#include "runtime.h"
#include "suspend.h"

typedef struct {
  napi_env env;
  nx_runtime_t *rt;
  napi_threadsafe_function tsfn;
  napi_ref self;          /* strong while executions are in flight */
  uint32_t inflight;
  int closing;            /* shutdown() called: refuse new work */
  int closed;             /* runtime stopped, tsfn released */
  napi_deferred *waiters; /* shutdown() promises to settle when drained */
  uint32_t nwaiters;
} nx_addon_rt_t;

#define CHECK(call)                      \
  do {                                   \
    if ((call) != napi_ok) goto fail;    \
  } while (0)

static void throw_last_error(napi_env env, const char *fallback) {
  const napi_extended_error_info *info = NULL;
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (pending) return;
  napi_get_last_error_info(env, &info);
  napi_throw_error(env, NULL, info && info->error_message ? info->error_message : fallback);
}

/* ---- teardown ------------------------------------------------------------ */

static void settle_waiters(nx_addon_rt_t *a) {
  napi_value undef;
  uint32_t i;
  if (napi_get_undefined(a->env, &undef) != napi_ok) undef = NULL;
  for (i = 0; i < a->nwaiters; i++) napi_resolve_deferred(a->env, a->waiters[i], undef);
  free(a->waiters);
  a->waiters = NULL;
  a->nwaiters = 0;
}

static void env_cleanup(void *arg);

/* Stops the workers and releases the threadsafe function. Safe to call more
 * than once; `from_hook` when the environment itself is going away. */
static void teardown(nx_addon_rt_t *a, int from_hook) {
  if (a->closed) return;
  a->closed = 1;
  a->closing = 1;
  if (from_hook) nx_runtime_cancel(a->rt);
  nx_runtime_stop(a->rt);
  a->rt = NULL;
  napi_release_threadsafe_function(a->tsfn, napi_tsfn_abort);
  if (!from_hook) napi_remove_env_cleanup_hook(a->env, env_cleanup, a);
}

static void env_cleanup(void *arg) {
  nx_addon_rt_t *a = arg;
  teardown(a, 1);
}

static void finalize_runtime(napi_env env, void *data, void *hint) {
  nx_addon_rt_t *a = data;
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

static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  nx_addon_rt_t *a = context;
  nx_job_t *job = data;
  napi_deferred deferred = job->data;
  napi_value buf, err, msg;
  (void)js_cb;

  if (env == NULL) { /* tsfn is being torn down: the env is going away */
    nx_job_free(job);
    return;
  }
  if (job->reject_code) {
    napi_value code;
    if (napi_create_string_utf8(env, job->reject_message, NAPI_AUTO_LENGTH, &msg) == napi_ok &&
        napi_create_error(env, NULL, msg, &err) == napi_ok) {
      if (napi_create_string_utf8(env, job->reject_code, NAPI_AUTO_LENGTH, &code) == napi_ok)
        napi_set_named_property(env, err, "code", code);
      napi_reject_deferred(env, deferred, err);
    }
  } else if (job->result &&
      napi_create_external_buffer(env, job->result_len, job->result, free_result, NULL,
                                  &buf) == napi_ok) {
    job->result = NULL; /* owned by the buffer now */
    napi_resolve_deferred(env, deferred, buf);
  } else if (napi_create_string_utf8(env, "nexus-wasm-bridge: could not build the result",
                                     NAPI_AUTO_LENGTH, &msg) == napi_ok &&
             napi_create_error(env, NULL, msg, &err) == napi_ok) {
    napi_reject_deferred(env, deferred, err);
  }
  nx_job_free(job);

  if (--a->inflight == 0) {
    uint32_t refs;
    napi_unref_threadsafe_function(env, a->tsfn);
    napi_reference_unref(env, a->self, &refs);
    if (a->closing) {
      teardown(a, 0);
      settle_waiters(a);
    }
  }
}

static void job_done(nx_job_t *job, void *arg) {
  nx_addon_rt_t *a = arg;
  if (napi_call_threadsafe_function(a->tsfn, job, napi_tsfn_blocking) != napi_ok)
    nx_job_free(job); /* closing: nobody is left to answer */
}

/* ---- helpers --------------------------------------------------------------- */

static int get_number(napi_env env, napi_value obj, const char *name, double min,
                      double max, double *out) {
  napi_value v;
  napi_valuetype t;
  bool has = false;
  char msg[160];
  if (napi_has_named_property(env, obj, name, &has) != napi_ok) return -1;
  if (!has) return 0;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok ||
      napi_typeof(env, v, &t) != napi_ok)
    return -1;
  if (t == napi_undefined) return 0;
  if (t != napi_number || napi_get_value_double(env, v, out) != napi_ok) {
    snprintf(msg, sizeof msg, "config.%s must be a number", name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  if (!(*out >= min && *out <= max) || *out != (double)(uint64_t)*out) {
    snprintf(msg, sizeof msg, "config.%s must be an integer in [%.0f, %.0f]", name, min, max);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  return 1;
}

static int read_config(napi_env env, napi_value obj, nx_config_t *cfg) {
  double v;
  int r;
  nx_config_defaults(cfg);
  if ((r = get_number(env, obj, "workers", 1, 256, &v)) < 0) return -1;
  if (r) cfg->workers = (uint32_t)v;
  cfg->max_instances = cfg->workers * 2;
  if ((r = get_number(env, obj, "maxInstances", 1, 4096, &v)) < 0) return -1;
  if (r) cfg->max_instances = (uint32_t)v;
  if ((r = get_number(env, obj, "minInstances", 0, 4096, &v)) < 0) return -1;
  if (r) cfg->min_instances = (uint32_t)v;
  if ((r = get_number(env, obj, "memoryLimitBytes", 1 << 20, 1u << 30, &v)) < 0) return -1;
  if (r) cfg->memory_limit = (uint64_t)v;
  if ((r = get_number(env, obj, "stackSizeBytes", 1 << 20, 256u << 20, &v)) < 0) return -1;
  if (r) cfg->stack_size = (uint64_t)v;
  if ((r = get_number(env, obj, "defaultTimeoutMs", 1, 3600000, &v)) < 0) return -1;
  if (r) cfg->default_timeout_ms = (uint32_t)v;
  if ((r = get_number(env, obj, "suspensionTimeoutMs", 1, 86400000, &v)) < 0) return -1;
  if (r) cfg->suspension_timeout_ms = (uint32_t)v;
  if ((r = get_number(env, obj, "maxSuspended", 0, 1000000, &v)) < 0) return -1;
  if (r) cfg->max_suspended = (uint32_t)v;
  if ((r = get_number(env, obj, "maxCacheBytes", 0, 1ull << 40, &v)) < 0) return -1;
  if (r) cfg->max_cache_bytes = (uint64_t)v;
  if ((r = get_number(env, obj, "maxDiskCacheBytes", 0, 1ull << 50, &v)) < 0) return -1;
  if (r) cfg->max_disk_cache_bytes = (uint64_t)v;
  if ((r = get_number(env, obj, "maxResultBytes", 1 << 16, 1u << 30, &v)) < 0) return -1;
  if (r) cfg->max_result_bytes = (uint64_t)v;
  if ((r = get_number(env, obj, "maxHostCalls", 1, 100000000, &v)) < 0) return -1;
  if (r) cfg->max_host_calls = (uint32_t)v;
  {
    napi_value dir;
    napi_valuetype t;
    size_t len = 0;
    bool has = false;
    if (napi_has_named_property(env, obj, "cacheDir", &has) != napi_ok) return -1;
    if (has && napi_get_named_property(env, obj, "cacheDir", &dir) == napi_ok &&
        napi_typeof(env, dir, &t) == napi_ok && t == napi_string &&
        (napi_get_value_string_utf8(env, dir, cfg->cache_dir, sizeof cfg->cache_dir, &len) != napi_ok ||
         len + 1 >= sizeof cfg->cache_dir)) {
      napi_throw_range_error(env, NULL, "config.cacheDir is too long");
      return -1;
    }
  }
  if (cfg->min_instances > cfg->max_instances) {
    napi_throw_range_error(env, NULL, "config.minInstances must not exceed config.maxInstances");
    return -1;
  }
  return 0;
}

static nx_addon_rt_t *unwrap(napi_env env, napi_callback_info info, size_t *argc,
                             napi_value *argv) {
  napi_value self;
  nx_addon_rt_t *a = NULL;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok ||
      napi_unwrap(env, self, (void **)&a) != napi_ok || a == NULL) {
    throw_last_error(env, "not a Runtime");
    return NULL;
  }
  return a;
}

static napi_value rejected(napi_env env, const char *code, const char *message) {
  napi_deferred d;
  napi_value promise, msg, err, codev;
  if (napi_create_promise(env, &d, &promise) != napi_ok) return NULL;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg) != napi_ok ||
      napi_create_error(env, NULL, msg, &err) != napi_ok)
    return NULL;
  if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &codev) == napi_ok)
    napi_set_named_property(env, err, "code", codev);
  napi_reject_deferred(env, d, err);
  return promise;
}

/* ---- methods ---------------------------------------------------------------- */

static napi_value rt_new(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  napi_valuetype t;
  nx_config_t cfg;
  nx_addon_rt_t *a = NULL;
  char err[200];

  if (napi_get_cb_info(env, info, &argc, argv, &self, NULL) != napi_ok) goto fail;
  if (argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_object) {
    napi_throw_type_error(env, NULL, "Runtime(config): config must be an object");
    return NULL;
  }
  if (read_config(env, argv[0], &cfg) != 0) return NULL;
  a = calloc(1, sizeof *a);
  if (a == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  a->env = env;
  {
    napi_value name;
    CHECK(napi_create_string_utf8(env, "nexus-wasm-bridge", NAPI_AUTO_LENGTH, &name));
    CHECK(napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, a,
                                          call_js, &a->tsfn));
  }
  CHECK(napi_unref_threadsafe_function(env, a->tsfn));
  a->rt = nx_runtime_start(&cfg, job_done, a, err, sizeof err);
  if (a->rt == NULL) {
    napi_release_threadsafe_function(a->tsfn, napi_tsfn_abort);
    free(a);
    napi_throw_error(env, NULL, err);
    return NULL;
  }
  if (napi_wrap(env, self, a, finalize_runtime, NULL, NULL) != napi_ok ||
      napi_create_reference(env, self, 0, &a->self) != napi_ok) {
    a->closing = 1;
    teardown(a, 0);
    free(a);
    throw_last_error(env, "could not wrap the runtime");
    return NULL;
  }
  napi_add_env_cleanup_hook(env, env_cleanup, a);
  return self;
fail:
  if (a) {
    if (a->tsfn) napi_release_threadsafe_function(a->tsfn, napi_tsfn_abort);
    free(a);
  }
  throw_last_error(env, "could not create the runtime");
  return NULL;
}

/* Counts a job the JS thread now waits for: while any is in flight the
 * threadsafe function and the wrapper object keep the process alive. */
static int track(napi_env env, nx_addon_rt_t *a) {
  uint32_t refs;
  if (a->inflight++ == 0 && (napi_ref_threadsafe_function(env, a->tsfn) != napi_ok ||
                             napi_reference_ref(env, a->self, &refs) != napi_ok))
    return -1;
  return 0;
}

/* Copies the bytes of a Buffer or any typed array / DataView view. */
static int copy_bytes(napi_env env, napi_value v, uint8_t **out, size_t *len) {
  bool is_buf = false, is_ta = false;
  void *data = NULL;
  *out = NULL;
  *len = 0;
  if (napi_is_buffer(env, v, &is_buf) != napi_ok) return -1;
  if (is_buf) {
    if (napi_get_buffer_info(env, v, &data, len) != napi_ok) return -1;
  } else {
    napi_typedarray_type type;
    size_t count, offset;
    napi_value ab;
    if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
        napi_get_typedarray_info(env, v, &type, &count, &data, &ab, &offset) != napi_ok ||
        type != napi_uint8_array)
      return -1;
    *len = count;
  }
  *out = malloc(*len ? *len : 1);
  if (*out == NULL) return -2;
  if (*len) memcpy(*out, data, *len);
  return 0;
}

/* execute(handler, context: Buffer, timeoutMs: number, mode?: number) -> Promise<Buffer>
 * mode 0 (default): handler is source; 1: a precompiled Uint8Array;
 * 2: compile only (context ignored): the result's returnValue is bytecode. */
static napi_value rt_execute(napi_env env, napi_callback_info info) {
  size_t argc = 4, len = 0;
  napi_value argv[4], promise;
  napi_valuetype t;
  nx_addon_rt_t *a = unwrap(env, info, &argc, argv);
  nx_job_t *job = NULL;
  double timeout = 0, mode = 0;
  int rc;

  if (a == NULL) return NULL;
  if (a->closing) return rejected(env, "SHUT_DOWN", "runtime is shut down");
  if (argc >= 4 && (napi_get_value_double(env, argv[3], &mode) != napi_ok ||
                    !(mode == 0 || mode == 1 || mode == 2))) {
    napi_throw_range_error(env, NULL, "execute(handler, context, timeoutMs, mode): mode must be 0, 1 or 2");
    return NULL;
  }
  if (argc < 3 || napi_typeof(env, argv[0], &t) != napi_ok ||
      (mode != 1 && t != napi_string)) {
    napi_throw_type_error(env, NULL, "execute(code, context, timeoutMs): code must be a string");
    return NULL;
  }
  if (napi_get_value_double(env, argv[2], &timeout) != napi_ok || !(timeout >= 0) ||
      timeout > 3600000) {
    napi_throw_range_error(env, NULL, "execute(code, context, timeoutMs): timeoutMs out of range");
    return NULL;
  }
  job = calloc(1, sizeof *job);
  if (job == NULL) goto oom;
  job->mode = (nx_exec_mode_t)mode;
  rc = copy_bytes(env, argv[1], &job->context, &job->context_len);
  if (rc == -2) goto oom;
  if (rc != 0) {
    nx_job_free(job);
    napi_throw_type_error(env, NULL, "execute(code, context, timeoutMs): context must be a Buffer");
    return NULL;
  }
  if (mode == 1) {
    rc = copy_bytes(env, argv[0], (uint8_t **)&job->code, &job->code_len);
    if (rc == -2) goto oom;
    if (rc != 0) {
      nx_job_free(job);
      napi_throw_type_error(env, NULL, "executeCompiled: bytecode must be a Uint8Array");
      return NULL;
    }
  } else {
    CHECK(napi_get_value_string_utf8(env, argv[0], NULL, 0, &job->code_len));
    job->code = malloc(job->code_len + 1);
    if (job->code == NULL) goto oom;
    CHECK(napi_get_value_string_utf8(env, argv[0], job->code, job->code_len + 1, &len));
  }
  job->timeout_ms = (uint32_t)timeout;
  CHECK(napi_create_promise(env, (napi_deferred *)&job->data, &promise));
  CHECK(track(env, a) == 0 ? napi_ok : napi_generic_failure);
  if (nx_runtime_submit(a->rt, job) != 0) {
    /* Unreachable while closing is checked above; keep the promise honest. */
    napi_value msg, err;
    a->inflight--;
    napi_create_string_utf8(env, "runtime is shut down", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, job->data, err);
    nx_job_free(job);
  }
  return promise;
oom:
  nx_job_free(job);
  napi_throw_error(env, NULL, "out of memory");
  return NULL;
fail:
  nx_job_free(job);
  throw_last_error(env, "execute failed");
  return NULL;
}

/* prometheus() -> string (sync) */
static napi_value rt_prometheus(napi_env env, napi_callback_info info) {
  size_t argc = 0, len = 0;
  nx_addon_rt_t *a = unwrap(env, info, &argc, NULL);
  napi_value out;
  char *text;
  if (a == NULL) return NULL;
  if (a->rt == NULL) {
    napi_throw_error(env, NULL, "runtime is shut down");
    return NULL;
  }
  text = nx_runtime_prometheus(a->rt, &len);
  if (text == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  if (napi_create_string_utf8(env, text, len, &out) != napi_ok) {
    free(text);
    throw_last_error(env, "prometheus failed");
    return NULL;
  }
  free(text);
  return out;
}

/* resume(ids: string[], oks: boolean[], payloads: Buffer[]) -> Promise<Buffer>
 * Each payload is the MessagePack of the call's value (ok) or of its error
 * message. Every id must belong to the same suspended execution. */
static napi_value rt_resume(napi_env env, napi_callback_info info) {
  size_t argc = 3, total = 0, at = 0;
  napi_value argv[3], promise;
  nx_addon_rt_t *a = unwrap(env, info, &argc, argv);
  uint8_t (*ids)[NX_SUSPENSION_ID_BYTES] = NULL;
  nx_job_t *job = NULL;
  uint32_t n = 0, i;
  bool is_array = false;
  const char *bad = NULL;

  if (a == NULL) return NULL;
  if (argc < 3 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[0], &n) != napi_ok || n == 0 || n > 100000) {
    napi_throw_type_error(env, NULL, "resume(ids, oks, payloads): ids must be a non-empty array");
    return NULL;
  }
  if (a->closing) return rejected(env, "SUSPENSION_NOT_FOUND", "runtime is shut down");
  job = calloc(1, sizeof *job);
  ids = calloc(n, sizeof *ids);
  if (job == NULL || ids == NULL) goto oom;
  job->answers = calloc(n, sizeof *job->answers);
  if (job->answers == NULL) goto oom;
  job->nanswers = n;
  /* First pass: ids, flags and sizes; the bytes are copied in the second. */
  for (i = 0; i < n; i++) {
    napi_value v, ok, buf;
    char hex[2 * NX_SUSPENSION_ID_BYTES + 2];
    size_t len = 0;
    bool flag = false, is_buf = false;
    void *data;
    CHECK(napi_get_element(env, argv[0], i, &v));
    if (napi_get_value_string_utf8(env, v, hex, sizeof hex, &len) != napi_ok ||
        nx_susp_parse_id(hex, len, ids[i]) != 0) {
      bad = "SUSPENSION_NOT_FOUND";
      break;
    }
    CHECK(napi_get_element(env, argv[1], i, &ok));
    CHECK(napi_get_element(env, argv[2], i, &buf));
    if (napi_get_value_bool(env, ok, &flag) != napi_ok ||
        napi_is_buffer(env, buf, &is_buf) != napi_ok || !is_buf) {
      napi_throw_type_error(env, NULL, "resume(ids, oks, payloads): oks must be booleans and payloads Buffers");
      goto fail_quiet;
    }
    CHECK(napi_get_buffer_info(env, buf, &data, &len));
    /* Untrusted bytes: validated here, before any call is claimed, so a bad
     * answer leaves the suspension resumable. */
    if (nx_mp_validate(data, len, 32) != 0) {
      napi_throw_type_error(env, NULL, "resume: a payload is not one MessagePack value nested at most 32 levels");
      goto fail_quiet;
    }
    job->answers[i].ok = flag;
    job->answers[i].len = len;
    total += len;
  }
  if (bad) {
    free(ids);
    nx_job_free(job);
    return rejected(env, bad, "No suspended execution has this suspension id");
  }
  job->answer_bytes = malloc(total ? total : 1);
  if (job->answer_bytes == NULL) goto oom;
  for (i = 0; i < n; i++) {
    napi_value buf;
    void *data;
    size_t len;
    CHECK(napi_get_element(env, argv[2], i, &buf));
    CHECK(napi_get_buffer_info(env, buf, &data, &len));
    if (len != job->answers[i].len) goto fail; /* changed under us: getters */
    memcpy(job->answer_bytes + at, data, len);
    job->answers[i].bytes = job->answer_bytes + at;
    at += len;
  }
  CHECK(napi_create_promise(env, (napi_deferred *)&job->data, &promise));
  switch (nx_runtime_resume(a->rt, job, (const uint8_t(*)[NX_SUSPENSION_ID_BYTES])ids)) {
    case NX_RESUME_OK:
      free(ids);
      if (track(env, a) != 0) {
        throw_last_error(env, "resume failed");
        return NULL; /* the job is queued: its completion settles the promise */
      }
      return promise;
    case NX_RESUME_MIXED:
      bad = "these suspension ids belong to different executions";
      break;
    case NX_RESUME_STOPPING:
      bad = "runtime is shut down";
      break;
    case NX_RESUME_NOMEM:
      bad = "out of memory";
      break;
    default:
      bad = "No suspended execution has this suspension id (unknown, expired, already resumed or discarded)";
  }
  {
    napi_value msg, err, code;
    CHECK(napi_create_string_utf8(env, bad, NAPI_AUTO_LENGTH, &msg));
    CHECK(napi_create_error(env, NULL, msg, &err));
    CHECK(napi_create_string_utf8(env, "SUSPENSION_NOT_FOUND", NAPI_AUTO_LENGTH, &code));
    CHECK(napi_set_named_property(env, err, "code", code));
    CHECK(napi_reject_deferred(env, job->data, err));
  }
  free(ids);
  nx_job_free(job);
  return promise;
oom:
  free(ids);
  nx_job_free(job);
  napi_throw_error(env, NULL, "out of memory");
  return NULL;
fail:
  throw_last_error(env, "resume failed");
fail_quiet:
  free(ids);
  nx_job_free(job);
  return NULL;
}

/* cancelSuspended(id: string) -> boolean */
static napi_value rt_cancel_suspended(napi_env env, napi_callback_info info) {
  size_t argc = 1, len = 0;
  napi_value argv[1], result;
  nx_addon_rt_t *a = unwrap(env, info, &argc, argv);
  uint8_t id[NX_SUSPENSION_ID_BYTES];
  char hex[2 * NX_SUSPENSION_ID_BYTES + 2];
  int found = 0;

  if (a == NULL) return NULL;
  if (argc >= 1 && a->rt && !a->closed &&
      napi_get_value_string_utf8(env, argv[0], hex, sizeof hex, &len) == napi_ok &&
      nx_susp_parse_id(hex, len, id) == 0)
    found = nx_runtime_cancel_suspended(a->rt, id);
  if (napi_get_boolean(env, found, &result) != napi_ok) {
    throw_last_error(env, "cancelSuspended failed");
    return NULL;
  }
  return result;
}

static int set_num(napi_env env, napi_value obj, const char *name, double v) {
  napi_value n;
  return napi_create_double(env, v, &n) == napi_ok &&
                 napi_set_named_property(env, obj, name, n) == napi_ok
             ? 0
             : -1;
}

static napi_value rt_stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  nx_addon_rt_t *a = unwrap(env, info, &argc, NULL);
  napi_value obj, by;
  nx_stats_t s;
  int i;

  if (a == NULL) return NULL;
  memset(&s, 0, sizeof s);
  if (a->rt) nx_runtime_stats(a->rt, &s);
  CHECK(napi_create_object(env, &obj));
  CHECK(napi_create_object(env, &by));
  if (set_num(env, obj, "totalExecutions", (double)s.total) ||
      set_num(env, obj, "activeInstances", s.active) ||
      set_num(env, obj, "availableInstances", s.idle) ||
      set_num(env, obj, "liveInstances", s.live) ||
      set_num(env, obj, "queuedExecutions", s.queued) ||
      set_num(env, obj, "workers", s.workers) ||
      set_num(env, obj, "inFlight", a->inflight) ||
      set_num(env, obj, "suspendedExecutions", s.suspended) ||
      set_num(env, obj, "cacheEntries", (double)s.cache_entries) ||
      set_num(env, obj, "cacheBytes", (double)s.cache_bytes) ||
      set_num(env, obj, "cacheHits", (double)s.cache_hits) ||
      set_num(env, obj, "cacheMisses", (double)s.cache_misses) ||
      set_num(env, obj, "snapshotBytes", (double)s.snapshot_bytes) ||
      set_num(env, obj, "snapshotCreateUs", (double)s.snapshot_create_us) ||
      set_num(env, obj, "avgResetUs", s.resets ? (double)s.reset_ns_sum / 1000.0 / (double)s.resets : 0) ||
      set_num(env, obj, "avgInstantiateUs",
              s.instantiations ? (double)s.instantiate_ns_sum / 1000.0 / (double)s.instantiations : 0) ||
      set_num(env, obj, "successes", (double)s.by_status[NX_STATUS_SUCCESS]) ||
      set_num(env, obj, "errors", (double)s.by_status[NX_STATUS_ERROR]) ||
      set_num(env, obj, "suspensions", (double)s.by_status[NX_STATUS_SUSPENDED]) ||
      set_num(env, obj, "totalMemoryBytes", (double)s.memory) ||
      set_num(env, obj, "avgExecutionTimeUs",
              s.total ? (double)s.duration_us_sum / (double)s.total : 0))
    goto fail;
  for (i = 1; i < NX_E__COUNT; i++)
    if (s.by_code[i] && set_num(env, by, nx_error_name((nx_error_code_t)i), (double)s.by_code[i]))
      goto fail;
  CHECK(napi_set_named_property(env, obj, "executionsByCode", by));
  return obj;
fail:
  throw_last_error(env, "stats failed");
  return NULL;
}

static napi_value rt_shutdown(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  nx_addon_rt_t *a = unwrap(env, info, &argc, NULL);
  napi_deferred d;
  napi_value promise, undef;

  if (a == NULL) return NULL;
  CHECK(napi_create_promise(env, &d, &promise));
  a->closing = 1;
  if (a->rt) nx_runtime_close(a->rt);
  if (a->inflight == 0) {
    teardown(a, 0);
    CHECK(napi_get_undefined(env, &undef));
    CHECK(napi_resolve_deferred(env, d, undef));
    return promise;
  }
  {
    napi_deferred *w = realloc(a->waiters, (a->nwaiters + 1) * sizeof *w);
    if (w == NULL) {
      napi_throw_error(env, NULL, "out of memory");
      return NULL;
    }
    a->waiters = w;
    a->waiters[a->nwaiters++] = d;
  }
  return promise;
fail:
  throw_last_error(env, "shutdown failed");
  return NULL;
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor methods[] = {
      {"execute", NULL, rt_execute, NULL, NULL, NULL, napi_default, NULL},
      {"stats", NULL, rt_stats, NULL, NULL, NULL, napi_default, NULL},
      {"resume", NULL, rt_resume, NULL, NULL, NULL, napi_default, NULL},
      {"prometheus", NULL, rt_prometheus, NULL, NULL, NULL, napi_default, NULL},
      {"cancelSuspended", NULL, rt_cancel_suspended, NULL, NULL, NULL, napi_default, NULL},
      {"shutdown", NULL, rt_shutdown, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls;
  if (napi_define_class(env, "Runtime", NAPI_AUTO_LENGTH, rt_new, NULL,
                        sizeof methods / sizeof methods[0], methods, &cls) != napi_ok ||
      napi_set_named_property(env, exports, "Runtime", cls) != napi_ok)
    return NULL;
  return exports;
}

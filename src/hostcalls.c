/* Host functions behind the handler globals (see hostcalls.h). The
 * bootstrap does only the JavaScript-shaped work (Proxy traps, argument
 * objects, plain copies); every decision that grants or records something
 * is made here, in the host.
 *
 * Two rules hold in every function below. No guest code runs while one of
 * them is in progress: values are read by the strict encoder (mpack.h),
 * which never calls a getter or a trap, so no pointer into the execution's
 * tables can go stale under us, and a nested call (from an
 * Error.prepareStackTrace hook, say) is refused. And every host byte comes
 * from the execution's memory and is charged to its result budget before
 * it is written. */
#include "hostcalls.h"

#include <stdio.h>
#include <string.h>

#include "exec.h"
#include "failure.h"
#include "lazy.h"
#include "mpack.h"
#include "result.h"
#include "state.h"
#include "util.h"
#include "wire.h"

const char *const nx_host_names[NX_HOST__COUNT + 1] = {
    [NX_HOST_STATE_GET] = "stateGet",
    [NX_HOST_STATE_SET] = "stateSet",
    [NX_HOST_STATE_DELETE] = "stateDelete",
    [NX_HOST_STATE_HAS] = "stateHas",
    [NX_HOST_STATE_KEYS] = "stateKeys",
    [NX_HOST_EMIT] = "emit",
    [NX_HOST_VIEW] = "view",
    [NX_HOST_LOG] = "log",
    [NX_HOST_EXT_CALL] = "extCall",
    [NX_HOST_KIND] = "kind",
    [NX_HOST_LAZY_GET] = "lazyGet",
    [NX_HOST_LAZY_HAS] = "lazyHas",
    [NX_HOST_LAZY_FILL] = "lazyFill",
    [NX_HOST__COUNT] = NULL,
};

/* The metrics.hostCalls names; the first counts of every execution, at
 * these positions ($ext calls follow, by extension and method). */
enum { COUNT_STATE_GET, COUNT_STATE_SET, COUNT_EMIT, COUNT_VIEW, COUNT_LOG, COUNT__FIXED };
static const char *const count_names[COUNT__FIXED] = {"state.get", "state.set", "emit", "view",
                                                      "log"};

/* What kind() tells the bootstrap's copy() (bootstrap.js). */
enum { KIND_PLAIN = 0, KIND_OPAQUE = 1, KIND_ERROR = 2 };

/* Bytes a pending call adds to each result that lists it, besides its
 * arguments: the map, the id and the names. */
#define CALL_OVERHEAD 96u

#define NAME_STACK 128

/* ---- counts and arguments -------------------------------------------------- */

int nx_host_init(nx_exec_t *ex) {
  uint32_t i;
  ex->counts_cap = COUNT__FIXED + 4;
  ex->counts = nx_mem_calloc(&ex->mem, ex->counts_cap, sizeof *ex->counts);
  if (ex->counts == NULL) return NX_RC_NOMEM;
  for (i = 0; i < COUNT__FIXED; i++) ex->counts[i].name = count_names[i];
  ex->ncounts = COUNT__FIXED;
  return NX_RC_OK;
}

void nx_host_begin_segment(nx_exec_t *ex) {
  uint32_t i;
  int first = 1;
  for (i = 0; i < ex->ncounts; i++) ex->counts[i].count = 0;
  for (i = 0; i < ex->ncalls; i++) {
    if (ex->calls[i].answered) continue;
    /* The oldest pending call is listed twice (`suspension` too). */
    ex->budget.used += first ? 2 * ex->calls[i].charge : ex->calls[i].charge;
    first = 0;
  }
}

int nx_host_answer(nx_exec_t *ex, uint32_t call) {
  if (call >= ex->ncalls || ex->calls[call].answered) return 0;
  ex->calls[call].answered = 1;
  ex->nanswered++;
  return 1;
}

/* Counts "ext.NAME.METHOD" for metrics.hostCalls. */
static int count_ext(nx_exec_t *ex, const char *name, size_t nlen, const char *method,
                     size_t mlen) {
  char label[300];
  uint32_t i;
  int n = snprintf(label, sizeof label, "ext.%.*s.%.*s", (int)(nlen > 120 ? 120 : nlen), name,
                   (int)(mlen > 120 ? 120 : mlen), method);
  for (i = COUNT__FIXED; i < ex->ncounts; i++)
    if (strcmp(ex->counts[i].name, label) == 0) {
      ex->counts[i].count++;
      return NX_RC_OK;
    }
  if (ex->ncounts == ex->counts_cap) {
    uint32_t cap = 2 * ex->counts_cap;
    nx_host_count_t *grown = nx_mem_realloc(&ex->mem, ex->counts, cap * sizeof *grown);
    if (grown == NULL) return NX_RC_NOMEM;
    ex->counts = grown;
    ex->counts_cap = cap;
  }
  ex->counts[ex->ncounts].name = nx_mem_strndup(&ex->mem, label, (size_t)n);
  if (ex->counts[ex->ncounts].name == NULL) return NX_RC_NOMEM;
  ex->counts[ex->ncounts++].count = 1;
  return NX_RC_OK;
}

static int read_args(nx_sandbox_t *sb, uint32_t argc, uint32_t argv, nx_jsval_t *out,
                     uint32_t want) {
  uint32_t i;
  for (i = 0; i < want; i++) {
    uint32_t box;
    out[i] = NX_UNDEFINED;
    if (i >= argc) continue;
    if (nx_guest_read_u32(&sb->inst, argv + i * 4, &box) != 0 ||
        nx_guest_read_u64(&sb->inst, box, &out[i]) != 0)
      return NX_RC_INVALID;
  }
  return NX_RC_OK;
}

/* A guest string argument, copied to the host: `buf` or segment memory. */
static char *string_arg(nx_sandbox_t *sb, nx_jsval_t v, char *buf, size_t cap, size_t *len) {
  return nx_sandbox_string(sb, v, &sb->exec->seg, buf, cap, len);
}

static void string_free(nx_sandbox_t *sb, char *s, const char *buf) {
  if (s) nx_sandbox_string_free(&sb->exec->seg, s, buf);
}

static void throw_missing(nx_sandbox_t *sb, nx_cap_family_t family, const char *name, size_t len) {
  char msg[400];
  snprintf(msg, sizeof msg, "Permission denied: missing capability %s%.*s", nx_caps_prefix(family),
           (int)(len > 200 ? 200 : len), name);
  nx_failure_throw(sb, NX_E_PERMISSION_DENIED, 0, msg);
}

/* ---- $state --------------------------------------------------------------- */

static uint32_t state_keys(nx_sandbox_t *sb) {
  nx_exec_t *ex = sb->exec;
  uint32_t i, n = 0;
  nx_jsval_t arr = Q(JS_NewArray)(&sb->inst, sb->ctx);
  if (nx_jsval_tag(arr) == NX_TAG_EXCEPTION) return 0;
  for (i = 0; i < ex->state.nkeys; i++) {
    const nx_state_key_t *k = &ex->state.keys[i];
    uint32_t p;
    nx_jsval_t str;
    if (!nx_state_exists(k) || !nx_caps_allows(&ex->caps, NX_CAP_STATE_READ, k->name, k->len))
      continue;
    p = nx_sandbox_put(sb, k->name, k->len);
    str = p ? Q(JS_NewStringLen)(&sb->inst, sb->ctx, p, k->len) : NX_EXCEPTION;
    if (nx_jsval_tag(str) == NX_TAG_EXCEPTION ||
        (int32_t)Q(JS_DefinePropertyValueUint32)(&sb->inst, sb->ctx, arr, n++, str, NX_PROP_C_W_E) <
            0) {
      nx_sandbox_free_value(sb, arr);
      return 0;
    }
  }
  return nx_sandbox_box(sb, arr);
}

static uint32_t call_state(nx_sandbox_t *sb, nx_host_fn_t fn, const nx_jsval_t *a) {
  nx_exec_t *ex = sb->exec;
  char buf[NAME_STACK], *name = NULL;
  size_t len = 0;
  nx_state_key_t *k;
  nx_jsval_t result = NX_UNDEFINED;
  uint32_t box = 0;
  int write = fn == NX_HOST_STATE_SET || fn == NX_HOST_STATE_DELETE;
  nx_cap_family_t family = write ? NX_CAP_STATE_WRITE : NX_CAP_STATE_READ;

  switch (nx_state_prepare(ex)) {
    case NX_RC_OK: break;
    case NX_RC_INVALID: nx_failure_fatal(sb, NX_E_INTERNAL_ERROR, NX_STATE_MALFORMED); return 0;
    default: goto oom;
  }
  if (fn == NX_HOST_STATE_KEYS) return state_keys(sb);
  name = string_arg(sb, a[0], buf, sizeof buf, &len);
  if (name == NULL) {
    nx_failure_throw(sb, NX_E_EXECUTION_ERROR, 1, "$state keys must be strings");
    return 0;
  }
  if (!nx_caps_allows(&ex->caps, family, name, len)) {
    throw_missing(sb, family, name, len);
    goto done;
  }
  k = nx_state_find(ex, name, len);
  ex->counts[write ? COUNT_STATE_SET : COUNT_STATE_GET].count++;
  switch (fn) {
    case NX_HOST_STATE_GET:
      if (k && nx_state_load(ex, k, &result) != 0) goto done;
      break;
    case NX_HOST_STATE_HAS: result = NX_BOOL(nx_state_exists(k)); break;
    case NX_HOST_STATE_SET:
      if (k == NULL && (k = nx_state_add(ex, name, len)) == NULL) goto oom;
      nx_state_set(ex, k, a[1]);
      break;
    default: /* NX_HOST_STATE_DELETE */
      if (k) nx_state_delete(ex, k);
  }
  box = nx_sandbox_box(sb, result);
  if (box == 0) Q(JS_ThrowOutOfMemory)(&sb->inst, sb->ctx);
  goto done;
oom:
  nx_failure_fatal(sb, NX_E_INTERNAL_ERROR, "host out of memory");
done:
  string_free(sb, name, buf);
  return box;
}

/* ---- $emit, $view, $log ---------------------------------------------------- */

/* The skeleton $emit and $view share: an entry written at the end of
 * `list` (`head` fields first, then `value` under `field`), or nothing at
 * all. Answers true, or false when the value needs copy() first. */
static uint32_t record(nx_sandbox_t *sb, nx_out_list_t *list, const char *const *head,
                       uint32_t nhead, const char *field, nx_jsval_t value, nx_jsval_t copied,
                       const char *path, uint32_t count) {
  size_t mark = nx_result_begin(list);
  uint32_t i;
  int r;

  nx_mp_pack_map(&list->buf, nhead / 2 + 1);
  for (i = 0; i < nhead; i++) nx_mp_pack_str(&list->buf, head[i], strlen(head[i]));
  nx_mp_pack_str(&list->buf, field, strlen(field));
  r = nx_result_encode_call(sb, &list->buf, mark, value, path, nx_jsval_int(copied));
  if (r < 0 || (r == 1 && nx_result_commit(sb, list, mark, path) != 0)) return 0;
  if (r == 1) sb->exec->counts[count].count++;
  return nx_sandbox_box(sb, NX_BOOL(r));
}

/* emit(name, payload, copied) -> true, or false: copy the payload first. */
static uint32_t call_emit(nx_sandbox_t *sb, const nx_jsval_t *a) {
  nx_exec_t *ex = sb->exec;
  char buf[NAME_STACK], *name, path[48];
  size_t len = 0;
  uint32_t box = 0;

  name = string_arg(sb, a[0], buf, sizeof buf, &len);
  if (name == NULL) {
    nx_failure_throw(sb, NX_E_EXECUTION_ERROR, 1, "$emit(name, payload): name must be a string");
    return 0;
  }
  if (!nx_caps_allows(&ex->caps, NX_CAP_EVENTS_EMIT, name, len)) {
    throw_missing(sb, NX_CAP_EVENTS_EMIT, name, len);
  } else {
    const char *head[2] = {"name", name};
    snprintf(path, sizeof path, "events[%u].payload", ex->out.events.count);
    box = record(sb, &ex->out.events, head, 2, "payload", a[1], a[2], path, COUNT_EMIT);
  }
  string_free(sb, name, buf);
  return box;
}

/* view(type, componentId, args, copied) -> true, or false: copy args first. */
static uint32_t call_view(nx_sandbox_t *sb, const nx_jsval_t *a) {
  nx_exec_t *ex = sb->exec;
  char tbuf[32], ibuf[NAME_STACK], *type, *id, path[48];
  size_t tlen = 0, ilen = 0;
  uint32_t box = 0;

  type = string_arg(sb, a[0], tbuf, sizeof tbuf, &tlen);
  id = string_arg(sb, a[1], ibuf, sizeof ibuf, &ilen);
  if (type == NULL || id == NULL) {
    nx_failure_throw(sb, NX_E_EXECUTION_ERROR, 1, "$view: componentId must be a string");
  } else if (!nx_caps_allows(&ex->caps, NX_CAP_VIEW_UPDATE, id, ilen)) {
    throw_missing(sb, NX_CAP_VIEW_UPDATE, id, ilen);
  } else {
    const char *head[4] = {"type", type, "componentId", id};
    snprintf(path, sizeof path, "viewCommands[%u].args", ex->out.views.count);
    box = record(sb, &ex->out.views, head, 4, "args", a[2], a[3], path, COUNT_VIEW);
  }
  string_free(sb, type, tbuf);
  string_free(sb, id, ibuf);
  return box;
}

/* Appends a { level, message } entry to the logs; 0 or negative. */
static int append_log(nx_sandbox_t *sb, const char *level, const char *msg, size_t len) {
  nx_out_list_t *logs = &sb->exec->out.logs;
  size_t mark = nx_result_begin(logs);
  char path[32];
  snprintf(path, sizeof path, "logs[%u]", logs->count);
  nx_mp_pack_map(&logs->buf, 2);
  nx_mp_pack_str(&logs->buf, "level", 5);
  nx_mp_pack_str(&logs->buf, level, strlen(level));
  nx_mp_pack_str(&logs->buf, "message", 7);
  nx_mp_pack_str(&logs->buf, msg, len);
  return nx_result_commit(sb, logs, mark, path);
}

void nx_host_console(nx_sandbox_t *sb, int is_stderr, const char *bytes, size_t len) {
  while (len && (bytes[len - 1] == '\n')) len--;
  if (len && sb->exec) append_log(sb, is_stderr ? "error" : "info", bytes, len);
}

static uint32_t call_log(nx_sandbox_t *sb, const nx_jsval_t *a) {
  char lbuf[16], *level, mbuf[256], *msg;
  size_t llen = 0, mlen = 0;
  uint32_t box = 0;

  sb->exec->counts[COUNT_LOG].count++;
  level = string_arg(sb, a[0], lbuf, sizeof lbuf, &llen);
  msg = string_arg(sb, a[1], mbuf, sizeof mbuf, &mlen);
  if (level == NULL || msg == NULL)
    nx_failure_throw(sb, NX_E_EXECUTION_ERROR, 1, "$log: message must be a string");
  else if (append_log(sb, level, msg, mlen) == 0)
    box = nx_sandbox_box(sb, NX_UNDEFINED);
  string_free(sb, level, lbuf);
  string_free(sb, msg, mbuf);
  return box;
}

/* kind(object) for the bootstrap's copy(): what the strict encoder reads
 * by itself (Dates, typed arrays, buffers) or refuses (Maps, Promises, ...)
 * stays as it is; Errors become { name, message }; the rest is copied
 * property by property. Pure checks, no guest code. */
static uint32_t call_kind(nx_sandbox_t *sb, const nx_jsval_t *a) {
  nx_wasm_instance_t *in = &sb->inst;
  nx_jsval_t v = a[0];
  int kind = KIND_PLAIN;
  if (nx_jsval_tag(v) == NX_TAG_OBJECT && Q(JS_IsProxy)(in, v)) {
    /* A lazy state container not filled yet: the encoder reads it. */
    if (nx_lazy_kind(sb->exec, v) == 1) kind = KIND_OPAQUE;
  } else if (nx_jsval_tag(v) == NX_TAG_OBJECT) {
    if (Q(JS_IsError)(in, v))
      kind = KIND_ERROR;
    else if (!Q(JS_IsArray)(in, v) &&
             (Q(JS_IsFunction)(in, sb->ctx, v) || Q(JS_IsDate)(in, v) ||
              (int32_t)Q(JS_GetTypedArrayType)(in, v) >= 0 || Q(JS_IsArrayBuffer)(in, v) ||
              Q(JS_IsMap)(in, v) || Q(JS_IsSet)(in, v) || Q(JS_IsWeakMap)(in, v) ||
              Q(JS_IsWeakSet)(in, v) || Q(JS_IsWeakRef)(in, v) || Q(JS_IsPromise)(in, v) ||
              Q(JS_IsRegExp)(in, v) || Q(JS_IsDataView)(in, v)))
      kind = KIND_OPAQUE;
  }
  return nx_sandbox_box(sb, NX_INT(kind));
}

/* ---- $ext ---------------------------------------------------------------- */

static int str_is(const nx_mp_item_t *it, const char *s, size_t len) {
  return it->type == NX_MPT_STR && it->size == len && memcmp(it->ptr, s, len) == 0;
}

/* Is `method` listed for extension `name` in the context's registry (its
 * validated bytes, or NULL)? The bootstrap only builds registered methods,
 * but the host does not rely on the guest for anything it grants. */
static int registry_has(const uint8_t *reg, const char *name, size_t nlen, const char *method,
                        size_t mlen) {
  nx_mp_item_t map, key, val, m;
  uint32_t i, j;
  if (reg == NULL) return 0;
  reg = nx_mp_read(reg, &map);
  if (map.type != NX_MPT_MAP) return 0;
  for (i = 0; i < map.size; i++) {
    const uint8_t *v = nx_mp_read(reg, &key), *item;
    if (!str_is(&key, name, nlen)) {
      reg = nx_mp_skip(v);
      continue;
    }
    item = nx_mp_read(v, &val);
    reg = nx_mp_skip(v);
    if (val.type != NX_MPT_ARRAY) continue;
    for (j = 0; j < val.size; j++) {
      nx_mp_read(item, &m);
      if (str_is(&m, method, mlen)) return 1;
      item = nx_mp_skip(item);
    }
  }
  return 0;
}

/* Records a call whose arguments are encoded in `args`; charges its entry,
 * twice if it is the oldest pending call (`suspension` repeats it). The
 * index, or a negative nx_rc_t after throwing. */
static int add_call(nx_sandbox_t *sb, const char *name, size_t nlen, const char *method,
                    size_t mlen, nx_buf_t *args, const char *path) {
  nx_exec_t *ex = sb->exec;
  uint64_t entry = CALL_OVERHEAD + nlen + mlen + args->size;
  uint64_t need = ex->nanswered == ex->ncalls ? 2 * entry : entry;
  nx_ext_call_t *c;

  /* The arguments are charged already. */
  if (need - args->size > ex->budget.limit - ex->budget.used) {
    nx_failure_fatal_result_limit(sb, path);
    return NX_RC_INVALID;
  }
  if (count_ext(ex, name, nlen, method, mlen) != 0) goto oom;
  if (ex->ncalls == ex->calls_cap) {
    uint32_t cap = ex->calls_cap ? ex->calls_cap * 2 : 4;
    nx_ext_call_t *grown = nx_mem_realloc(&ex->mem, ex->calls, cap * sizeof *grown);
    if (grown == NULL) goto oom;
    ex->calls = grown;
    ex->calls_cap = cap;
  }
  c = &ex->calls[ex->ncalls];
  memset(c, 0, sizeof *c);
  c->ext = nx_mem_strndup(&ex->mem, name, nlen);
  c->method = nx_mem_strndup(&ex->mem, method, mlen);
  /* Unguessable ids: 128 bits from the kernel. */
  if (c->ext == NULL || c->method == NULL || nx_util_random(c->id, sizeof c->id) != 0) {
    nx_mem_free(&ex->mem, c->ext);
    nx_mem_free(&ex->mem, c->method);
    goto oom;
  }
  c->charge = entry;
  c->args = (uint8_t *)nx_buf_take(args, &c->args_len); /* the call owns the bytes */
  ex->budget.used += need;
  return (int)ex->ncalls++;
oom:
  nx_failure_fatal(sb, NX_E_INTERNAL_ERROR, "host out of memory");
  return NX_RC_NOMEM;
}

/* extCall(name, method, args, copied) -> call index, or -1: copy the
 * arguments first. */
static uint32_t call_ext(nx_sandbox_t *sb, const nx_jsval_t *a) {
  nx_exec_t *ex = sb->exec;
  char nbuf[NAME_STACK], mbuf[NAME_STACK], *name, *method, path[300];
  size_t nlen = 0, mlen = 0;
  nx_buf_t args;
  uint32_t box = 0;
  int r;

  nx_buf_init(&args, &ex->mem, &ex->budget);
  name = string_arg(sb, a[0], nbuf, sizeof nbuf, &nlen);
  method = string_arg(sb, a[1], mbuf, sizeof mbuf, &mlen);
  if (name == NULL || method == NULL) {
    nx_failure_throw(sb, NX_E_EXECUTION_ERROR, 1,
                     "$ext: extension and method names must be strings");
    goto done;
  }
  if (ex->phase != NX_PHASE_RUN) {
    nx_failure_throw(sb, NX_E_EXECUTION_ERROR, 1,
                     "$ext: no extension call can start once the handler has finished");
    goto done;
  }
  if (ex->sync) { /* nothing could answer it: end, do not suspend */
    snprintf(path, sizeof path,
             "executeHandlerSync cannot run a handler that calls an extension ($ext.%.*s.%.*s): "
             "use executeHandler",
             (int)(nlen > 100 ? 100 : nlen), name, (int)(mlen > 100 ? 100 : mlen), method);
    nx_failure_fatal(sb, NX_E_EXECUTION_ERROR, path);
    goto done;
  }
  if (!nx_caps_allows(&ex->caps, NX_CAP_EXT, name, nlen)) {
    throw_missing(sb, NX_CAP_EXT, name, nlen);
    goto done;
  }
  if (!registry_has(ex->registry_bytes, name, nlen, method, mlen)) {
    nx_failure_throw(sb, NX_E_EXECUTION_ERROR, 1, "$ext: not a registered extension method");
    goto done;
  }
  snprintf(path, sizeof path, "$ext.%.*s.%.*s() arguments", (int)(nlen > 100 ? 100 : nlen), name,
           (int)(mlen > 100 ? 100 : mlen), method);
  /* The call is listed in every result until it is answered: a suspended
   * result must always fit the budget. */
  if (CALL_OVERHEAD + nlen + mlen > ex->budget.limit - ex->budget.used) {
    nx_failure_fatal_result_limit(sb, path);
    goto done;
  }
  r = nx_result_encode_call(sb, &args, 0, a[2], path, nx_jsval_int(a[3]));
  if (r == 0) box = nx_sandbox_box(sb, NX_INT(-1));
  if (r == 1 && (r = add_call(sb, name, nlen, method, mlen, &args, path)) >= 0) {
    box = nx_sandbox_box(sb, NX_INT(r));
    if (box == 0) Q(JS_ThrowOutOfMemory)(&sb->inst, sb->ctx);
  }
done:
  nx_buf_free(&args);
  string_free(sb, name, nbuf);
  string_free(sb, method, mbuf);
  return box;
}

/* ---- entry ------------------------------------------------------------------- */

static uint32_t dispatch(nx_sandbox_t *sb, nx_host_fn_t fn, const nx_jsval_t *a) {
  switch (fn) {
    case NX_HOST_STATE_GET:
    case NX_HOST_STATE_SET:
    case NX_HOST_STATE_DELETE:
    case NX_HOST_STATE_HAS:
    case NX_HOST_STATE_KEYS: return call_state(sb, fn, a);
    case NX_HOST_EMIT: return call_emit(sb, a);
    case NX_HOST_VIEW: return call_view(sb, a);
    case NX_HOST_LOG: return call_log(sb, a);
    case NX_HOST_EXT_CALL: return call_ext(sb, a);
    case NX_HOST_KIND: return call_kind(sb, a);
    case NX_HOST_LAZY_GET: return nx_lazy_get(sb->exec, a[0], a[1]);
    case NX_HOST_LAZY_HAS: return nx_lazy_has(sb->exec, a[0], a[1]);
    case NX_HOST_LAZY_FILL: return nx_lazy_fill(sb->exec, a[0]);
    default: nx_failure_throw(sb, NX_E_INTERNAL_ERROR, 0, "unknown host function"); return 0;
  }
}

static nx_host_fn_t lookup(const uint8_t *name, uint32_t len) {
  int fn;
  for (fn = 0; fn < NX_HOST__COUNT; fn++)
    if (strlen(nx_host_names[fn]) == len && memcmp(name, nx_host_names[fn], len) == 0) break;
  return (nx_host_fn_t)fn;
}

uint32_t nx_host_call(nx_sandbox_t *sb, uint32_t name, uint32_t name_len, uint32_t argc,
                      uint32_t argv) {
  const uint8_t *n = nx_guest_bytes(&sb->inst, name, name_len);
  nx_exec_t *ex = sb->exec;
  nx_jsval_t a[4];
  nx_host_fn_t fn;
  uint32_t box;

  if (n == NULL || ex == NULL || read_args(sb, argc, argv, a, 4) != 0) {
    nx_failure_throw(sb, NX_E_INTERNAL_ERROR, 0, "host call outside an execution");
    return 0;
  }
  fn = lookup(n, name_len);
  if (ex->fail.fatal != NX_OK) { /* ending: nothing more is recorded */
    nx_failure_throw(sb, ex->fail.fatal, 0, ex->fail.fatal_message);
    return 0;
  }
  if (ex->in_host) {
    nx_failure_throw(sb, NX_E_EXECUTION_ERROR, 1,
                     "Host functions cannot be called while the host is running one "
                     "($state, $emit, $view, $ext and $log are not re-entrant)");
    return 0;
  }
  if (ex->phase == NX_PHASE_CLOSED) {
    nx_failure_throw(sb, NX_E_EXECUTION_ERROR, 1,
                     "Host functions cannot be called once the handler has finished");
    return 0;
  }
  /* kind() and the lazy-state calls are the bootstrap's own helpers, not
   * a handler's calls. */
  if (fn < NX_HOST_KIND && ++ex->host_calls > ex->cfg->max_host_calls) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "Too many host calls: an execution may make config.maxHostCalls (%llu)",
             (unsigned long long)ex->cfg->max_host_calls);
    nx_failure_fatal(sb, NX_E_RESOURCE_LIMIT, msg);
    return 0;
  }
  ex->in_host = 1;
  sb->fault = NULL;
  box = dispatch(sb, fn, a);
  ex->in_host = 0;
  /* A helper that failed without a guest exception (out-parameter words
   * exhausted) must not hand QuickJS an exception that is not there. */
  if (box == 0 && !Q(JS_HasException)(&sb->inst, sb->ctx))
    nx_failure_fatal(sb, NX_E_INTERNAL_ERROR, sb->fault ? sb->fault : "host function failed");
  return box;
}

/* ---- a parked execution, exported (portable.h) ------------------------------ */

void nx_host_save(const nx_exec_t *ex, nx_buf_t *out) {
  uint32_t i;
  nx_wire_u64(out, ex->host_calls);
  nx_wire_u32(out, ex->ncalls);
  for (i = 0; i < ex->ncalls; i++) {
    const nx_ext_call_t *c = &ex->calls[i];
    nx_buf_write(out, c->id, sizeof c->id);
    nx_wire_u8(out, c->answered);
    nx_wire_bytes(out, c->ext, strlen(c->ext));
    nx_wire_bytes(out, c->method, strlen(c->method));
    nx_wire_bytes(out, c->args, c->args_len);
  }
}

int nx_host_restore(nx_exec_t *ex, nx_wire_rd_t *in) {
  uint64_t host_calls = nx_wire_get_u64(in);
  uint32_t n = nx_wire_get_u32(in), i;
  uint64_t limit = ex->cfg->max_result_bytes, pending = 0, first = 0;
  /* Each call was a host call, and takes 29 bytes at the least here: no
   * count the bytes cannot back is allocated for. */
  if (in->bad || n == 0 || n > host_calls || n > limit / CALL_OVERHEAD ||
      n > (size_t)(in->end - in->p) / 29)
    return NX_RC_INVALID;
  ex->calls = nx_mem_calloc(&ex->mem, n, sizeof *ex->calls);
  if (ex->calls == NULL) return NX_RC_NOMEM;
  ex->calls_cap = n;
  ex->host_calls = host_calls;
  for (i = 0; i < n; i++) {
    nx_ext_call_t *c = &ex->calls[i];
    const uint8_t *id = nx_wire_take(in, sizeof c->id), *ext, *method, *args;
    uint8_t answered = nx_wire_get_bool(in);
    size_t elen, mlen, alen;
    nx_mp_item_t it;
    ext = nx_wire_get_bytes(in, limit, &elen);
    method = nx_wire_get_bytes(in, limit, &mlen);
    args = nx_wire_get_bytes(in, limit, &alen);
    if (in->bad || memchr(ext, 0, elen) || memchr(method, 0, mlen)) return NX_RC_INVALID;
    /* The arguments go out in every result that lists the call: MessagePack
     * the host decodes, so they are validated like anything the guest made. */
    if (nx_mp_validate(args, alen, NX_LIMIT_HOST_DEPTH) != 0) return NX_RC_INVALID;
    nx_mp_read(args, &it);
    if (it.type != NX_MPT_ARRAY) return NX_RC_INVALID;
    memcpy(c->id, id, sizeof c->id);
    c->answered = answered;
    c->ext = nx_mem_strndup(&ex->mem, (const char *)ext, elen);
    c->method = nx_mem_strndup(&ex->mem, (const char *)method, mlen);
    c->args = nx_mem_alloc(&ex->mem, alen);
    if (c->ext == NULL || c->method == NULL || c->args == NULL) return NX_RC_NOMEM;
    memcpy(c->args, args, alen);
    c->args_len = alen;
    c->charge = CALL_OVERHEAD + elen + mlen + alen;
    ex->ncalls++;
    ex->nanswered += answered;
    if (!answered) {
      if (first == 0) first = c->charge;
      pending += c->charge;
    }
  }
  /* Something to resume, and within the result budget every later result
   * charges these calls to (nx_host_begin_segment), as add_call made sure
   * for calls made here: another runtime may have a larger one. */
  return ex->nanswered < ex->ncalls && pending + first <= limit ? NX_RC_OK : NX_RC_INVALID;
}

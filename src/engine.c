/* One execution, start to finish (see engine.h). Everything that touches the
 * guest runs inside one NX_WASM_TRY: a trap anywhere abandons the sandbox
 * and becomes an INTERNAL_ERROR result, never a crash. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostcalls.h"
#include "mpack.h"
#include "wasm_rt/nx_wasm.h"

#define HANDLER_FILE "handler.js"

/* The handler is the body of an async function. The prefix has a line of
 * its own: QuickJS reports columns on a first line shared with the prefix
 * inconsistently, whereas a whole-line offset is exact. */
static const char wrap_prefix[] =
    "(async function ($state, $args, $scope, $emit, $view, $ext, $log) {\n";
static const char wrap_suffix[] = "\n})";
#define PREFIX_LINES 1

typedef struct {
  nx_error_code_t code;
  char *message;
  char *stack;
  uint32_t line, column; /* 0 when unknown */
} nx_failure_t;

static void failure_free(nx_failure_t *f) {
  free(f->message);
  free(f->stack);
  memset(f, 0, sizeof *f);
}

static char *dup_str(const char *s) {
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d) memcpy(d, s, n + 1);
  return d;
}

static void fail_with(nx_failure_t *f, nx_error_code_t code, const char *message) {
  failure_free(f);
  f->code = code;
  f->message = dup_str(message);
}

/* ---- reading guest values ---------------------------------------------- */

/* A host copy of String(v), or NULL. Calls into the guest (toString may run
 * handler code, bounded by the same deadline). */
static char *guest_to_string(nx_sandbox_t *sb, nx_jsval_t v) {
  uint32_t slot = nx_sandbox_slot_push(sb, 1), ptr, len = 0;
  uint8_t *bytes;
  char *out = NULL;
  if (slot == 0) return NULL;
  ptr = Q(JS_ToCStringLen2)(&sb->inst, sb->ctx, slot, v, 0);
  if (ptr != 0 && nx_guest_read_u32(&sb->inst, slot, &len) == 0 &&
      (bytes = nx_guest_bytes(&sb->inst, ptr, len)) != NULL &&
      (out = malloc((size_t)len + 1)) != NULL) {
    memcpy(out, bytes, len);
    out[len] = 0;
  }
  if (ptr) Q(JS_FreeCString)(&sb->inst, sb->ctx, ptr);
  else Q(JS_FreeValue)(&sb->inst, sb->ctx, Q(JS_GetException)(&sb->inst, sb->ctx));
  nx_sandbox_slot_pop(sb, 1);
  return out;
}

static char *guest_prop_string(nx_sandbox_t *sb, nx_jsval_t obj, const char *name) {
  uint32_t p = nx_sandbox_put(sb, name, strlen(name));
  nx_jsval_t v = p ? Q(JS_GetPropertyStr)(&sb->inst, sb->ctx, obj, p) : NX_EXCEPTION;
  char *s = NULL;
  if (nx_jsval_tag(v) == NX_TAG_EXCEPTION) {
    Q(JS_FreeValue)(&sb->inst, sb->ctx, Q(JS_GetException)(&sb->inst, sb->ctx));
    return NULL;
  }
  if (nx_jsval_tag(v) != NX_TAG_UNDEFINED) s = guest_to_string(sb, v);
  nx_sandbox_free_value(sb, v);
  return s;
}

/* Keeps only the frames in the handler's own source, with line numbers
 * relative to it. Sets *line / *column from the first such frame. */
static char *handler_stack(const char *stack, uint32_t *line, uint32_t *column) {
  size_t cap = strlen(stack) + 1, n = 0;
  char *out = malloc(cap + 64);
  const char *p = stack;

  if (out == NULL) return NULL;
  *line = *column = 0;
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    const char *at = memmem(p, len, HANDLER_FILE ":", sizeof HANDLER_FILE);
    if (at) {
      const char *num = at + sizeof HANDLER_FILE;
      char *end;
      unsigned long l = strtoul(num, &end, 10), c = 0;
      const char *rest = end;
      if (*end == ':') {
        c = strtoul(end + 1, &end, 10);
        rest = end;
      }
      if (l <= PREFIX_LINES) { /* inside the wrapper itself */
        p += len;
        if (*p == '\n') p++;
        continue;
      }
      l -= PREFIX_LINES;
      if (*line == 0) {
        *line = (uint32_t)l;
        *column = (uint32_t)c;
      }
      n += (size_t)snprintf(out + n, cap + 64 - n, "%s%.*s%lu:%lu%.*s", n ? "\n" : "",
                            (int)(num - p), p, l, c, (int)(len - (size_t)(rest - p)), rest);
      if (n >= cap + 64) n = cap + 63;
    }
    p += len;
    if (*p == '\n') p++;
  }
  if (n == 0) { /* no frame in the handler: say nothing rather than "" */
    free(out);
    return NULL;
  }
  out[n] = 0;
  return out;
}

static int is_host_error(nx_exec_t *ex, nx_jsval_t v, nx_error_code_t *code) {
  uint32_t i;
  if (nx_jsval_tag(v) != NX_TAG_OBJECT) return 0;
  for (i = 0; i < ex->nhost_errors; i++)
    if (ex->host_errors[i] == v) {
      *code = ex->host_codes[i];
      return 1;
    }
  return 0;
}

/* Turns a thrown or rejected value into a failure. */
static void failure_from_value(nx_exec_t *ex, nx_jsval_t reason,
                               nx_error_code_t fallback, nx_failure_t *f) {
  nx_sandbox_t *sb = ex->sb;
  nx_error_code_t code = fallback;
  int host = is_host_error(ex, reason, &code);
  char *name = NULL, *message = NULL, *stack = NULL;

  failure_free(f);
  if (sb->interrupted) {
    char msg[96];
    snprintf(msg, sizeof msg, "Execution timed out after %u ms",
             (unsigned)((sb->deadline_ns - ex->start_ns) / 1000000u));
    fail_with(f, NX_E_TIMEOUT, msg);
    return;
  }
  if (Q(JS_IsError)(&sb->inst, reason)) {
    name = guest_prop_string(sb, reason, "name");
    message = guest_prop_string(sb, reason, "message");
    stack = guest_prop_string(sb, reason, "stack");
    if (!host && name && message && strcmp(name, "InternalError") == 0 &&
        strcmp(message, "out of memory") == 0) {
      code = NX_E_MEMORY_LIMIT;
      sb->broken = 1;
    }
  }
  f->code = code;
  if (code == NX_E_MEMORY_LIMIT) {
    char msg[96];
    snprintf(msg, sizeof msg, "Memory limit of %llu bytes exceeded",
             (unsigned long long)ex->cfg->memory_limit);
    f->message = dup_str(msg);
  } else if (message && (host || name == NULL)) {
    f->message = message;
    message = NULL;
  } else if (message) {
    size_t n = strlen(name) + strlen(message) + 3;
    f->message = malloc(n);
    if (f->message) snprintf(f->message, n, "%s: %s", name, message);
  } else {
    char *s = guest_to_string(sb, reason);
    size_t n = (s ? strlen(s) : 0) + 16;
    f->message = malloc(n);
    if (f->message) snprintf(f->message, n, "Uncaught %s", s ? s : "exception");
    free(s);
  }
  if (stack) f->stack = handler_stack(stack, &f->line, &f->column);
  free(name);
  free(message);
  free(stack);
}

static void failure_from_exception(nx_exec_t *ex, nx_error_code_t fallback,
                                   nx_failure_t *f) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t exc = Q(JS_GetException)(&sb->inst, sb->ctx);
  failure_from_value(ex, exc, fallback, f);
  nx_sandbox_free_value(sb, exc);
}

/* ---- result ---------------------------------------------------------------- */

static void pack_str(msgpack_packer *pk, const char *s) {
  msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* `snippet`: the offending source line and a caret under the column. Long
 * (minified) lines are cut to a window around the column. */
#define SNIPPET_BEFORE 60u
#define SNIPPET_WIDTH 160u

static void pack_snippet(msgpack_packer *pk, const nx_exec_request_t *req,
                         uint32_t line, uint32_t column) {
  const char *p = req->code, *end = req->code + req->code_len, *eol;
  uint32_t l = 1, col0, from, len, i, k;
  char buf[2 * SNIPPET_WIDTH + 4];

  while (l < line && p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (nl == NULL) break;
    p = nl + 1;
    l++;
  }
  if (l != line || line == 0) {
    msgpack_pack_nil(pk);
    return;
  }
  eol = memchr(p, '\n', (size_t)(end - p));
  if (eol == NULL) eol = end;
  if (eol > p && eol[-1] == '\r') eol--;
  col0 = column > 0 ? column - 1 : 0;
  from = col0 > SNIPPET_BEFORE ? col0 - SNIPPET_BEFORE : 0;
  if ((size_t)(eol - p) < from) from = (uint32_t)(eol - p);
  len = (uint32_t)(eol - p) - from;
  if (len > SNIPPET_WIDTH) len = SNIPPET_WIDTH;
  if (col0 - from > SNIPPET_WIDTH) col0 = from + SNIPPET_WIDTH;
  memcpy(buf, p + from, len);
  i = len;
  buf[i++] = '\n';
  /* Keep tabs so the caret lines up under tab-indented code. */
  for (k = from; k < col0; k++) buf[i++] = (k < from + len && p[k] == '\t') ? '\t' : ' ';
  buf[i++] = '^';
  msgpack_pack_str_with_body(pk, buf, i);
}

static void pack_error(msgpack_packer *pk, const nx_failure_t *f,
                       const nx_exec_request_t *req) {
  msgpack_pack_map(pk, 5);
  pack_str(pk, "code");
  pack_str(pk, nx_error_name(f->code));
  pack_str(pk, "message");
  pack_str(pk, f->message ? f->message : nx_error_name(f->code));
  pack_str(pk, "stack");
  if (f->stack) pack_str(pk, f->stack);
  else msgpack_pack_nil(pk);
  pack_str(pk, "location");
  if (f->line) {
    msgpack_pack_map(pk, 2);
    pack_str(pk, "line");
    msgpack_pack_uint32(pk, f->line);
    pack_str(pk, "column");
    msgpack_pack_uint32(pk, f->column);
  } else {
    msgpack_pack_nil(pk);
  }
  pack_str(pk, "snippet");
  if (f->line && req) pack_snippet(pk, req, f->line, f->column);
  else msgpack_pack_nil(pk);
}

static void pack_raw_list(msgpack_packer *pk, const nx_out_list_t *list) {
  msgpack_pack_array(pk, list->count);
  if (list->buf.size) msgpack_sbuffer_write(pk->data, list->buf.data, list->buf.size);
}

static void pack_metrics(msgpack_packer *pk, nx_exec_t *ex, uint64_t duration_us,
                         uint64_t compile_us) {
  static const char *const calls[NX_HOSTCALL__COUNT] = {
      "state.get", "state.set", "emit", "view", "log"};
  int i, n = 0;
  msgpack_pack_map(pk, 6);
  pack_str(pk, "durationUs");
  msgpack_pack_uint64(pk, duration_us);
  pack_str(pk, "compilationTimeUs");
  msgpack_pack_uint64(pk, compile_us);
  pack_str(pk, "memoryPeakBytes");
  msgpack_pack_uint64(pk, ex->sb ? nx_sandbox_memory_bytes(ex->sb) : 0);
  pack_str(pk, "instructionCount");
  /* QuickJS calls the interrupt handler once per 10 000 "ticks" (function
   * calls and backward jumps): an estimate of work, not instructions. */
  msgpack_pack_uint64(pk, ex->sb ? (ex->sb->interrupts - ex->interrupts0) * 10000u : 0);
  pack_str(pk, "cacheHit");
  if (ex->cache_hit) msgpack_pack_true(pk);
  else msgpack_pack_false(pk);
  pack_str(pk, "hostCalls");
  for (i = 0; i < NX_HOSTCALL__COUNT; i++) n += ex->hostcalls[i] != 0;
  msgpack_pack_map(pk, (size_t)n);
  for (i = 0; i < NX_HOSTCALL__COUNT; i++) {
    if (!ex->hostcalls[i]) continue;
    pack_str(pk, calls[i]);
    msgpack_pack_uint64(pk, ex->hostcalls[i]);
  }
}

/* Encodes the state mutations in order of first change, then the keys that
 * were only read but whose object value the handler changed in place. */
static int pack_mutations(nx_exec_t *ex, msgpack_sbuffer *out, nx_failure_t *f) {
  nx_sandbox_t *sb = ex->sb;
  msgpack_packer pk;
  msgpack_sbuffer tmp;
  msgpack_packer tpk;
  nx_mp_encoder_t *enc = malloc(sizeof *enc);
  uint32_t *order = NULL, n = 0, i, extra = 0;
  int rc = -1;

  msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
  msgpack_sbuffer_init(&tmp);
  msgpack_packer_init(&tpk, &tmp, msgpack_sbuffer_write);
  if (enc == NULL) goto oom;
  order = malloc(((size_t)ex->nslots + 1) * sizeof *order);
  if (order == NULL) goto oom;
  for (i = 0; i < ex->nslots; i++)
    if (ex->slots[i].change >= 0) order[ex->slots[i].change] = i;
  n = ex->nchanges;

  /* In-place changes: re-encode each object read from $state and compare it
   * with the snapshot. Appended after explicit writes, in key order. */
  for (i = 0; i < ex->nslots; i++) {
    nx_state_slot_t *s = &ex->slots[i];
    msgpack_unpacked now;
    size_t off = 0;
    int same;
    if (s->change >= 0 || !s->read || !s->loaded || nx_jsval_tag(s->value) != NX_TAG_OBJECT)
      continue;
    tmp.size = 0;
    nx_mp_encoder_init(enc, sb, &tpk, "stateMutations");
    nx_path_key(&enc->path, s->key, s->key_len);
    if (nx_mp_encode(enc, s->value) != NX_MP_OK) {
      s->change = (int32_t)(n + extra); /* reported below with its error */
      order[n + extra++] = i;
      continue;
    }
    msgpack_unpacked_init(&now);
    same = msgpack_unpack_next(&now, tmp.data, tmp.size, &off) == MSGPACK_UNPACK_SUCCESS &&
           s->orig && nx_mp_equal(&now.data, s->orig);
    msgpack_unpacked_destroy(&now);
    if (!same) {
      s->change = (int32_t)(n + extra);
      order[n + extra++] = i;
    }
  }
  n += extra;

  msgpack_pack_array(&pk, n);
  for (i = 0; i < n; i++) {
    nx_state_slot_t *s = &ex->slots[order[i]];
    char root[48];
    msgpack_pack_map(&pk, s->deleted ? 2 : 3);
    pack_str(&pk, "key");
    msgpack_pack_str_with_body(&pk, s->key, s->key_len);
    pack_str(&pk, "operation");
    pack_str(&pk, s->deleted ? "delete" : "set");
    if (s->deleted) continue;
    pack_str(&pk, "value");
    snprintf(root, sizeof root, "stateMutations[%u].value", i);
    nx_mp_encoder_init(enc, sb, &pk, root);
    switch (nx_mp_encode(enc, s->value)) {
      case NX_MP_OK:
        break;
      case NX_MP_UNCROSSABLE:
        fail_with(f, NX_E_EXECUTION_ERROR, enc->err);
        goto done;
      default:
        failure_from_exception(ex, NX_E_EXECUTION_ERROR, f);
        goto done;
    }
  }
  rc = 0;
  goto done;
oom:
  fail_with(f, NX_E_INTERNAL_ERROR, "host out of memory");
done:
  msgpack_sbuffer_destroy(&tmp);
  free(order);
  free(enc);
  return rc;
}

static int finish_result(nx_exec_t *ex, const nx_exec_request_t *req,
                         const nx_failure_t *f, msgpack_sbuffer *retval,
                         msgpack_sbuffer *mutations, uint64_t duration_us,
                         uint64_t compile_us, char **out, size_t *out_len) {
  msgpack_sbuffer res;
  msgpack_packer pk;
  int ok = f->code == NX_OK;

  msgpack_sbuffer_init(&res);
  msgpack_packer_init(&pk, &res, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, 7);
  pack_str(&pk, "status");
  pack_str(&pk, ok ? "success" : "error");
  if (ok) {
    pack_str(&pk, "returnValue");
    msgpack_sbuffer_write(&res, retval->data, retval->size);
  } else {
    pack_str(&pk, "error");
    pack_error(&pk, f, req);
  }
  /* A failed handler's effects are not applied: only its logs survive. */
  pack_str(&pk, "stateMutations");
  if (ok) msgpack_sbuffer_write(&res, mutations->data, mutations->size);
  else msgpack_pack_array(&pk, 0);
  pack_str(&pk, "events");
  if (ok) pack_raw_list(&pk, &ex->events);
  else msgpack_pack_array(&pk, 0);
  pack_str(&pk, "viewCommands");
  if (ok) pack_raw_list(&pk, &ex->views);
  else msgpack_pack_array(&pk, 0);
  pack_str(&pk, "logs");
  pack_raw_list(&pk, &ex->logs);
  pack_str(&pk, "metrics");
  pack_metrics(&pk, ex, duration_us, compile_us);
  if (res.data == NULL) return -1;
  *out = res.data;
  *out_len = res.size;
  return 0;
}

int nx_engine_error_result(nx_error_code_t code, const char *message, char **out,
                           size_t *out_len) {
  nx_exec_t ex;
  nx_failure_t f;
  int rc;
  memset(&ex, 0, sizeof ex);
  memset(&f, 0, sizeof f);
  msgpack_sbuffer_init(&ex.events.buf);
  msgpack_sbuffer_init(&ex.views.buf);
  msgpack_sbuffer_init(&ex.logs.buf);
  fail_with(&f, code, message);
  rc = finish_result(&ex, NULL, &f, NULL, NULL, 0, 0, out, out_len);
  failure_free(&f);
  return rc;
}

/* ---- execution -------------------------------------------------------------- */

static const msgpack_object *map_get(const msgpack_object *map, const char *key) {
  uint32_t i;
  size_t len = strlen(key);
  if (map == NULL || map->type != MSGPACK_OBJECT_MAP) return NULL;
  for (i = 0; i < map->via.map.size; i++) {
    const msgpack_object *k = &map->via.map.ptr[i].key;
    if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == len &&
        memcmp(k->via.str.ptr, key, len) == 0)
      return &map->via.map.ptr[i].val;
  }
  return NULL;
}

static void out_list_init(nx_out_list_t *l) {
  msgpack_sbuffer_init(&l->buf);
  msgpack_packer_init(&l->pk, &l->buf, msgpack_sbuffer_write);
  l->count = 0;
}

/* Decodes context.args / context.scope into a guest value; missing -> {}. */
static int decode_field(nx_exec_t *ex, const msgpack_object *o, const char *root,
                        nx_jsval_t *out, nx_failure_t *f) {
  nx_sandbox_t *sb = ex->sb;
  nx_path_t path;
  char err[300];
  nx_mp_status_t st;
  if (o == NULL) {
    *out = Q(JS_NewObject)(&sb->inst, sb->ctx);
    st = nx_jsval_tag(*out) == NX_TAG_EXCEPTION ? NX_MP_GUEST : NX_MP_OK;
  } else {
    nx_path_set(&path, root);
    st = nx_mp_decode(sb, o, out, &path, err, sizeof err);
  }
  if (st == NX_MP_UNCROSSABLE) fail_with(f, NX_E_EXECUTION_ERROR, err);
  else if (st == NX_MP_GUEST) failure_from_exception(ex, NX_E_EXECUTION_ERROR, f);
  return st == NX_MP_OK ? 0 : -1;
}

static uint64_t hash_source(const char *s, size_t len) {
  uint64_t h = 14695981039346656037ull;
  size_t i;
  for (i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
  return h;
}

/* The sandbox's compiled function for this source, if it has one. */
static nx_fn_entry_t *fn_cache_find(nx_sandbox_t *sb, const nx_exec_request_t *req,
                                    uint64_t hash) {
  int i;
  for (i = 0; i < NX_FN_CACHE_SIZE; i++) {
    nx_fn_entry_t *e = &sb->fn_cache[i];
    if (e->code && e->hash == hash && e->len == req->code_len &&
        memcmp(e->code, req->code, req->code_len) == 0) {
      e->used = ++sb->fn_clock;
      return e;
    }
  }
  return NULL;
}

static void fn_cache_store(nx_sandbox_t *sb, const nx_exec_request_t *req,
                           uint64_t hash, nx_jsval_t fn) {
  nx_fn_entry_t *victim = &sb->fn_cache[0];
  char *copy = malloc(req->code_len + 1);
  int i;
  if (copy == NULL) return;
  for (i = 1; i < NX_FN_CACHE_SIZE && victim->code; i++)
    if (sb->fn_cache[i].code == NULL || sb->fn_cache[i].used < victim->used)
      victim = &sb->fn_cache[i];
  if (victim->code) {
    free(victim->code);
    nx_sandbox_free_value(sb, victim->fn);
  }
  memcpy(copy, req->code, req->code_len);
  victim->hash = hash;
  victim->code = copy;
  victim->len = req->code_len;
  victim->fn = nx_sandbox_dup_value(sb, fn);
  victim->used = ++sb->fn_clock;
}

static nx_jsval_t compile_handler(nx_exec_t *ex, const nx_exec_request_t *req,
                                  nx_failure_t *f) {
  nx_sandbox_t *sb = ex->sb;
  uint64_t hash = hash_source(req->code, req->code_len);
  nx_fn_entry_t *hit = fn_cache_find(sb, req, hash);
  size_t len = sizeof wrap_prefix - 1 + req->code_len + sizeof wrap_suffix - 1;
  char *src;
  uint32_t p;
  nx_jsval_t fn;

  if (hit) {
    ex->cache_hit = 1;
    return nx_sandbox_dup_value(sb, hit->fn);
  }
  src = malloc(len + sizeof HANDLER_FILE);
  if (src == NULL) {
    fail_with(f, NX_E_INTERNAL_ERROR, "host out of memory");
    return NX_EXCEPTION;
  }
  memcpy(src, wrap_prefix, sizeof wrap_prefix - 1);
  memcpy(src + sizeof wrap_prefix - 1, req->code, req->code_len);
  memcpy(src + len - (sizeof wrap_suffix - 1), wrap_suffix, sizeof wrap_suffix - 1);
  /* File name right after the source, in the same scratch copy. */
  memcpy(src + len, "\0" HANDLER_FILE, sizeof HANDLER_FILE);
  p = nx_sandbox_put(sb, src, len + sizeof HANDLER_FILE);
  free(src);
  if (p == 0) {
    fail_with(f, NX_E_MEMORY_LIMIT, "Memory limit exceeded while loading the handler");
    return NX_EXCEPTION;
  }
  fn = Q(JS_Eval)(&sb->inst, sb->ctx, p, (uint32_t)len, p + (uint32_t)len + 1, 0);
  if (nx_jsval_tag(fn) == NX_TAG_EXCEPTION) {
    failure_from_exception(ex, NX_E_COMPILATION_ERROR, f);
    return NX_EXCEPTION;
  }
  if (!Q(JS_IsAsyncFunction)(&sb->inst, fn)) {
    nx_sandbox_free_value(sb, fn);
    fail_with(f, NX_E_COMPILATION_ERROR,
              "Handler code must be the body of a function (it closed the wrapper)");
    return NX_EXCEPTION;
  }
  fn_cache_store(sb, req, hash, fn);
  return fn;
}

/* Runs promise jobs until none is left; -1 if one threw past its promise. */
static int drain_jobs(nx_exec_t *ex) {
  nx_sandbox_t *sb = ex->sb;
  uint32_t slot = nx_sandbox_slot_push(sb, 1);
  int32_t r;
  if (slot == 0) return -1;
  do {
    r = (int32_t)Q(JS_ExecutePendingJob)(&sb->inst, sb->rt, slot);
  } while (r > 0);
  nx_sandbox_slot_pop(sb, 1);
  return r < 0 ? -1 : 0;
}

/* Drops the guest references the execution holds. Inside a guard. */
static void exec_release_guest(nx_exec_t *ex) {
  nx_sandbox_t *sb = ex->sb;
  uint32_t i;
  for (i = 0; i < ex->nslots; i++)
    if (ex->slots[i].loaded) {
      ex->slots[i].loaded = 0;
      nx_sandbox_free_value(sb, ex->slots[i].value);
    }
  while (ex->nhost_errors > 0) nx_sandbox_free_value(sb, ex->host_errors[--ex->nhost_errors]);
}

static void exec_release_host(nx_exec_t *ex) {
  uint32_t i;
  for (i = 0; i < ex->nslots; i++)
    if (ex->slots[i].owned_key) free((char *)ex->slots[i].key);
  free(ex->slots);
  free(ex->index);
  nx_caps_free(&ex->caps);
  msgpack_sbuffer_destroy(&ex->events.buf);
  msgpack_sbuffer_destroy(&ex->views.buf);
  msgpack_sbuffer_destroy(&ex->logs.buf);
  msgpack_unpacked_destroy(&ex->ctx_msg);
}

/* The part of an execution that runs guest code. Kept out of
 * nx_engine_execute so no local lives across its setjmp. */
static void run_guarded(nx_exec_t *ex, const nx_exec_request_t *req, nx_failure_t *f,
                        msgpack_packer *rpk, msgpack_sbuffer *mutations,
                        volatile uint64_t *compile_us) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t fn = NX_UNDEFINED, args = NX_UNDEFINED, scope = NX_UNDEFINED,
             promise = NX_UNDEFINED, value;
  uint32_t argv;

  {
    uint64_t t = nx_now_ns();
    fn = compile_handler(ex, req, f);
    *compile_us = (nx_now_ns() - t) / 1000u;
  }
  if (nx_jsval_tag(fn) == NX_TAG_EXCEPTION) goto leave;
  if (decode_field(ex, ex->args, "args", &args, f) != 0 ||
      decode_field(ex, ex->scope, "scope", &scope, f) != 0)
    goto leave;

  argv = nx_sandbox_slot_push(sb, 3);
  if (argv == 0) {
    fail_with(f, NX_E_INTERNAL_ERROR, "out of guest slots");
    goto leave;
  }
  memcpy(sb->inst.w2c_memory.data + argv, &fn, 8);
  memcpy(sb->inst.w2c_memory.data + argv + 8, &args, 8);
  memcpy(sb->inst.w2c_memory.data + argv + 16, &scope, 8);
  promise = Q(JS_Call)(&sb->inst, sb->ctx, sb->run, NX_UNDEFINED, 3, argv);
  nx_sandbox_slot_pop(sb, 3);
  if (nx_jsval_tag(promise) == NX_TAG_EXCEPTION) {
    failure_from_exception(ex, NX_E_EXECUTION_ERROR, f);
    goto leave;
  }
  if (drain_jobs(ex) != 0) {
    failure_from_exception(ex, NX_E_EXECUTION_ERROR, f);
    goto leave;
  }

  switch ((int32_t)Q(JS_PromiseState)(&sb->inst, sb->ctx, promise)) {
    case 1: { /* fulfilled */
      nx_mp_encoder_t *enc = malloc(sizeof *enc);
      nx_mp_status_t st;
      if (enc == NULL) {
        fail_with(f, NX_E_INTERNAL_ERROR, "host out of memory");
        break;
      }
      value = Q(JS_PromiseResult)(&sb->inst, sb->ctx, promise);
      nx_mp_encoder_init(enc, sb, rpk, "returnValue");
      st = nx_mp_encode(enc, value);
      nx_sandbox_free_value(sb, value);
      if (st == NX_MP_UNCROSSABLE) fail_with(f, NX_E_EXECUTION_ERROR, enc->err);
      else if (st == NX_MP_GUEST) failure_from_exception(ex, NX_E_EXECUTION_ERROR, f);
      free(enc);
      if (st == NX_MP_OK) pack_mutations(ex, mutations, f);
      break;
    }
    case 2: /* rejected */
      value = Q(JS_PromiseResult)(&sb->inst, sb->ctx, promise);
      failure_from_value(ex, value, NX_E_EXECUTION_ERROR, f);
      nx_sandbox_free_value(sb, value);
      break;
    case 0:
      if (sb->interrupted) failure_from_value(ex, NX_UNDEFINED, NX_E_TIMEOUT, f);
      else
        fail_with(f, NX_E_EXECUTION_ERROR,
                  "Handler never settled: it awaited a promise that nothing can resolve");
      break;
    default:
      fail_with(f, NX_E_INTERNAL_ERROR, "run() did not return a promise");
  }

leave:
  nx_sandbox_free_value(sb, fn);
  nx_sandbox_free_value(sb, args);
  nx_sandbox_free_value(sb, scope);
  nx_sandbox_free_value(sb, promise);
  if (sb->interrupted) sb->broken = 1;
}

int nx_engine_execute(nx_sandbox_t *sb, const nx_config_t *cfg,
                      const nx_exec_request_t *req, char **out, size_t *out_len,
                      nx_exec_outcome_t *outcome) {
  nx_exec_t ex;
  nx_failure_t f;
  nx_wasm_guard_t guard;
  msgpack_sbuffer retval, mutations;
  msgpack_packer rpk;
  volatile int guest_ok = 1;
  volatile uint64_t compile_us = 0;
  uint64_t duration_us;
  size_t off = 0;
  int trap, rc;

  memset(&ex, 0, sizeof ex);
  memset(&f, 0, sizeof f);
  ex.sb = sb;
  ex.cfg = cfg;
  ex.start_ns = nx_now_ns();
  ex.interrupts0 = sb->interrupts;
  ex.out_limit = cfg->memory_limit;
  out_list_init(&ex.events);
  out_list_init(&ex.views);
  out_list_init(&ex.logs);
  msgpack_sbuffer_init(&retval);
  msgpack_sbuffer_init(&mutations);
  msgpack_packer_init(&rpk, &retval, msgpack_sbuffer_write);
  msgpack_unpacked_init(&ex.ctx_msg);

  /* 32: msgpack-c's own parse-stack depth. */
  if (nx_mp_validate(req->context, req->context_len, 32) != 0 ||
      msgpack_unpack_next(&ex.ctx_msg, (const char *)req->context, req->context_len, &off) !=
          MSGPACK_UNPACK_SUCCESS ||
      off != req->context_len || ex.ctx_msg.data.type != MSGPACK_OBJECT_MAP) {
    fail_with(&f, NX_E_INTERNAL_ERROR,
              "context is not a MessagePack map (nested deeper than 32 levels?)");
    goto finish;
  }
  ex.state = map_get(&ex.ctx_msg.data, "stateSnapshot");
  ex.args = map_get(&ex.ctx_msg.data, "args");
  ex.scope = map_get(&ex.ctx_msg.data, "scope");
  if (nx_caps_parse(&ex.caps, map_get(&ex.ctx_msg.data, "capabilities")) != 0) {
    fail_with(&f, NX_E_INTERNAL_ERROR, "host out of memory");
    goto finish;
  }

  sb->exec = &ex;
  sb->interrupted = 0;
  sb->slots_top = 0;
  sb->deadline_ns = ex.start_ns +
                    (uint64_t)(req->timeout_ms ? req->timeout_ms : cfg->default_timeout_ms) * 1000000u;

  trap = NX_WASM_TRY(&guard);
  if (trap != 0) {
    /* The guest was interrupted mid-operation: never touch it again. */
    guest_ok = 0;
    sb->broken = 1;
    if (trap == WASM_RT_TRAP_EXHAUSTION)
      fail_with(&f, NX_E_EXECUTION_ERROR, "RangeError: Maximum call stack size exceeded");
    else {
      char msg[96];
      snprintf(msg, sizeof msg, "Sandbox trapped (%s); it was discarded", nx_wasm_trap_name(trap));
      fail_with(&f, NX_E_INTERNAL_ERROR, msg);
    }
    goto finish;
  }

  run_guarded(&ex, req, &f, &rpk, &mutations, &compile_us);
  nx_wasm_leave(&guard);

finish:
  duration_us = (nx_now_ns() - ex.start_ns) / 1000u;
  rc = finish_result(&ex, req, &f, &retval, &mutations, duration_us, compile_us, out, out_len);
  if (outcome) {
    outcome->code = f.code;
    outcome->duration_us = duration_us;
    outcome->compile_us = compile_us;
  }
  sb->exec = NULL;
  sb->deadline_ns = 0;
  /* Freeing guest values after a trap would run the interrupted guest. */
  if (guest_ok) {
    if (NX_WASM_TRY(&guard) == 0) {
      exec_release_guest(&ex);
      nx_wasm_leave(&guard);
    } else {
      sb->broken = 1;
    }
  }
  exec_release_host(&ex);
  failure_free(&f);
  msgpack_sbuffer_destroy(&retval);
  msgpack_sbuffer_destroy(&mutations);
  return rc;
}

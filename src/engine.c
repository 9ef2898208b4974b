/* One execution, start to finish (see engine.h). Everything that touches the
 * guest runs inside one NX_WASM_TRY: a trap anywhere abandons the sandbox
 * and becomes an INTERNAL_ERROR result, never a crash. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "compiler.h"
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
             (unsigned)(ex->timeout_ns / 1000000u));
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

static void pack_snippet(msgpack_packer *pk, const nx_exec_t *ex, uint32_t line,
                         uint32_t column) {
  const char *p = ex->code, *end = ex->code + ex->code_len, *eol;
  uint32_t l = 1, col0, from, len, i, k;
  char buf[2 * SNIPPET_WIDTH + 4];

  if (p == NULL || ex->mode == NX_MODE_BYTECODE) { /* no source to quote */
    msgpack_pack_nil(pk);
    return;
  }
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

static void pack_error(msgpack_packer *pk, const nx_failure_t *f, const nx_exec_t *ex) {
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
  if (f->line) pack_snippet(pk, ex, f->line, f->column);
  else msgpack_pack_nil(pk);
}

static void pack_raw_list(msgpack_packer *pk, const nx_out_list_t *list) {
  msgpack_pack_array(pk, list->count);
  if (list->buf.size) msgpack_sbuffer_write(pk->data, list->buf.data, list->buf.size);
}

static const char *const hostcall_names[NX_HOSTCALL__COUNT] = {
    "state.get", "state.set", "emit", "view", "log"};

const char *nx_engine_hostcall_name(nx_hostcall_kind_t kind) { return hostcall_names[kind]; }

static void pack_metrics(msgpack_packer *pk, nx_exec_t *ex, uint64_t duration_us,
                         uint64_t compile_us) {
  const char *const *calls = hostcall_names;
  uint32_t i, n = 0;
  uint32_t used = 0;
  if (ex->sb && ex->env && ex->env->heap_used_offset)
    nx_guest_read_u32(&ex->sb->inst, ex->sb->rt + ex->env->heap_used_offset, &used);
  msgpack_pack_map(pk, 7);
  pack_str(pk, "durationUs");
  msgpack_pack_uint64(pk, duration_us);
  pack_str(pk, "memoryUsedBytes");
  msgpack_pack_uint64(pk, used);
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
  for (i = 0; i < ex->next_counts; i++) n += ex->ext_counts[i].count != 0;
  msgpack_pack_map(pk, n);
  for (i = 0; i < NX_HOSTCALL__COUNT; i++) {
    if (!ex->hostcalls[i]) continue;
    pack_str(pk, calls[i]);
    msgpack_pack_uint64(pk, ex->hostcalls[i]);
  }
  for (i = 0; i < ex->next_counts; i++) {
    if (!ex->ext_counts[i].count) continue;
    pack_str(pk, ex->ext_counts[i].name);
    msgpack_pack_uint64(pk, ex->ext_counts[i].count);
  }
}

void nx_exec_format_id(const uint8_t id[NX_SUSPENSION_ID_BYTES], char hex[2 * NX_SUSPENSION_ID_BYTES + 1]) {
  static const char digits[] = "0123456789abcdef";
  int i;
  for (i = 0; i < NX_SUSPENSION_ID_BYTES; i++) {
    hex[2 * i] = digits[id[i] >> 4];
    hex[2 * i + 1] = digits[id[i] & 15];
  }
  hex[2 * NX_SUSPENSION_ID_BYTES] = 0;
}

static void pack_call(msgpack_packer *pk, const nx_ext_call_t *c) {
  char hex[2 * NX_SUSPENSION_ID_BYTES + 1];
  nx_exec_format_id(c->id, hex);
  msgpack_pack_map(pk, 4);
  pack_str(pk, "suspensionId");
  pack_str(pk, hex);
  pack_str(pk, "extensionName");
  pack_str(pk, c->ext);
  pack_str(pk, "method");
  pack_str(pk, c->method);
  pack_str(pk, "args");
  msgpack_sbuffer_write(pk->data, (const char *)c->args, c->args_len);
}

/* Is the encoded value what the host last saw for this key? */
static int same_as_base(const nx_state_slot_t *s, const char *bytes, size_t len) {
  msgpack_unpacked now;
  size_t off = 0;
  int same;
  if (s->has_base) return s->base && s->base_len == len && memcmp(s->base, bytes, len) == 0;
  if (s->orig == NULL) return 0;
  msgpack_unpacked_init(&now);
  same = msgpack_unpack_next(&now, bytes, len, &off) == MSGPACK_UNPACK_SUCCESS &&
         nx_mp_equal(&now.data, s->orig);
  msgpack_unpacked_destroy(&now);
  return same;
}

/* After a suspended result the host has applied these values: later
 * segments report changes against them. */
static int remember_base(nx_state_slot_t *s, const char *bytes, size_t len) {
  uint8_t *copy = NULL;
  if (bytes) {
    copy = malloc(len ? len : 1);
    if (copy == NULL) return -1;
    memcpy(copy, bytes, len);
  }
  free(s->base);
  s->base = copy;
  s->base_len = len;
  s->has_base = 1;
  return 0;
}

/* Encodes the state mutations in order of first change, then the keys that
 * were only read but whose object value the handler changed in place. With
 * `remember` (a suspension) the reported values become the new baselines. */
static int pack_mutations(nx_exec_t *ex, msgpack_sbuffer *out, nx_failure_t *f,
                          int remember) {
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
   * with the baseline. Appended after explicit writes, in key order. */
  for (i = 0; i < ex->nslots; i++) {
    nx_state_slot_t *s = &ex->slots[i];
    if (s->change >= 0 || !s->read || !s->loaded || nx_jsval_tag(s->value) != NX_TAG_OBJECT)
      continue;
    tmp.size = 0;
    nx_mp_encoder_init(enc, sb, &tpk, "stateMutations");
    nx_path_key(&enc->path, s->key, s->key_len);
    if (nx_mp_encode(enc, s->value) != NX_MP_OK || !same_as_base(s, tmp.data, tmp.size)) {
      /* Reading a key hands out its object; changing that object is a
       * write, and needs the write capability like an assignment does. */
      if (!nx_caps_allows(&ex->caps, NX_CAP_STATE_WRITE, s->key, s->key_len)) {
        char msg[320];
        snprintf(msg, sizeof msg,
                 "Permission denied: $state.%.*s was changed in place without capability "
                 "state:write:%.*s",
                 (int)(s->key_len > 120 ? 120 : s->key_len), s->key,
                 (int)(s->key_len > 120 ? 120 : s->key_len), s->key);
        fail_with(f, NX_E_PERMISSION_DENIED, msg);
        goto done;
      }
      /* An unencodable value is reported below, with its error. */
      s->change = (int32_t)(n + extra);
      order[n + extra++] = i;
    }
  }
  n += extra;

  msgpack_pack_array(&pk, n);
  for (i = 0; i < n; i++) {
    nx_state_slot_t *s = &ex->slots[order[i]];
    char root[48];
    size_t mark;
    msgpack_pack_map(&pk, s->deleted ? 2 : 3);
    pack_str(&pk, "key");
    msgpack_pack_str_with_body(&pk, s->key, s->key_len);
    pack_str(&pk, "operation");
    pack_str(&pk, s->deleted ? "delete" : "set");
    if (s->deleted) {
      if (remember && remember_base(s, NULL, 0) != 0) goto oom;
      continue;
    }
    pack_str(&pk, "value");
    snprintf(root, sizeof root, "stateMutations[%u].value", i);
    nx_mp_encoder_init(enc, sb, &pk, root);
    mark = out->size;
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
    if (remember && remember_base(s, out->data + mark, out->size - mark) != 0) goto oom;
  }
  if (remember) {
    for (i = 0; i < ex->nslots; i++) ex->slots[i].change = -1;
    ex->nchanges = 0;
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

static int finish_result(nx_exec_t *ex, const nx_failure_t *f, nx_status_t status,
                         msgpack_sbuffer *retval, msgpack_sbuffer *mutations,
                         uint64_t duration_us, uint64_t compile_us, char **out,
                         size_t *out_len) {
  static const char *const names[NX_STATUS__COUNT] = {"success", "error", "suspended"};
  msgpack_sbuffer res;
  msgpack_packer pk;
  int ok = status != NX_STATUS_ERROR;
  uint32_t i;

  msgpack_sbuffer_init(&res);
  msgpack_packer_init(&pk, &res, msgpack_sbuffer_write);
  msgpack_pack_map(&pk, status == NX_STATUS_SUSPENDED ? 8 : 7);
  pack_str(&pk, "status");
  pack_str(&pk, names[status]);
  if (status == NX_STATUS_SUCCESS) {
    pack_str(&pk, "returnValue");
    msgpack_sbuffer_write(&res, retval->data, retval->size);
  } else if (status == NX_STATUS_ERROR) {
    pack_str(&pk, "error");
    pack_error(&pk, f, ex);
  } else {
    const nx_ext_call_t *first = NULL;
    for (i = 0; i < ex->ncalls && first == NULL; i++)
      if (!ex->calls[i].answered) first = &ex->calls[i];
    pack_str(&pk, "suspension");
    pack_call(&pk, first);
    pack_str(&pk, "pendingCalls");
    msgpack_pack_array(&pk, ex->ncalls - ex->nanswered);
    for (i = 0; i < ex->ncalls; i++)
      if (!ex->calls[i].answered) pack_call(&pk, &ex->calls[i]);
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

static void out_list_init(nx_out_list_t *l) {
  msgpack_sbuffer_init(&l->buf);
  msgpack_packer_init(&l->pk, &l->buf, msgpack_sbuffer_write);
  l->count = 0;
}

static void out_list_clear(nx_out_list_t *l) {
  l->buf.size = 0;
  l->count = 0;
}

int nx_engine_error_result(nx_error_code_t code, const char *message, char **out,
                           size_t *out_len) {
  nx_exec_t ex;
  nx_failure_t f;
  int rc;
  memset(&ex, 0, sizeof ex);
  memset(&f, 0, sizeof f);
  out_list_init(&ex.events);
  out_list_init(&ex.views);
  out_list_init(&ex.logs);
  fail_with(&f, code, message);
  rc = finish_result(&ex, &f, NX_STATUS_ERROR, NULL, NULL, 0, 0, out, out_len);
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

#define JS_EVAL_FLAG_COMPILE_ONLY (1 << 5)
#define JS_WRITE_OBJ_BYTECODE (1 << 0)
#define JS_READ_OBJ_BYTECODE (1 << 0)

/* Prefixes a failure to read or evaluate bytecode with what it is. */
static void invalid_bytecode(nx_failure_t *f) {
  char msg[300];
  snprintf(msg, sizeof msg, "Invalid handler bytecode: %s", f->message ? f->message : "unreadable");
  fail_with(f, NX_E_INVALID_HANDLER, msg);
}

/* Evaluates a compiled script (consumed) to the handler function: the
 * wrapper expression must yield an async function. */
static nx_jsval_t eval_wrapper(nx_exec_t *ex, nx_jsval_t obj, nx_error_code_t code,
                               nx_failure_t *f) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t fn = Q(JS_EvalFunction)(&sb->inst, sb->ctx, obj);
  if (nx_jsval_tag(fn) == NX_TAG_EXCEPTION) {
    failure_from_exception(ex, code, f);
    if (f->code == NX_E_INVALID_HANDLER) invalid_bytecode(f);
    return NX_EXCEPTION;
  }
  if (!Q(JS_IsAsyncFunction)(&sb->inst, fn)) {
    nx_sandbox_free_value(sb, fn);
    fail_with(f, code,
              code == NX_E_INVALID_HANDLER
                  ? "Invalid handler bytecode: it does not evaluate to a handler function"
                  : "Handler code must be the body of a function (it closed the wrapper)");
    return NX_EXCEPTION;
  }
  return fn;
}

/* Bytecode from the cache or a precompiled buffer, read inside the guest:
 * QuickJS does not verify bytecode, so a crafted one can corrupt only the
 * sandbox it runs in, which is reset afterwards. */
static nx_jsval_t read_bytecode(nx_exec_t *ex, const uint8_t *bc, size_t len,
                                nx_failure_t *f) {
  nx_sandbox_t *sb = ex->sb;
  uint32_t p = nx_sandbox_put(sb, bc, len);
  nx_jsval_t obj;
  if (p == 0) {
    fail_with(f, NX_E_MEMORY_LIMIT, "Memory limit exceeded while loading the handler");
    return NX_EXCEPTION;
  }
  obj = Q(JS_ReadObject)(&sb->inst, sb->ctx, p, (uint32_t)len, JS_READ_OBJ_BYTECODE);
  if (nx_jsval_tag(obj) == NX_TAG_EXCEPTION) {
    failure_from_exception(ex, NX_E_INVALID_HANDLER, f);
    if (f->code == NX_E_INVALID_HANDLER) invalid_bytecode(f);
    return NX_EXCEPTION;
  }
  return eval_wrapper(ex, obj, NX_E_INVALID_HANDLER, f);
}

/* Compiles the wrapped source; *bc receives its bytecode (malloc'd). */
/* Compiles prefix + source + suffix (compile only); NX_EXCEPTION with the
 * guest's exception pending on a syntax error, 0 when out of memory. */
static nx_jsval_t compile_wrapped(nx_exec_t *ex, const char *prefix, size_t plen,
                                  const char *suffix, size_t slen) {
  nx_sandbox_t *sb = ex->sb;
  size_t len = plen + ex->code_len + slen;
  uint32_t p;
  char *src = malloc(len + sizeof HANDLER_FILE);

  if (src == NULL) return 0;
  memcpy(src, prefix, plen);
  memcpy(src + plen, ex->code, ex->code_len);
  memcpy(src + plen + ex->code_len, suffix, slen);
  /* File name right after the source, in the same scratch copy. */
  memcpy(src + len, "\0" HANDLER_FILE, sizeof HANDLER_FILE);
  p = nx_sandbox_put(sb, src, len + sizeof HANDLER_FILE);
  free(src);
  if (p == 0) return 0;
  return Q(JS_Eval)(&sb->inst, sb->ctx, p, (uint32_t)len, p + (uint32_t)len + 1,
                    JS_EVAL_FLAG_COMPILE_ONLY);
}

/* Code can close the wrapper and open a function of its own
 * (`}); x; (async function () {`). The same code compiled as the body of a
 * function declaration cannot do that and still parse: after its `}` the
 * parser is at statement level, where the `)` the escape needs is a syntax
 * error. So a handler must compile both ways. */
static const char decl_prefix[] =
    "async function nexus$handler($state, $args, $scope, $emit, $view, $ext, $log) {\n";
static const char decl_suffix[] = "\n}";

static int stays_in_wrapper(nx_exec_t *ex) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t obj = compile_wrapped(ex, decl_prefix, sizeof decl_prefix - 1, decl_suffix,
                                   sizeof decl_suffix - 1);
  if (nx_jsval_tag(obj) == NX_TAG_EXCEPTION) {
    nx_sandbox_free_value(sb, Q(JS_GetException)(&sb->inst, sb->ctx));
    return 0;
  }
  nx_sandbox_free_value(sb, obj);
  return 1;
}

/* Compiles the wrapped source; *bc receives its bytecode (malloc'd). */
static nx_jsval_t compile_source(nx_exec_t *ex, uint8_t **bc, size_t *bc_len,
                                 nx_failure_t *f) {
  nx_sandbox_t *sb = ex->sb;
  uint32_t slot, out, n = 0;
  uint8_t *bytes;
  nx_jsval_t obj = compile_wrapped(ex, wrap_prefix, sizeof wrap_prefix - 1, wrap_suffix,
                                   sizeof wrap_suffix - 1);

  if (obj == 0) {
    fail_with(f, NX_E_MEMORY_LIMIT, "Memory limit exceeded while loading the handler");
    return NX_EXCEPTION;
  }
  if (nx_jsval_tag(obj) == NX_TAG_EXCEPTION) {
    failure_from_exception(ex, NX_E_COMPILATION_ERROR, f);
    return NX_EXCEPTION;
  }
  if (!stays_in_wrapper(ex)) {
    nx_sandbox_free_value(sb, obj);
    fail_with(f, NX_E_COMPILATION_ERROR,
              "Handler code must be the body of a function (it closed the wrapper)");
    return NX_EXCEPTION;
  }
  slot = nx_sandbox_slot_push(sb, 1);
  out = slot ? Q(JS_WriteObject)(&sb->inst, sb->ctx, slot, obj, JS_WRITE_OBJ_BYTECODE) : 0;
  if (out != 0 && nx_guest_read_u32(&sb->inst, slot, &n) == 0 &&
      (bytes = nx_guest_bytes(&sb->inst, out, n)) != NULL && (*bc = malloc(n ? n : 1)) != NULL) {
    memcpy(*bc, bytes, n);
    *bc_len = n;
  }
  if (out) Q(js_free)(&sb->inst, sb->ctx, out);
  nx_sandbox_slot_pop(sb, 1);
  if (*bc == NULL) {
    nx_sandbox_free_value(sb, obj);
    fail_with(f, NX_E_INTERNAL_ERROR, "could not serialise the compiled handler");
    return NX_EXCEPTION;
  }
  return eval_wrapper(ex, obj, NX_E_COMPILATION_ERROR, f);
}

/* The handler function for this execution. Source is compiled once per
 * runtime (and engine version): later executions read the cached bytecode
 * into their fresh sandbox. In compile mode *packed receives the
 * precompileHandler() buffer. */
static nx_jsval_t load_handler(nx_exec_t *ex, uint8_t **packed, size_t *packed_len,
                               nx_failure_t *f) {
  const nx_engine_env_t *env = ex->env;
  uint8_t key[32], *bc = NULL;
  size_t bc_len = 0;
  nx_blob_t *blob = NULL;
  nx_cache_where_t where = NX_CACHE_MISS;
  nx_jsval_t fn = NX_EXCEPTION;

  if (ex->mode == NX_MODE_BYTECODE) {
    const uint8_t *body;
    size_t body_len;
    const char *why = nx_compiler_unpack(env->engine, (const uint8_t *)ex->code, ex->code_len,
                                         &body, &body_len);
    if (why) {
      char msg[200];
      snprintf(msg, sizeof msg, "Invalid handler bytecode: %s", why);
      fail_with(f, NX_E_INVALID_HANDLER, msg);
      return NX_EXCEPTION;
    }
    ex->cache_hit = 1; /* nothing to compile */
    return read_bytecode(ex, body, body_len, f);
  }

  nx_compiler_key(env->engine, ex->code, ex->code_len, key);
  ex->cache_lookup = env->cache != NULL;
  if (env->cache) blob = nx_cache_get(env->cache, key, &where);
  if (blob) {
    fn = read_bytecode(ex, blob->data, blob->len, f);
    if (nx_jsval_tag(fn) != NX_TAG_EXCEPTION) {
      ex->cache_hit = 1;
      if (packed && nx_compiler_pack(env->engine, ex->code, ex->code_len, blob->data, blob->len,
                                     packed, packed_len) != 0)
        fail_with(f, NX_E_INTERNAL_ERROR, "host out of memory");
      nx_blob_release(blob);
      return fn;
    }
    /* Unreadable cached bytecode: compile afresh and replace it. */
    nx_blob_release(blob);
    failure_free(f);
  }
  fn = compile_source(ex, &bc, &bc_len, f);
  if (bc && env->cache && nx_jsval_tag(fn) != NX_TAG_EXCEPTION)
    nx_blob_release(nx_cache_put(env->cache, key, bc, bc_len));
  if (bc && packed && nx_jsval_tag(fn) != NX_TAG_EXCEPTION &&
      nx_compiler_pack(env->engine, ex->code, ex->code_len, bc, bc_len, packed, packed_len) != 0)
    fail_with(f, NX_E_INTERNAL_ERROR, "host out of memory");
  free(bc);
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

/* Calls a bootstrap function with argc arguments. */
static nx_jsval_t call_bootstrap(nx_sandbox_t *sb, nx_jsval_t fn, const nx_jsval_t *args,
                                 uint32_t argc) {
  uint32_t argv = nx_sandbox_slot_push(sb, argc);
  nx_jsval_t r;
  if (argv == 0) return NX_EXCEPTION;
  memcpy(sb->inst.w2c_memory.data + argv, args, (size_t)argc * 8);
  r = Q(JS_Call)(&sb->inst, sb->ctx, fn, NX_UNDEFINED, argc, argv);
  nx_sandbox_slot_pop(sb, argc);
  return r;
}

/* Seeds the guest's Math.random: splitmix64 over a per-thread state that
 * comes from the kernel once, so no syscall per execution. */
static void nx_random_seed(uint32_t out[4]) {
  static __thread uint64_t state;
  int i;
  if (state == 0 && getrandom(&state, sizeof state, 0) != sizeof state) state = nx_now_ns();
  for (i = 0; i < 2; i++) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    out[2 * i] = (uint32_t)z;
    out[2 * i + 1] = (uint32_t)(z >> 32);
  }
}

/* First segment: compile, decode the inputs, start the handler. */
static int start_handler(nx_exec_t *ex, nx_failure_t *f) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t a[8] = {NX_UNDEFINED, NX_UNDEFINED, NX_UNDEFINED, NX_UNDEFINED};
  uint32_t seed[4];
  uint64_t t = nx_now_ns();
  int rc = -1, i;

  a[0] = load_handler(ex, NULL, NULL, f);
  ex->compile_us = (nx_now_ns() - t) / 1000u;
  if (nx_jsval_tag(a[0]) == NX_TAG_EXCEPTION || f->code != NX_OK) {
    if (nx_jsval_tag(a[0]) != NX_TAG_EXCEPTION) nx_sandbox_free_value(sb, a[0]);
    a[0] = NX_UNDEFINED;
    goto done;
  }
  if (decode_field(ex, ex->args, "args", &a[1], f) != 0 ||
      decode_field(ex, ex->scope, "scope", &a[2], f) != 0)
    goto done;
  if (ex->registry && ex->registry->type == MSGPACK_OBJECT_MAP && ex->registry->via.map.size &&
      decode_field(ex, ex->registry, "extensionRegistry", &a[3], f) != 0)
    goto done;
  nx_random_seed(seed);
  for (i = 0; i < 4; i++) a[4 + i] = NX_INT((int32_t)seed[i]);
  ex->promise = call_bootstrap(sb, sb->run, a, 8);
  if (nx_jsval_tag(ex->promise) == NX_TAG_EXCEPTION) {
    ex->promise = NX_UNDEFINED;
    failure_from_exception(ex, NX_E_EXECUTION_ERROR, f);
    goto done;
  }
  rc = 0;
done:
  for (i = 0; i < 4; i++) nx_sandbox_free_value(sb, a[i]);
  return rc;
}

/* Resolves or rejects the guest promise of each answered call. */
static int settle_calls(nx_exec_t *ex, const nx_answer_t *answers, uint32_t n,
                        nx_failure_t *f) {
  nx_sandbox_t *sb = ex->sb;
  uint32_t i;
  for (i = 0; i < n; i++) {
    const nx_answer_t *an = &answers[i];
    nx_ext_call_t *c;
    msgpack_unpacked msg;
    nx_jsval_t a[3], r;
    nx_path_t path;
    char err[300];
    size_t off = 0;
    nx_mp_status_t st = NX_MP_UNCROSSABLE;

    if (an->call >= ex->ncalls || ex->calls[an->call].answered) continue;
    c = &ex->calls[an->call];
    c->answered = 1;
    ex->nanswered++;
    a[0] = NX_INT(an->call);
    a[1] = NX_BOOL(an->ok);
    a[2] = NX_UNDEFINED;
    snprintf(err, sizeof err, "the host's answer could not be read");
    msgpack_unpacked_init(&msg);
    if (msgpack_unpack_next(&msg, (const char *)an->bytes, an->len, &off) == MSGPACK_UNPACK_SUCCESS) {
      nx_path_set(&path, "result.value");
      st = nx_mp_decode(sb, &msg.data, &a[2], &path, err, sizeof err);
    }
    msgpack_unpacked_destroy(&msg);
    if (st == NX_MP_GUEST) {
      failure_from_exception(ex, NX_E_EXECUTION_ERROR, f);
      return -1;
    }
    if (st == NX_MP_UNCROSSABLE) { /* reject the call rather than lose it */
      uint32_t p = nx_sandbox_put(sb, err, strlen(err));
      a[1] = NX_BOOL(0);
      a[2] = p ? Q(JS_NewStringLen)(&sb->inst, sb->ctx, p, (uint32_t)strlen(err)) : NX_EXCEPTION;
      if (nx_jsval_tag(a[2]) == NX_TAG_EXCEPTION) {
        failure_from_exception(ex, NX_E_EXECUTION_ERROR, f);
        return -1;
      }
    }
    r = call_bootstrap(sb, sb->settle, a, 3);
    nx_sandbox_free_value(sb, a[2]);
    if (nx_jsval_tag(r) == NX_TAG_EXCEPTION) {
      failure_from_exception(ex, NX_E_EXECUTION_ERROR, f);
      return -1;
    }
    nx_sandbox_free_value(sb, r);
  }
  return 0;
}

/* The part of a segment that runs guest code. Kept out of nx_engine_run so
 * no local lives across its setjmp. */
static nx_status_t run_guarded(nx_exec_t *ex, int first, const nx_answer_t *answers,
                               uint32_t n, nx_failure_t *f, msgpack_packer *rpk,
                               msgpack_sbuffer *mutations) {
  nx_sandbox_t *sb = ex->sb;
  nx_status_t status = NX_STATUS_ERROR;
  nx_jsval_t value;

  if (ex->mode == NX_MODE_COMPILE) { /* precompileHandler(): no run */
    uint8_t *packed = NULL;
    size_t packed_len = 0;
    uint64_t t = nx_now_ns();
    value = load_handler(ex, &packed, &packed_len, f);
    ex->compile_us = (nx_now_ns() - t) / 1000u;
    if (nx_jsval_tag(value) != NX_TAG_EXCEPTION) nx_sandbox_free_value(sb, value);
    if (packed && f->code == NX_OK) {
      msgpack_packer mpk;
      msgpack_packer_init(&mpk, mutations, msgpack_sbuffer_write);
      msgpack_pack_bin_with_body(rpk, packed, packed_len);
      msgpack_pack_array(&mpk, 0);
      status = NX_STATUS_SUCCESS;
    }
    free(packed);
    goto leave;
  }
  if (first ? start_handler(ex, f) != 0 : settle_calls(ex, answers, n, f) != 0)
    goto leave;
  if (drain_jobs(ex) != 0) {
    failure_from_exception(ex, NX_E_EXECUTION_ERROR, f);
    goto leave;
  }

  switch ((int32_t)Q(JS_PromiseState)(&sb->inst, sb->ctx, ex->promise)) {
    case 1: { /* fulfilled */
      nx_mp_encoder_t *enc = malloc(sizeof *enc);
      nx_mp_status_t st;
      if (enc == NULL) {
        fail_with(f, NX_E_INTERNAL_ERROR, "host out of memory");
        break;
      }
      value = Q(JS_PromiseResult)(&sb->inst, sb->ctx, ex->promise);
      nx_mp_encoder_init(enc, sb, rpk, "returnValue");
      st = nx_mp_encode(enc, value);
      nx_sandbox_free_value(sb, value);
      if (st == NX_MP_UNCROSSABLE) fail_with(f, NX_E_EXECUTION_ERROR, enc->err);
      else if (st == NX_MP_GUEST) failure_from_exception(ex, NX_E_EXECUTION_ERROR, f);
      free(enc);
      if (st == NX_MP_OK && pack_mutations(ex, mutations, f, 0) == 0) status = NX_STATUS_SUCCESS;
      break;
    }
    case 2: /* rejected */
      value = Q(JS_PromiseResult)(&sb->inst, sb->ctx, ex->promise);
      failure_from_value(ex, value, NX_E_EXECUTION_ERROR, f);
      nx_sandbox_free_value(sb, value);
      break;
    case 0:
      if (sb->interrupted) failure_from_value(ex, NX_UNDEFINED, NX_E_TIMEOUT, f);
      else if (ex->nanswered < ex->ncalls) {
        if (pack_mutations(ex, mutations, f, 1) == 0) status = NX_STATUS_SUSPENDED;
      } else
        fail_with(f, NX_E_EXECUTION_ERROR,
                  "Handler never settled: it awaited a promise that nothing can resolve");
      break;
    default:
      fail_with(f, NX_E_INTERNAL_ERROR, "run() did not return a promise");
  }

leave:
  if (sb->interrupted) sb->broken = 1;
  return status;
}

static int parse_context(nx_exec_t *ex, nx_failure_t *f) {
  size_t off = 0;
  /* 32: msgpack-c's own parse-stack depth. */
  if (nx_mp_validate(ex->context, ex->context_len, 32) != 0 ||
      msgpack_unpack_next(&ex->ctx_msg, (const char *)ex->context, ex->context_len, &off) !=
          MSGPACK_UNPACK_SUCCESS ||
      off != ex->context_len || ex->ctx_msg.data.type != MSGPACK_OBJECT_MAP) {
    fail_with(f, NX_E_INTERNAL_ERROR,
              "context is not a MessagePack map (nested deeper than 32 levels?)");
    return -1;
  }
  ex->state = map_get(&ex->ctx_msg.data, "stateSnapshot");
  ex->args = map_get(&ex->ctx_msg.data, "args");
  ex->scope = map_get(&ex->ctx_msg.data, "scope");
  ex->registry = map_get(&ex->ctx_msg.data, "extensionRegistry");
  if (nx_caps_parse(&ex->caps, map_get(&ex->ctx_msg.data, "capabilities")) != 0) {
    fail_with(f, NX_E_INTERNAL_ERROR, "host out of memory");
    return -1;
  }
  return 0;
}

nx_exec_t *nx_exec_new(nx_sandbox_t *sb, const nx_engine_env_t *env, nx_exec_mode_t mode,
                       char *code, size_t code_len, uint8_t *context, size_t context_len,
                       uint32_t timeout_ms) {
  const nx_config_t *cfg = env->cfg;
  nx_exec_t *ex = calloc(1, sizeof *ex);
  if (ex == NULL) {
    free(code);
    free(context);
    return NULL;
  }
  ex->sb = sb;
  ex->cfg = cfg;
  ex->env = env;
  ex->mode = mode;
  ex->code = code;
  ex->code_len = code_len;
  ex->context = context;
  ex->context_len = context_len;
  ex->promise = NX_UNDEFINED;
  ex->timeout_ns = (uint64_t)(timeout_ms ? timeout_ms : cfg->default_timeout_ms) * 1000000u;
  ex->out_limit = cfg->memory_limit;
  out_list_init(&ex->events);
  out_list_init(&ex->views);
  out_list_init(&ex->logs);
  msgpack_unpacked_init(&ex->ctx_msg);
  return ex;
}

/* Each result reports what happened since the previous one. */
static void segment_begin(nx_exec_t *ex) {
  uint32_t i;
  out_list_clear(&ex->events);
  out_list_clear(&ex->views);
  out_list_clear(&ex->logs);
  ex->out_bytes = 0;
  ex->logs_truncated = 0;
  memset(ex->hostcalls, 0, sizeof ex->hostcalls);
  for (i = 0; i < ex->next_counts; i++) ex->ext_counts[i].count = 0;
  ex->start_ns = nx_now_ns();
  ex->interrupts0 = ex->sb->interrupts;
}

/* A syntax error at the very end of the source is found in the wrapper's
 * closing line: report it just past the handler's last character. */
static void clamp_location(const nx_exec_t *ex, nx_failure_t *f) {
  uint32_t lines = 1, col = 1;
  size_t i;
  if (ex->mode == NX_MODE_BYTECODE || f->line == 0 || ex->code == NULL) return;
  for (i = 0; i < ex->code_len; i++) {
    if (ex->code[i] == '\n') {
      lines++;
      col = 1;
    } else {
      col++;
    }
  }
  if (f->line > lines) {
    f->line = lines;
    f->column = col;
  }
}

int nx_engine_run(nx_exec_t *ex, const nx_answer_t *answers, uint32_t nanswers,
                  char **out, size_t *out_len, nx_exec_outcome_t *outcome) {
  nx_sandbox_t *sb = ex->sb;
  nx_failure_t f;
  nx_wasm_guard_t guard;
  msgpack_sbuffer retval, mutations;
  msgpack_packer rpk;
  volatile nx_status_t status = NX_STATUS_ERROR;
  uint64_t seg_ns, left;
  int first = !ex->started, trap, rc;

  memset(&f, 0, sizeof f);
  msgpack_sbuffer_init(&retval);
  msgpack_sbuffer_init(&mutations);
  msgpack_packer_init(&rpk, &retval, msgpack_sbuffer_write);
  segment_begin(ex);
  ex->started = 1;
  if (first && ex->mode != NX_MODE_COMPILE && parse_context(ex, &f) != 0) goto finish;

  sb->exec = ex;
  sb->interrupted = 0;
  sb->slots_top = 0;
  /* The timeout counts run time only, not time spent suspended. */
  left = ex->timeout_ns > ex->run_ns ? ex->timeout_ns - ex->run_ns : 0;
  sb->deadline_ns = ex->start_ns + (left ? left : 1);

  trap = NX_WASM_TRY(&guard);
  if (trap != 0) {
    /* The guest was interrupted mid-operation: never run it again before
     * the reset to its snapshot, which the execution's end brings. */
    sb->broken = 1;
    status = NX_STATUS_ERROR;
    if (__atomic_load_n(&sb->killed, __ATOMIC_RELAXED)) {
      char msg[120];
      snprintf(msg, sizeof msg, "Execution timed out after %u ms (stopped inside the engine)",
               (unsigned)(ex->timeout_ns / 1000000u));
      fail_with(&f, NX_E_TIMEOUT, msg);
    } else if (trap == WASM_RT_TRAP_EXHAUSTION)
      fail_with(&f, NX_E_EXECUTION_ERROR, "RangeError: Maximum call stack size exceeded");
    else {
      char msg[96];
      snprintf(msg, sizeof msg, "Sandbox trapped (%s); it was reset", nx_wasm_trap_name(trap));
      fail_with(&f, NX_E_INTERNAL_ERROR, msg);
    }
    goto finish;
  }
  status = run_guarded(ex, first, answers, nanswers, &f, &rpk, &mutations);
  nx_wasm_leave(&guard);

finish:
  if (f.code != NX_OK) status = NX_STATUS_ERROR;
  clamp_location(ex, &f);
  seg_ns = nx_now_ns() - ex->start_ns;
  ex->run_ns += seg_ns;
  rc = finish_result(ex, &f, status, &retval, &mutations, seg_ns / 1000u,
                     first ? ex->compile_us : 0, out, out_len);
  if (outcome) {
    outcome->status = status;
    outcome->code = status == NX_STATUS_ERROR ? f.code : NX_OK;
    outcome->duration_us = seg_ns / 1000u;
    outcome->compile_us = first ? ex->compile_us : 0;
    outcome->cache = first && ex->cache_lookup ? ex->cache_hit : -1;
  }
  sb->exec = NULL;
  sb->deadline_ns = 0;
  failure_free(&f);
  msgpack_sbuffer_destroy(&retval);
  msgpack_sbuffer_destroy(&mutations);
  return rc;
}

void nx_exec_free(nx_exec_t *ex) {
  uint32_t i;
  if (ex == NULL) return;
  /* Guest references are not released one by one: the sandbox is reset to
   * its snapshot (or destroyed), which drops the guest's whole heap. */
  for (i = 0; i < ex->nslots; i++) {
    if (ex->slots[i].owned_key) free((char *)ex->slots[i].key);
    free(ex->slots[i].base);
  }
  free(ex->slots);
  free(ex->index);
  for (i = 0; i < ex->ncalls; i++) {
    free(ex->calls[i].ext);
    free(ex->calls[i].method);
    free(ex->calls[i].args);
  }
  free(ex->calls);
  for (i = 0; i < ex->next_counts; i++) free(ex->ext_counts[i].name);
  free(ex->ext_counts);
  nx_caps_free(&ex->caps);
  msgpack_sbuffer_destroy(&ex->events.buf);
  msgpack_sbuffer_destroy(&ex->views.buf);
  msgpack_sbuffer_destroy(&ex->logs.buf);
  msgpack_unpacked_destroy(&ex->ctx_msg);
  free(ex->code);
  free(ex->context);
  free(ex);
}

/* Host functions behind the handler globals ($state, $emit, $view, $log,
 * $ext). The bootstrap does only the JavaScript-shaped work (Proxy traps,
 * argument objects, plain copies); every decision that grants or records
 * something is made here, in the host.
 *
 * Two rules hold in every function below. No guest code runs while one of
 * them is in progress: values are read by the strict encoder (mpack.c),
 * which never calls a getter or a trap, so no pointer into the execution's
 * tables can go stale under us, and a nested call (from an
 * Error.prepareStackTrace hook, say) is refused. And every host byte comes
 * from the execution's nx_mem_t and is charged to its result budget before
 * it is written. */
#include "hostcalls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "engine.h"
#include "mpack.h"

const char *const nx_host_names[] = {
    "stateGet", "stateSet", "stateDelete", "stateHas", "stateKeys",
    "emit",     "view",     "log",         "extCall",  "kind",  NULL,
};

enum { H_STATE_GET, H_STATE_SET, H_STATE_DELETE, H_STATE_HAS, H_STATE_KEYS,
       H_EMIT, H_VIEW, H_LOG, H_EXT_CALL, H_KIND, H__COUNT };

/* What kind() tells the bootstrap's copy() (bootstrap.js). */
enum { KIND_PLAIN = 0, KIND_OPAQUE = 1, KIND_ERROR = 2 };

#define KEY_STACK 128

/* ---- errors thrown into the guest -------------------------------------- */

void nx_host_throw(nx_sandbox_t *sb, nx_error_code_t code, int type_error,
                   const char *message) {
  nx_wasm_instance_t *in = &sb->inst;
  nx_exec_t *ex = sb->exec;
  nx_jsval_t args[3], err = NX_EXCEPTION;
  uint32_t argv = nx_sandbox_slot_push(sb, 3), i;

  args[0] = NX_BOOL(type_error);
  args[1] = NX_UNDEFINED;
  args[2] = NX_UNDEFINED;
  if (argv != 0) {
    uint32_t p = nx_sandbox_put(sb, message, strlen(message));
    args[1] = p ? Q(JS_NewStringLen)(in, sb->ctx, p, (uint32_t)strlen(message)) : NX_EXCEPTION;
    if (code != NX_E_EXECUTION_ERROR) {
      const char *name = nx_error_name(code);
      p = nx_sandbox_put(sb, name, strlen(name));
      args[2] = p ? Q(JS_NewStringLen)(in, sb->ctx, p, (uint32_t)strlen(name)) : NX_EXCEPTION;
    }
    if (nx_jsval_tag(args[1]) != NX_TAG_EXCEPTION && nx_jsval_tag(args[2]) != NX_TAG_EXCEPTION) {
      memcpy(in->w2c_memory.data + argv, args, sizeof args);
      err = Q(JS_Call)(in, sb->ctx, sb->mkerr, NX_UNDEFINED, 3, argv);
    }
    for (i = 1; i < 3; i++) nx_sandbox_free_value(sb, args[i]);
    nx_sandbox_slot_pop(sb, 3);
  }
  if (nx_jsval_tag(err) == NX_TAG_EXCEPTION) return; /* OOM: that is pending */
  if (ex && code != NX_E_EXECUTION_ERROR && ex->nhost_errors < NX_HOST_ERRORS) {
    ex->host_errors[ex->nhost_errors] = nx_sandbox_dup_value(sb, err);
    ex->host_codes[ex->nhost_errors++] = code;
  }
  if (ex && ex->fatal != NX_OK) Q(JS_SetUncatchableError)(in, sb->ctx, err);
  Q(JS_Throw)(in, sb->ctx, err);
}

void nx_host_fatal(nx_sandbox_t *sb, nx_error_code_t code, const char *message) {
  nx_exec_t *ex = sb->exec;
  if (ex->fatal == NX_OK) {
    ex->fatal = code;
    ex->fatal_msg = nx_mem_strndup(&ex->mem, message, strlen(message));
  }
  /* The handler cannot catch its way past this: the error is uncatchable
   * and every later interrupt check stops the guest, whatever it does. */
  sb->stop = 1;
  nx_host_throw(sb, ex->fatal, 0, ex->fatal_msg ? ex->fatal_msg : message);
}

void nx_host_result_limit(nx_sandbox_t *sb, const char *path) {
  char msg[400];
  snprintf(msg, sizeof msg,
           "Result too large: config.maxResultBytes (%llu bytes) was reached while encoding %s",
           (unsigned long long)sb->exec->cfg->max_result_bytes, path);
  nx_host_fatal(sb, NX_E_RESOURCE_LIMIT, msg);
}

static void throw_missing(nx_sandbox_t *sb, nx_cap_family_t family,
                          const char *name, size_t len) {
  char msg[400];
  snprintf(msg, sizeof msg, "Permission denied: missing capability %s%.*s",
           nx_caps_prefix(family), (int)(len > 200 ? 200 : len), name);
  nx_host_throw(sb, NX_E_PERMISSION_DENIED, 0, msg);
}

/* ---- arguments ---------------------------------------------------------- */

static int read_args(nx_sandbox_t *sb, uint32_t argc, uint32_t argv,
                     nx_jsval_t *out, uint32_t want) {
  uint32_t i;
  for (i = 0; i < want; i++) {
    uint32_t box;
    out[i] = NX_UNDEFINED;
    if (i >= argc) continue;
    if (nx_guest_read_u32(&sb->inst, argv + i * 4, &box) != 0 ||
        nx_guest_read_u64(&sb->inst, box, &out[i]) != 0)
      return -1;
  }
  return 0;
}

/* Copies a guest string primitive into host memory: `buf` when it fits,
 * else the execution's memory. NULL when v is not a string (nothing is
 * converted: that could run guest code) or memory ran out. */
static char *host_string(nx_sandbox_t *sb, nx_jsval_t v, char *buf, size_t cap,
                         size_t *len) {
  uint32_t slot, ptr, n = 0;
  uint8_t *bytes;
  char *dst = NULL;
  int tag = nx_jsval_tag(v);

  if (tag != NX_TAG_STRING && tag != NX_TAG_STRING_ROPE) return NULL;
  slot = nx_sandbox_slot_push(sb, 1);
  if (slot == 0) return NULL;
  ptr = Q(JS_ToCStringLen2)(&sb->inst, sb->ctx, slot, v, 0);
  if (ptr != 0 && nx_guest_read_u32(&sb->inst, slot, &n) == 0 &&
      (bytes = nx_guest_bytes(&sb->inst, ptr, n)) != NULL) {
    dst = n < cap ? buf : nx_mem_alloc(&sb->exec->seg, (size_t)n + 1);
    if (dst) {
      memcpy(dst, bytes, n);
      dst[n] = 0;
      *len = n;
    }
  }
  if (ptr) Q(JS_FreeCString)(&sb->inst, sb->ctx, ptr);
  nx_sandbox_slot_pop(sb, 1);
  return dst;
}

static void free_string(nx_sandbox_t *sb, char *s, const char *stack_buf) {
  if (s != stack_buf) nx_mem_free(&sb->exec->seg, s);
}

/* ---- the $state table --------------------------------------------------- */

static uint32_t hash_key(const char *k, size_t len) {
  uint32_t h = 2166136261u;
  size_t i;
  for (i = 0; i < len; i++) h = (h ^ (uint8_t)k[i]) * 16777619u;
  return h;
}

static int index_rebuild(nx_exec_t *ex, uint32_t cap) {
  uint32_t *index = nx_mem_calloc(&ex->mem, cap, sizeof *index), i;
  if (index == NULL) return -1;
  for (i = 0; i < ex->nslots; i++) {
    uint32_t at = hash_key(ex->slots[i].key, ex->slots[i].key_len) & (cap - 1);
    while (index[at]) at = (at + 1) & (cap - 1);
    index[at] = i + 1;
  }
  nx_mem_free(&ex->mem, ex->index);
  ex->index = index;
  ex->index_cap = cap;
  return 0;
}

static void slot_init(nx_exec_t *ex, nx_state_slot_t *s) {
  memset(s, 0, sizeof *s);
  s->value = NX_UNDEFINED;
  s->change = -1;
  nx_buf_init(&s->snap, &ex->mem, NULL);
}

static int state_prepare(nx_exec_t *ex) {
  uint32_t n, i, cap = 16;
  if (ex->index) return 0;
  n = ex->state && ex->state->type == MSGPACK_OBJECT_MAP ? ex->state->via.map.size : 0;
  ex->slots_cap = n + 8;
  ex->slots = nx_mem_alloc(&ex->mem, ex->slots_cap * sizeof *ex->slots);
  if (ex->slots == NULL) return -1;
  for (i = 0; i < n; i++) {
    const msgpack_object_kv *kv = &ex->state->via.map.ptr[i];
    nx_state_slot_t *s;
    if (kv->key.type != MSGPACK_OBJECT_STR) continue; /* lib sends string keys */
    s = &ex->slots[ex->nslots++];
    slot_init(ex, s);
    s->key = kv->key.via.str.ptr;
    s->key_len = kv->key.via.str.size;
    s->orig = &kv->val;
  }
  while (cap < 2 * ex->slots_cap) cap *= 2;
  return index_rebuild(ex, cap);
}

static nx_state_slot_t *state_find(nx_exec_t *ex, const char *key, size_t len) {
  uint32_t at = hash_key(key, len) & (ex->index_cap - 1);
  while (ex->index[at]) {
    nx_state_slot_t *s = &ex->slots[ex->index[at] - 1];
    if (s->key_len == len && memcmp(s->key, key, len) == 0) return s;
    at = (at + 1) & (ex->index_cap - 1);
  }
  return NULL;
}

static nx_state_slot_t *state_add(nx_exec_t *ex, const char *key, size_t len) {
  nx_state_slot_t *s;
  char *copy;
  if (ex->nslots == ex->slots_cap) {
    uint32_t cap = ex->slots_cap * 2;
    nx_state_slot_t *n = nx_mem_realloc(&ex->mem, ex->slots, cap * sizeof *n);
    if (n == NULL) return NULL;
    ex->slots = n;
    ex->slots_cap = cap;
  }
  if (2 * (ex->nslots + 1) > ex->index_cap && index_rebuild(ex, ex->index_cap * 2) != 0)
    return NULL;
  copy = nx_mem_strndup(&ex->mem, key, len);
  if (copy == NULL) return NULL;
  s = &ex->slots[ex->nslots++];
  slot_init(ex, s);
  s->key = copy;
  s->key_len = (uint32_t)len;
  {
    uint32_t at = hash_key(copy, len) & (ex->index_cap - 1);
    while (ex->index[at]) at = (at + 1) & (ex->index_cap - 1);
    ex->index[at] = ex->nslots;
  }
  return s;
}

static int slot_exists(const nx_state_slot_t *s) {
  return s && !s->deleted && (s->loaded || s->orig);
}

static void slot_mark_changed(nx_exec_t *ex, nx_state_slot_t *s) {
  if (s->change < 0) s->change = (int32_t)ex->nchanges++;
  s->version++;
}

/* Returns a new reference to the slot's current value. Decoding creates
 * fresh guest objects only; it runs no guest code. */
static int slot_load(nx_sandbox_t *sb, nx_state_slot_t *s, nx_jsval_t *out) {
  if (!slot_exists(s)) {
    *out = NX_UNDEFINED;
    return 0;
  }
  if (!s->loaded) {
    nx_path_t path;
    char err[300];
    nx_mp_status_t st;
    nx_path_set(&path, "stateSnapshot");
    nx_path_key(&path, s->key, s->key_len);
    st = nx_mp_decode(sb, s->orig, &s->value, &path, err, sizeof err);
    if (st == NX_MP_UNCROSSABLE) nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, err);
    if (st != NX_MP_OK) return -1;
    s->loaded = 1;
  }
  *out = nx_sandbox_dup_value(sb, s->value);
  return 0;
}

/* ---- output lists -------------------------------------------------------- */

/* Encodes `value` into `out` for a host function. 1 when done, 0 when the
 * value needs the bootstrap's copy() first (and `copied` says it has not
 * had one), -1 after throwing in the guest. On failure `out` is back at
 * `mark`, so a list never holds half an entry. */
static int encode_for_call(nx_sandbox_t *sb, nx_buf_t *out, size_t mark, nx_jsval_t value,
                           const char *root, int copied) {
  nx_exec_t *ex = sb->exec;
  nx_mp_encoder_t *enc = nx_mem_alloc(&ex->seg, sizeof *enc);
  nx_mp_status_t st;
  int rc = -1;

  if (enc == NULL) {
    nx_buf_truncate(out, mark);
    nx_host_fatal(sb, NX_E_INTERNAL_ERROR, "host out of memory");
    return -1;
  }
  nx_mp_encoder_init(enc, sb, out, root);
  st = nx_mp_encode(enc, value);
  if (st != NX_MP_OK) nx_buf_truncate(out, mark);
  switch (st) {
    case NX_MP_OK: rc = 1; break;
    case NX_MP_IMPURE:
      if (!copied) {
        rc = 0;
        break;
      }
      snprintf(enc->err, sizeof enc->err, "%s still needs guest code to read after copying", root);
      nx_host_fatal(sb, NX_E_INTERNAL_ERROR, enc->err);
      break;
    case NX_MP_UNCROSSABLE: nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, enc->err); break;
    case NX_MP_LIMIT: nx_host_result_limit(sb, enc->err); break;
    case NX_MP_NOMEM: nx_host_fatal(sb, NX_E_INTERNAL_ERROR, "host out of memory"); break;
    case NX_MP_GUEST: break; /* the guest's exception is pending */
  }
  nx_mem_free(&ex->seg, enc);
  return rc;
}

static msgpack_packer list_packer(nx_out_list_t *list) { return nx_buf_packer(&list->buf); }

/* A finished entry: counts it, or undoes it if the budget refused a byte. */
static int list_commit(nx_sandbox_t *sb, nx_out_list_t *list, size_t mark, const char *root) {
  if (list->buf.refused) {
    int nomem = list->buf.refused == NX_BUF_NOMEM;
    nx_buf_truncate(&list->buf, mark);
    if (nomem) nx_host_fatal(sb, NX_E_INTERNAL_ERROR, "host out of memory");
    else nx_host_result_limit(sb, root);
    return -1;
  }
  list->count++;
  return 0;
}

void nx_host_log(nx_sandbox_t *sb, const char *level, const char *msg, size_t len) {
  nx_exec_t *ex = sb->exec;
  msgpack_packer pk;
  char root[32];
  size_t mark;
  if (ex == NULL) return;
  pk = list_packer(&ex->logs);
  mark = ex->logs.buf.size;
  snprintf(root, sizeof root, "logs[%u]", ex->logs.count);
  msgpack_pack_map(&pk, 2);
  msgpack_pack_str_with_body(&pk, "level", 5);
  msgpack_pack_str_with_body(&pk, level, strlen(level));
  msgpack_pack_str_with_body(&pk, "message", 7);
  msgpack_pack_str_with_body(&pk, msg, len);
  list_commit(sb, &ex->logs, mark, root);
}

void nx_host_console(nx_sandbox_t *sb, int is_stderr, const char *bytes, size_t len) {
  while (len && (bytes[len - 1] == '\n')) len--;
  if (len) nx_host_log(sb, is_stderr ? "error" : "info", bytes, len);
}

/* ---- dispatch ------------------------------------------------------------ */

static int name_is(const uint8_t *name, uint32_t len, const char *want) {
  return strlen(want) == len && memcmp(name, want, len) == 0;
}

static uint32_t state_keys(nx_sandbox_t *sb) {
  nx_exec_t *ex = sb->exec;
  uint32_t i, n = 0;
  nx_jsval_t arr = Q(JS_NewArray)(&sb->inst, sb->ctx);
  if (nx_jsval_tag(arr) == NX_TAG_EXCEPTION) return 0;
  for (i = 0; i < ex->nslots; i++) {
    nx_state_slot_t *k = &ex->slots[i];
    uint32_t p;
    nx_jsval_t str;
    if (!slot_exists(k) || !nx_caps_allows(&ex->caps, NX_CAP_STATE_READ, k->key, k->key_len))
      continue;
    p = nx_sandbox_put(sb, k->key, k->key_len);
    str = p ? Q(JS_NewStringLen)(&sb->inst, sb->ctx, p, k->key_len) : NX_EXCEPTION;
    if (nx_jsval_tag(str) == NX_TAG_EXCEPTION ||
        (int32_t)Q(JS_DefinePropertyValueUint32)(&sb->inst, sb->ctx, arr, n++, str,
                                                 NX_PROP_C_W_E) < 0) {
      nx_sandbox_free_value(sb, arr);
      return 0;
    }
  }
  return nx_sandbox_box(sb, arr);
}

static uint32_t call_state(nx_sandbox_t *sb, int fn, nx_jsval_t *a) {
  nx_exec_t *ex = sb->exec;
  char kbuf[KEY_STACK], *key = NULL;
  size_t klen = 0;
  nx_state_slot_t *s;
  nx_jsval_t result = NX_UNDEFINED;
  uint32_t box = 0;
  nx_cap_family_t family = (fn == H_STATE_SET || fn == H_STATE_DELETE)
                               ? NX_CAP_STATE_WRITE : NX_CAP_STATE_READ;

  if (state_prepare(ex) != 0) goto oom;
  if (fn == H_STATE_KEYS) return state_keys(sb);
  key = host_string(sb, a[0], kbuf, sizeof kbuf, &klen);
  if (key == NULL) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, "$state keys must be strings");
    return 0;
  }
  if (!nx_caps_allows(&ex->caps, family, key, klen)) {
    throw_missing(sb, family, key, klen);
    goto done;
  }
  s = state_find(ex, key, klen);
  ex->hostcalls[family == NX_CAP_STATE_WRITE ? NX_HOSTCALL_STATE_SET : NX_HOSTCALL_STATE_GET]++;
  switch (fn) {
    case H_STATE_GET:
      if (s && slot_load(sb, s, &result) != 0) goto done;
      if (s) s->read = 1;
      break;
    case H_STATE_HAS:
      result = NX_BOOL(slot_exists(s));
      break;
    case H_STATE_SET:
      if (s == NULL && (s = state_add(ex, key, klen)) == NULL) goto oom;
      if (s->loaded) nx_sandbox_free_value(sb, s->value);
      s->value = nx_sandbox_dup_value(sb, a[1]);
      s->loaded = 1;
      s->deleted = 0;
      slot_mark_changed(ex, s);
      break;
    case H_STATE_DELETE:
      if (!slot_exists(s)) break;
      if (s->loaded) nx_sandbox_free_value(sb, s->value);
      s->value = NX_UNDEFINED;
      s->loaded = 0;
      s->deleted = 1;
      slot_mark_changed(ex, s);
      break;
  }
  box = nx_sandbox_box(sb, result);
  if (box == 0) Q(JS_ThrowOutOfMemory)(&sb->inst, sb->ctx);
  goto done;
oom:
  nx_host_fatal(sb, NX_E_INTERNAL_ERROR, "host out of memory");
done:
  free_string(sb, key, kbuf);
  return box;
}

/* emit(name, payload, copied) -> true, or false: copy the payload first. */
static uint32_t call_emit(nx_sandbox_t *sb, nx_jsval_t *a) {
  nx_exec_t *ex = sb->exec;
  nx_out_list_t *list = &ex->events;
  msgpack_packer pk = list_packer(list);
  char nbuf[KEY_STACK], *name, root[48];
  size_t len = 0, mark = list->buf.size;
  uint32_t box = 0;
  int r;

  name = host_string(sb, a[0], nbuf, sizeof nbuf, &len);
  if (name == NULL) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, "$emit(name, payload): name must be a string");
    return 0;
  }
  if (!nx_caps_allows(&ex->caps, NX_CAP_EVENTS_EMIT, name, len)) {
    throw_missing(sb, NX_CAP_EVENTS_EMIT, name, len);
    goto done;
  }
  snprintf(root, sizeof root, "events[%u].payload", list->count);
  msgpack_pack_map(&pk, 2);
  msgpack_pack_str_with_body(&pk, "name", 4);
  msgpack_pack_str_with_body(&pk, name, len);
  msgpack_pack_str_with_body(&pk, "payload", 7);
  r = encode_for_call(sb, &list->buf, mark, a[1], root, nx_jsval_int(a[2]));
  if (r < 0 || (r == 1 && list_commit(sb, list, mark, root) != 0)) goto done;
  if (r == 1) ex->hostcalls[NX_HOSTCALL_EMIT]++;
  box = nx_sandbox_box(sb, NX_BOOL(r));
done:
  free_string(sb, name, nbuf);
  return box;
}

/* view(type, componentId, args, copied) -> true, or false: copy args first. */
static uint32_t call_view(nx_sandbox_t *sb, nx_jsval_t *a) {
  nx_exec_t *ex = sb->exec;
  nx_out_list_t *list = &ex->views;
  msgpack_packer pk = list_packer(list);
  char tbuf[32], ibuf[KEY_STACK], *type, *id, root[48];
  size_t tlen = 0, ilen = 0, mark = list->buf.size;
  uint32_t box = 0;
  int r;

  type = host_string(sb, a[0], tbuf, sizeof tbuf, &tlen);
  id = host_string(sb, a[1], ibuf, sizeof ibuf, &ilen);
  if (type == NULL || id == NULL) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, "$view: componentId must be a string");
    goto done;
  }
  if (!nx_caps_allows(&ex->caps, NX_CAP_VIEW_UPDATE, id, ilen)) {
    throw_missing(sb, NX_CAP_VIEW_UPDATE, id, ilen);
    goto done;
  }
  snprintf(root, sizeof root, "viewCommands[%u].args", list->count);
  msgpack_pack_map(&pk, 3);
  msgpack_pack_str_with_body(&pk, "type", 4);
  msgpack_pack_str_with_body(&pk, type, tlen);
  msgpack_pack_str_with_body(&pk, "componentId", 11);
  msgpack_pack_str_with_body(&pk, id, ilen);
  msgpack_pack_str_with_body(&pk, "args", 4);
  r = encode_for_call(sb, &list->buf, mark, a[2], root, nx_jsval_int(a[3]));
  if (r < 0 || (r == 1 && list_commit(sb, list, mark, root) != 0)) goto done;
  if (r == 1) ex->hostcalls[NX_HOSTCALL_VIEW]++;
  box = nx_sandbox_box(sb, NX_BOOL(r));
done:
  if (type) free_string(sb, type, tbuf);
  if (id) free_string(sb, id, ibuf);
  return box;
}

static uint32_t call_log(nx_sandbox_t *sb, nx_jsval_t *a) {
  char lbuf[16], *level, *msg, mbuf[256];
  size_t llen = 0, mlen = 0;
  uint32_t box = 0;

  sb->exec->hostcalls[NX_HOSTCALL_LOG]++;
  level = host_string(sb, a[0], lbuf, sizeof lbuf, &llen);
  msg = host_string(sb, a[1], mbuf, sizeof mbuf, &mlen);
  if (level == NULL || msg == NULL) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, "$log: message must be a string");
    goto done;
  }
  nx_host_log(sb, level, msg, mlen);
  if (sb->exec->fatal == NX_OK) box = nx_sandbox_box(sb, NX_UNDEFINED);
done:
  if (level) free_string(sb, level, lbuf);
  if (msg) free_string(sb, msg, mbuf);
  return box;
}

/* kind(object) for the bootstrap's copy(): what the strict encoder reads
 * by itself (Dates, typed arrays, buffers) or refuses (Maps, Promises, ...)
 * stays as it is; Errors become { name, message }; the rest is copied
 * property by property. Pure checks, no guest code. */
static uint32_t call_kind(nx_sandbox_t *sb, nx_jsval_t *a) {
  nx_wasm_instance_t *in = &sb->inst;
  nx_jsval_t v = a[0];
  int kind = KIND_PLAIN;
  if (nx_jsval_tag(v) == NX_TAG_OBJECT && !Q(JS_IsProxy)(in, v)) {
    if (Q(JS_IsError)(in, v)) kind = KIND_ERROR;
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

/* ---- $ext ----------------------------------------------------------------- */

/* Is `method` listed for extension `name` in the context's registry? The
 * bootstrap only builds registered methods, but the host does not rely on
 * the guest for anything it grants. */
static int registry_has(const msgpack_object *reg, const char *name, size_t nlen,
                        const char *method, size_t mlen) {
  uint32_t i, j;
  if (reg == NULL || reg->type != MSGPACK_OBJECT_MAP) return 0;
  for (i = 0; i < reg->via.map.size; i++) {
    const msgpack_object_kv *kv = &reg->via.map.ptr[i];
    if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != nlen ||
        memcmp(kv->key.via.str.ptr, name, nlen) != 0 || kv->val.type != MSGPACK_OBJECT_ARRAY)
      continue;
    for (j = 0; j < kv->val.via.array.size; j++) {
      const msgpack_object *m = &kv->val.via.array.ptr[j];
      if (m->type == MSGPACK_OBJECT_STR && m->via.str.size == mlen &&
          memcmp(m->via.str.ptr, method, mlen) == 0)
        return 1;
    }
  }
  return 0;
}

/* Counts "ext.NAME.METHOD" for metrics.hostCalls. */
static int count_ext(nx_exec_t *ex, const char *name, size_t nlen, const char *method,
                     size_t mlen) {
  char label[300];
  nx_named_count_t *grown;
  uint32_t i;
  int n = snprintf(label, sizeof label, "ext.%.*s.%.*s", (int)(nlen > 120 ? 120 : nlen), name,
                   (int)(mlen > 120 ? 120 : mlen), method);
  for (i = 0; i < ex->next_counts; i++)
    if (strcmp(ex->ext_counts[i].name, label) == 0) {
      ex->ext_counts[i].count++;
      return 0;
    }
  grown = nx_mem_realloc(&ex->mem, ex->ext_counts, (ex->next_counts + 1) * sizeof *grown);
  if (grown == NULL) return -1;
  ex->ext_counts = grown;
  grown[ex->next_counts].name = nx_mem_strndup(&ex->mem, label, (size_t)n);
  if (grown[ex->next_counts].name == NULL) return -1;
  grown[ex->next_counts++].count = 1;
  return 0;
}

/* Bytes a pending call adds to each result that lists it, besides its
 * arguments: the map, the id and the names. */
#define CALL_OVERHEAD 96u

/* extCall(name, method, args, copied) -> call index, or -1: copy the
 * arguments first. Checks the capability, copies the arguments out
 * (MessagePack) and records a pending call. */
static uint32_t call_ext(nx_sandbox_t *sb, nx_jsval_t *a) {
  nx_exec_t *ex = sb->exec;
  char nbuf[KEY_STACK], mbuf[KEY_STACK], *name, *method, root[300];
  size_t nlen = 0, mlen = 0, got = 0;
  uint64_t entry, need;
  nx_buf_t args;
  nx_ext_call_t *c;
  uint32_t box = 0;
  int r;

  nx_buf_init(&args, &ex->mem, &ex->budget);
  name = host_string(sb, a[0], nbuf, sizeof nbuf, &nlen);
  method = host_string(sb, a[1], mbuf, sizeof mbuf, &mlen);
  if (name == NULL || method == NULL) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, "$ext: extension and method names must be strings");
    goto done;
  }
  if (ex->phase != NX_PHASE_RUN) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1,
                  "$ext: no extension call can start once the handler has finished");
    goto done;
  }
  if (!nx_caps_allows(&ex->caps, NX_CAP_EXT, name, nlen)) {
    throw_missing(sb, NX_CAP_EXT, name, nlen);
    goto done;
  }
  if (!registry_has(ex->registry, name, nlen, method, mlen)) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, "$ext: not a registered extension method");
    goto done;
  }
  snprintf(root, sizeof root, "$ext.%.*s.%.*s() arguments", (int)(nlen > 100 ? 100 : nlen),
           name, (int)(mlen > 100 ? 100 : mlen), method);
  /* The call is listed in every result until it is answered: charge its
   * whole entry now, so a suspended result always fits the budget. */
  if (CALL_OVERHEAD + nlen + mlen > ex->budget.limit - ex->budget.used) {
    nx_host_result_limit(sb, root);
    goto done;
  }
  r = encode_for_call(sb, &args, 0, a[2], root, nx_jsval_int(a[3]));
  if (r <= 0) {
    if (r == 0) box = nx_sandbox_box(sb, NX_INT(-1));
    goto done;
  }
  /* The entry, twice if this is the oldest pending call (`suspension`
   * repeats it); the arguments are already charged. */
  entry = CALL_OVERHEAD + nlen + mlen + args.size;
  need = ex->nanswered == ex->ncalls ? 2 * entry : entry;
  if (need - args.size > ex->budget.limit - ex->budget.used) {
    nx_host_result_limit(sb, root);
    goto done;
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
  while (got < sizeof c->id) { /* unguessable: 128 bits from the kernel */
    ssize_t n = getrandom(c->id + got, sizeof c->id - got, 0);
    if (n <= 0) goto oom;
    got += (size_t)n;
  }
  c->ext = nx_mem_strndup(&ex->mem, name, nlen);
  c->method = nx_mem_strndup(&ex->mem, method, mlen);
  if (c->ext == NULL || c->method == NULL) {
    nx_mem_free(&ex->mem, c->ext);
    nx_mem_free(&ex->mem, c->method);
    goto oom;
  }
  c->charge = entry;
  c->args = (uint8_t *)nx_buf_take(&args, &c->args_len); /* the call owns the bytes */
  ex->budget.used += need;
  box = nx_sandbox_box(sb, NX_INT(ex->ncalls));
  ex->ncalls++;
  if (box == 0) Q(JS_ThrowOutOfMemory)(&sb->inst, sb->ctx);
  goto done;
oom:
  nx_host_fatal(sb, NX_E_INTERNAL_ERROR, "host out of memory");
done:
  nx_buf_free(&args);
  if (name) free_string(sb, name, nbuf);
  if (method) free_string(sb, method, mbuf);
  return box;
}

/* ---- entry --------------------------------------------------------------- */

static uint32_t dispatch(nx_sandbox_t *sb, int fn, nx_jsval_t *a) {
  switch (fn) {
    case H_STATE_GET: case H_STATE_SET: case H_STATE_DELETE:
    case H_STATE_HAS: case H_STATE_KEYS:
      return call_state(sb, fn, a);
    case H_EMIT: return call_emit(sb, a);
    case H_VIEW: return call_view(sb, a);
    case H_LOG: return call_log(sb, a);
    case H_EXT_CALL: return call_ext(sb, a);
    case H_KIND: return call_kind(sb, a);
    default:
      nx_host_throw(sb, NX_E_INTERNAL_ERROR, 0, "unknown host function");
      return 0;
  }
}

uint32_t nx_host_call(nx_sandbox_t *sb, uint32_t name, uint32_t name_len,
                      uint32_t argc, uint32_t argv) {
  const uint8_t *n = nx_guest_bytes(&sb->inst, name, name_len);
  nx_exec_t *ex = sb->exec;
  nx_jsval_t a[4];
  uint32_t box;
  int fn;

  if (n == NULL || ex == NULL || read_args(sb, argc, argv, a, 4) != 0) {
    nx_host_throw(sb, NX_E_INTERNAL_ERROR, 0, "host call outside an execution");
    return 0;
  }
  for (fn = 0; fn < H__COUNT; fn++)
    if (name_is(n, name_len, nx_host_names[fn])) break;
  if (ex->fatal != NX_OK) { /* ending: nothing more is recorded */
    nx_host_throw(sb, ex->fatal, 0, ex->fatal_msg ? ex->fatal_msg : nx_error_name(ex->fatal));
    return 0;
  }
  if (ex->in_host) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1,
                  "Host functions cannot be called while the host is running one "
                  "($state, $emit, $view, $ext and $log are not re-entrant)");
    return 0;
  }
  if (ex->phase == NX_PHASE_CLOSED) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1,
                  "Host functions cannot be called once the handler has finished");
    return 0;
  }
  /* kind() is the bootstrap's own helper, not a handler's call. */
  if (fn != H_KIND && ++ex->host_calls > ex->cfg->max_host_calls) {
    char msg[160];
    snprintf(msg, sizeof msg,
             "Too many host calls: an execution may make config.maxHostCalls (%u)",
             ex->cfg->max_host_calls);
    nx_host_fatal(sb, NX_E_RESOURCE_LIMIT, msg);
    return 0;
  }
  ex->in_host = 1;
  sb->fault = NULL;
  box = dispatch(sb, fn, a);
  ex->in_host = 0;
  /* A helper that failed without a guest exception (scratch exhausted)
   * must not hand QuickJS an exception that is not there. */
  if (box == 0 && !Q(JS_HasException)(&sb->inst, sb->ctx))
    nx_host_fatal(sb, NX_E_INTERNAL_ERROR, sb->fault ? sb->fault : "host function failed");
  return box;
}

/* Host functions behind the handler globals ($state, $emit, $view, $log,
 * $ext). The bootstrap does only the
 * JavaScript-shaped work (Proxy traps, argument objects); every decision
 * that grants or records something is made here, in the host. */
#include "hostcalls.h"

#include <stdio.h>
#include <sys/random.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "mpack.h"

const char *const nx_host_names[] = {
    "stateGet", "stateSet", "stateDelete", "stateHas", "stateKeys",
    "emit",     "view",     "log",         "extCall",  NULL,
};

enum { H_STATE_GET, H_STATE_SET, H_STATE_DELETE, H_STATE_HAS, H_STATE_KEYS,
       H_EMIT, H_VIEW, H_LOG, H_EXT_CALL, H__COUNT };

/* Pending $ext calls one execution may have made in all: each costs host
 * memory until the host answers it. */
#define MAX_EXT_CALLS 10000

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
  if (ex && code != NX_E_EXECUTION_ERROR && ex->nhost_errors < 8) {
    ex->host_errors[ex->nhost_errors] = nx_sandbox_dup_value(sb, err);
    ex->host_codes[ex->nhost_errors++] = code;
  }
  Q(JS_Throw)(in, sb->ctx, err);
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

/* Copies a guest string into host memory: `buf` when it fits, else malloc
 * (*heap set). Returns NULL when v is not a string or memory ran out. */
static char *host_string(nx_sandbox_t *sb, nx_jsval_t v, char *buf, size_t cap,
                         size_t *len, char **heap) {
  uint32_t slot, ptr, n = 0;
  uint8_t *bytes;
  char *dst = NULL;
  int tag = nx_jsval_tag(v);

  *heap = NULL;
  if (tag != NX_TAG_STRING && tag != NX_TAG_STRING_ROPE) return NULL;
  slot = nx_sandbox_slot_push(sb, 1);
  if (slot == 0) return NULL;
  ptr = Q(JS_ToCStringLen2)(&sb->inst, sb->ctx, slot, v, 0);
  if (ptr != 0 && nx_guest_read_u32(&sb->inst, slot, &n) == 0 &&
      (bytes = nx_guest_bytes(&sb->inst, ptr, n)) != NULL) {
    dst = n < cap ? buf : (*heap = malloc((size_t)n + 1));
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

/* ---- the $state table --------------------------------------------------- */

static uint32_t hash_key(const char *k, size_t len) {
  uint32_t h = 2166136261u;
  size_t i;
  for (i = 0; i < len; i++) h = (h ^ (uint8_t)k[i]) * 16777619u;
  return h;
}

static int index_rebuild(nx_exec_t *ex, uint32_t cap) {
  uint32_t *index = calloc(cap, sizeof *index), i;
  if (index == NULL) return -1;
  for (i = 0; i < ex->nslots; i++) {
    uint32_t at = hash_key(ex->slots[i].key, ex->slots[i].key_len) & (cap - 1);
    while (index[at]) at = (at + 1) & (cap - 1);
    index[at] = i + 1;
  }
  free(ex->index);
  ex->index = index;
  ex->index_cap = cap;
  return 0;
}

static int state_prepare(nx_exec_t *ex) {
  uint32_t n, i, cap = 16;
  if (ex->index) return 0;
  n = ex->state && ex->state->type == MSGPACK_OBJECT_MAP ? ex->state->via.map.size : 0;
  ex->slots_cap = n + 8;
  ex->slots = calloc(ex->slots_cap, sizeof *ex->slots);
  if (ex->slots == NULL) return -1;
  for (i = 0; i < n; i++) {
    const msgpack_object_kv *kv = &ex->state->via.map.ptr[i];
    nx_state_slot_t *s;
    if (kv->key.type != MSGPACK_OBJECT_STR) continue; /* lib sends string keys */
    s = &ex->slots[ex->nslots++];
    s->key = kv->key.via.str.ptr;
    s->key_len = kv->key.via.str.size;
    s->orig = &kv->val;
    s->value = NX_UNDEFINED;
    s->change = -1;
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
    nx_state_slot_t *n = realloc(ex->slots, cap * sizeof *n);
    if (n == NULL) return NULL;
    ex->slots = n;
    ex->slots_cap = cap;
  }
  if (2 * (ex->nslots + 1) > ex->index_cap && index_rebuild(ex, ex->index_cap * 2) != 0)
    return NULL;
  copy = malloc(len + 1);
  if (copy == NULL) return NULL;
  memcpy(copy, key, len);
  copy[len] = 0;
  s = &ex->slots[ex->nslots++];
  memset(s, 0, sizeof *s);
  s->key = copy;
  s->key_len = (uint32_t)len;
  s->owned_key = 1;
  s->value = NX_UNDEFINED;
  s->change = -1;
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
}

/* Returns a new reference to the slot's current value. */
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

static int out_reserve(nx_sandbox_t *sb, nx_out_list_t *list, size_t mark) {
  nx_exec_t *ex = sb->exec;
  size_t grown = list->buf.size - mark;
  if (ex->out_bytes + grown > ex->out_limit) {
    char msg[160];
    list->buf.size = mark;
    snprintf(msg, sizeof msg,
             "Output limit exceeded: events, view commands and logs may use %llu bytes",
             (unsigned long long)ex->out_limit);
    nx_host_throw(sb, NX_E_RESOURCE_LIMIT, 0, msg);
    return -1;
  }
  ex->out_bytes += grown;
  list->count++;
  return 0;
}

/* Encodes `value` under `field` of a new map entry; on failure rolls the
 * list back and throws (TypeError naming the path, or the guest's own). */
static int out_value(nx_sandbox_t *sb, nx_out_list_t *list, size_t mark,
                     const char *field, nx_jsval_t value, const char *root) {
  nx_mp_encoder_t *enc = malloc(sizeof *enc);
  char path[64];
  nx_mp_status_t st;

  if (enc == NULL) {
    list->buf.size = mark;
    nx_host_throw(sb, NX_E_INTERNAL_ERROR, 0, "host out of memory");
    return -1;
  }
  snprintf(path, sizeof path, "%s[%u].%s", root, list->count, field);
  msgpack_pack_str_with_body(&list->pk, field, strlen(field));
  nx_mp_encoder_init(enc, sb, &list->pk, path);
  st = nx_mp_encode(enc, value);
  if (st != NX_MP_OK) {
    list->buf.size = mark;
    if (st == NX_MP_UNCROSSABLE) nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, enc->err);
    free(enc);
    return -1;
  }
  free(enc);
  return 0;
}

static void pack_cstr(msgpack_packer *pk, const char *s, size_t len) {
  msgpack_pack_str_with_body(pk, s, len);
}

void nx_host_log(nx_sandbox_t *sb, const char *level, const char *msg, size_t len) {
  nx_exec_t *ex = sb->exec;
  size_t mark;
  if (ex == NULL || ex->logs_truncated) return;
  mark = ex->logs.buf.size;
  if (ex->out_bytes + len + 32 > ex->out_limit) {
    static const char note[] = "log output truncated: output limit reached";
    ex->logs_truncated = 1;
    len = sizeof note - 1;
    msg = note;
    level = "warn";
  }
  msgpack_pack_map(&ex->logs.pk, 2);
  pack_cstr(&ex->logs.pk, "level", 5);
  pack_cstr(&ex->logs.pk, level, strlen(level));
  pack_cstr(&ex->logs.pk, "message", 7);
  msgpack_pack_str(&ex->logs.pk, len);
  msgpack_pack_str_body(&ex->logs.pk, msg, len);
  ex->out_bytes += ex->logs.buf.size - mark;
  ex->logs.count++;
}

void nx_host_console(nx_sandbox_t *sb, int is_stderr, const char *bytes, size_t len) {
  while (len && (bytes[len - 1] == '\n')) len--;
  if (len) nx_host_log(sb, is_stderr ? "error" : "info", bytes, len);
}

/* ---- dispatch ------------------------------------------------------------ */

static int name_is(const uint8_t *name, uint32_t len, const char *want) {
  return strlen(want) == len && memcmp(name, want, len) == 0;
}

static uint32_t call_state(nx_sandbox_t *sb, int fn, nx_jsval_t *a) {
  nx_exec_t *ex = sb->exec;
  char kbuf[KEY_STACK], *heap = NULL, *key = NULL;
  size_t klen = 0;
  nx_state_slot_t *s;
  nx_jsval_t result = NX_UNDEFINED;
  uint32_t box = 0;
  nx_cap_family_t family = (fn == H_STATE_SET || fn == H_STATE_DELETE)
                               ? NX_CAP_STATE_WRITE : NX_CAP_STATE_READ;

  if (state_prepare(ex) != 0) goto oom;
  if (fn == H_STATE_KEYS) {
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
          (int32_t)Q(JS_DefinePropertyValueUint32)(&sb->inst, sb->ctx, arr, n++, str, 7) < 0) {
        nx_sandbox_free_value(sb, arr);
        return 0;
      }
    }
    return nx_sandbox_box(sb, arr);
  }

  key = host_string(sb, a[0], kbuf, sizeof kbuf, &klen, &heap);
  if (key == NULL) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, "$state keys must be strings");
    return 0;
  }
  if (!nx_caps_allows(&ex->caps, family, key, klen)) {
    throw_missing(sb, family, key, klen);
    goto done;
  }
  s = state_find(ex, key, klen);
  switch (fn) {
    case H_STATE_GET:
      ex->hostcalls[NX_HOSTCALL_STATE_GET]++;
      if (s && slot_load(sb, s, &result) != 0) goto done;
      if (s) s->read = 1;
      break;
    case H_STATE_HAS:
      ex->hostcalls[NX_HOSTCALL_STATE_GET]++;
      result = NX_BOOL(slot_exists(s));
      break;
    case H_STATE_SET:
      ex->hostcalls[NX_HOSTCALL_STATE_SET]++;
      if (s == NULL && (s = state_add(ex, key, klen)) == NULL) goto oom;
      if (s->loaded) nx_sandbox_free_value(sb, s->value);
      s->value = nx_sandbox_dup_value(sb, a[1]);
      s->loaded = 1;
      s->deleted = 0;
      slot_mark_changed(ex, s);
      break;
    case H_STATE_DELETE:
      ex->hostcalls[NX_HOSTCALL_STATE_SET]++;
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
  nx_host_throw(sb, NX_E_INTERNAL_ERROR, 0, "host out of memory");
done:
  free(heap);
  return box;
}

static uint32_t call_emit(nx_sandbox_t *sb, nx_jsval_t *a) {
  nx_exec_t *ex = sb->exec;
  char nbuf[KEY_STACK], *heap = NULL, *name;
  size_t len = 0, mark = ex->events.buf.size;
  uint32_t box = 0;

  ex->hostcalls[NX_HOSTCALL_EMIT]++;
  name = host_string(sb, a[0], nbuf, sizeof nbuf, &len, &heap);
  if (name == NULL) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, "$emit(name, payload): name must be a string");
    return 0;
  }
  if (!nx_caps_allows(&ex->caps, NX_CAP_EVENTS_EMIT, name, len)) {
    throw_missing(sb, NX_CAP_EVENTS_EMIT, name, len);
    goto done;
  }
  msgpack_pack_map(&ex->events.pk, 2);
  pack_cstr(&ex->events.pk, "name", 4);
  pack_cstr(&ex->events.pk, name, len);
  if (out_value(sb, &ex->events, mark, "payload", a[1], "events") != 0) goto done;
  if (out_reserve(sb, &ex->events, mark) != 0) goto done;
  box = nx_sandbox_box(sb, NX_UNDEFINED);
done:
  free(heap);
  return box;
}

static uint32_t call_view(nx_sandbox_t *sb, nx_jsval_t *a) {
  nx_exec_t *ex = sb->exec;
  char tbuf[32], ibuf[KEY_STACK], *theap = NULL, *iheap = NULL, *type, *id;
  size_t tlen = 0, ilen = 0, mark = ex->views.buf.size;
  uint32_t box = 0;

  ex->hostcalls[NX_HOSTCALL_VIEW]++;
  type = host_string(sb, a[0], tbuf, sizeof tbuf, &tlen, &theap);
  id = host_string(sb, a[1], ibuf, sizeof ibuf, &ilen, &iheap);
  if (type == NULL || id == NULL) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, "$view: componentId must be a string");
    goto done;
  }
  if (!nx_caps_allows(&ex->caps, NX_CAP_VIEW_UPDATE, id, ilen)) {
    throw_missing(sb, NX_CAP_VIEW_UPDATE, id, ilen);
    goto done;
  }
  msgpack_pack_map(&ex->views.pk, 3);
  pack_cstr(&ex->views.pk, "type", 4);
  pack_cstr(&ex->views.pk, type, tlen);
  pack_cstr(&ex->views.pk, "componentId", 11);
  pack_cstr(&ex->views.pk, id, ilen);
  if (out_value(sb, &ex->views, mark, "args", a[2], "viewCommands") != 0) goto done;
  if (out_reserve(sb, &ex->views, mark) != 0) goto done;
  box = nx_sandbox_box(sb, NX_UNDEFINED);
done:
  free(theap);
  free(iheap);
  return box;
}

static uint32_t call_log(nx_sandbox_t *sb, nx_jsval_t *a) {
  char lbuf[16], *lheap = NULL, *level, *mheap = NULL, *msg, mbuf[256];
  size_t llen = 0, mlen = 0;
  uint32_t box = 0;

  sb->exec->hostcalls[NX_HOSTCALL_LOG]++;
  level = host_string(sb, a[0], lbuf, sizeof lbuf, &llen, &lheap);
  msg = host_string(sb, a[1], mbuf, sizeof mbuf, &mlen, &mheap);
  if (level == NULL || msg == NULL) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, "$log: message must be a string");
    goto done;
  }
  nx_host_log(sb, level, msg, mlen);
  box = nx_sandbox_box(sb, NX_UNDEFINED);
done:
  free(lheap);
  free(mheap);
  return box;
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

static char *dup_bytes(const char *s, size_t len) {
  char *d = malloc(len + 1);
  if (d) {
    memcpy(d, s, len);
    d[len] = 0;
  }
  return d;
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
  grown = realloc(ex->ext_counts, (ex->next_counts + 1) * sizeof *grown);
  if (grown == NULL) return -1;
  ex->ext_counts = grown;
  grown[ex->next_counts].name = dup_bytes(label, (size_t)n);
  if (grown[ex->next_counts].name == NULL) return -1;
  grown[ex->next_counts++].count = 1;
  return 0;
}

/* extCall(name, method, argsArray) -> call index. Checks the capability,
 * copies the arguments out (MessagePack) and records a pending call. */
static uint32_t call_ext(nx_sandbox_t *sb, nx_jsval_t *a) {
  nx_exec_t *ex = sb->exec;
  char nbuf[KEY_STACK], mbuf[KEY_STACK], *nheap = NULL, *mheap = NULL, *name, *method;
  size_t nlen = 0, mlen = 0;
  nx_mp_encoder_t *enc = NULL;
  msgpack_sbuffer args;
  msgpack_packer pk;
  nx_ext_call_t *c;
  uint32_t box = 0;
  size_t got = 0;

  msgpack_sbuffer_init(&args);
  name = host_string(sb, a[0], nbuf, sizeof nbuf, &nlen, &nheap);
  method = host_string(sb, a[1], mbuf, sizeof mbuf, &mlen, &mheap);
  if (name == NULL || method == NULL) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, "$ext: extension and method names must be strings");
    goto done;
  }
  if (count_ext(ex, name, nlen, method, mlen) != 0) goto oom;
  if (!nx_caps_allows(&ex->caps, NX_CAP_EXT, name, nlen)) {
    throw_missing(sb, NX_CAP_EXT, name, nlen);
    goto done;
  }
  if (!registry_has(ex->registry, name, nlen, method, mlen)) {
    nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, "$ext: not a registered extension method");
    goto done;
  }
  if (ex->ncalls >= MAX_EXT_CALLS) {
    nx_host_throw(sb, NX_E_RESOURCE_LIMIT, 0, "Too many extension calls in one execution");
    goto done;
  }
  enc = malloc(sizeof *enc);
  if (enc == NULL) goto oom;
  {
    char root[300];
    snprintf(root, sizeof root, "$ext.%.*s.%.*s() arguments", (int)(nlen > 100 ? 100 : nlen),
             name, (int)(mlen > 100 ? 100 : mlen), method);
    msgpack_packer_init(&pk, &args, msgpack_sbuffer_write);
    nx_mp_encoder_init(enc, sb, &pk, root);
  }
  switch (nx_mp_encode(enc, a[2])) {
    case NX_MP_OK: break;
    case NX_MP_UNCROSSABLE:
      nx_host_throw(sb, NX_E_EXECUTION_ERROR, 1, enc->err);
      goto done;
    default:
      goto done; /* the guest's exception is pending */
  }
  if (ex->out_bytes + args.size > ex->out_limit) {
    nx_host_throw(sb, NX_E_RESOURCE_LIMIT, 0, "Output limit exceeded by extension call arguments");
    goto done;
  }
  if (ex->ncalls == ex->calls_cap) {
    uint32_t cap = ex->calls_cap ? ex->calls_cap * 2 : 4;
    nx_ext_call_t *grown = realloc(ex->calls, cap * sizeof *grown);
    if (grown == NULL) goto oom;
    ex->calls = grown;
    ex->calls_cap = cap;
  }
  c = &ex->calls[ex->ncalls];
  memset(c, 0, sizeof *c);
  while (got < sizeof c->id) { /* unguessable: 128 bits from the kernel */
    ssize_t r = getrandom(c->id + got, sizeof c->id - got, 0);
    if (r <= 0) goto oom;
    got += (size_t)r;
  }
  c->ext = dup_bytes(name, nlen);
  c->method = dup_bytes(method, mlen);
  if (c->ext == NULL || c->method == NULL) {
    free(c->ext);
    free(c->method);
    goto oom;
  }
  c->args = (uint8_t *)args.data; /* the call owns the buffer now */
  c->args_len = args.size;
  msgpack_sbuffer_init(&args);
  ex->out_bytes += c->args_len;
  box = nx_sandbox_box(sb, NX_INT(ex->ncalls));
  ex->ncalls++;
  if (box == 0) Q(JS_ThrowOutOfMemory)(&sb->inst, sb->ctx);
  goto done;
oom:
  nx_host_throw(sb, NX_E_INTERNAL_ERROR, 0, "host out of memory");
done:
  msgpack_sbuffer_destroy(&args);
  free(enc);
  free(nheap);
  free(mheap);
  return box;
}

uint32_t nx_host_call(nx_sandbox_t *sb, uint32_t name, uint32_t name_len,
                      uint32_t argc, uint32_t argv) {
  const uint8_t *n = nx_guest_bytes(&sb->inst, name, name_len);
  nx_jsval_t a[3];
  int fn;

  if (n == NULL || sb->exec == NULL || read_args(sb, argc, argv, a, 3) != 0) {
    nx_host_throw(sb, NX_E_INTERNAL_ERROR, 0, "host call outside an execution");
    return 0;
  }
  for (fn = 0; fn < H__COUNT; fn++)
    if (name_is(n, name_len, nx_host_names[fn])) break;
  switch (fn) {
    case H_STATE_GET: case H_STATE_SET: case H_STATE_DELETE:
    case H_STATE_HAS: case H_STATE_KEYS:
      return call_state(sb, fn, a);
    case H_EMIT: return call_emit(sb, a);
    case H_VIEW: return call_view(sb, a);
    case H_LOG: return call_log(sb, a);
    case H_EXT_CALL: return call_ext(sb, a);
    default:
      nx_host_throw(sb, NX_E_INTERNAL_ERROR, 0, "unknown host function");
      return 0;
  }
}

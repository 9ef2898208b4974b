/* One execution, start to finish (see engine.h). Everything that touches the
 * guest runs inside one NX_WASM_TRY, and everything the host allocates on
 * the way belongs to the execution (ex->mem, ex->seg): a trap or a watchdog
 * stop anywhere abandons the segment without losing a byte, and becomes an
 * error result, never a crash. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "compiler.h"
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

/* ---- failures ------------------------------------------------------------ */

static void fail_with(nx_exec_t *ex, nx_error_code_t code, const char *message) {
  nx_failure_t *f = &ex->fail;
  nx_mem_free(&ex->seg, f->message);
  nx_mem_free(&ex->seg, f->stack);
  memset(f, 0, sizeof *f);
  f->code = code;
  f->message = nx_mem_strndup(&ex->seg, message, strlen(message));
}

static void fail_timeout(nx_exec_t *ex) {
  char msg[96];
  snprintf(msg, sizeof msg, "Execution timed out after %u ms",
           (unsigned)(ex->timeout_ns / 1000000u));
  fail_with(ex, NX_E_TIMEOUT, msg);
}

static void fail_result_limit(nx_exec_t *ex, const char *path) {
  char msg[400];
  snprintf(msg, sizeof msg,
           "Result too large: config.maxResultBytes (%llu bytes) was reached while encoding %s",
           (unsigned long long)ex->cfg->max_result_bytes, path);
  fail_with(ex, NX_E_RESOURCE_LIMIT, msg);
}

/* A host copy of a guest string primitive (segment memory), or NULL. */
static char *guest_string(nx_exec_t *ex, nx_jsval_t v) {
  nx_sandbox_t *sb = ex->sb;
  uint32_t slot, ptr, len = 0;
  uint8_t *bytes;
  char *out = NULL;
  int tag = nx_jsval_tag(v);
  if (tag != NX_TAG_STRING && tag != NX_TAG_STRING_ROPE) return NULL;
  slot = nx_sandbox_slot_push(sb, 1);
  if (slot == 0) return NULL;
  ptr = Q(JS_ToCStringLen2)(&sb->inst, sb->ctx, slot, v, 0);
  if (ptr != 0 && nx_guest_read_u32(&sb->inst, slot, &len) == 0 &&
      (bytes = nx_guest_bytes(&sb->inst, ptr, len)) != NULL)
    out = nx_mem_strndup(&ex->seg, (const char *)bytes, len);
  if (ptr) Q(JS_FreeCString)(&sb->inst, sb->ctx, ptr);
  nx_sandbox_slot_pop(sb, 1);
  return out;
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

static void drop_exception(nx_sandbox_t *sb) {
  nx_sandbox_free_value(sb, Q(JS_GetException)(&sb->inst, sb->ctx));
}

/* [name, message, stack, String(value)] of a thrown value, read by the
 * bootstrap's describe() in the guest: getters may run there, under the
 * deadline, but the host functions refuse every call by now. */
static int describe_thrown(nx_exec_t *ex, nx_jsval_t v, int is_error, char *out[4]) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t args[2], arr;
  int i;
  args[0] = v;
  args[1] = NX_BOOL(is_error);
  for (i = 0; i < 4; i++) out[i] = NULL;
  arr = call_bootstrap(sb, sb->describe, args, 2);
  if (nx_jsval_tag(arr) != NX_TAG_OBJECT) {
    if (nx_jsval_tag(arr) == NX_TAG_EXCEPTION) drop_exception(sb);
    else nx_sandbox_free_value(sb, arr);
    return -1;
  }
  /* An array literal of the bootstrap's: its elements are own data
   * properties, so reading them runs nothing. */
  for (i = 0; i < 4; i++) {
    nx_jsval_t item = Q(JS_GetPropertyUint32)(&sb->inst, sb->ctx, arr, (uint32_t)i);
    if (nx_jsval_tag(item) == NX_TAG_EXCEPTION) drop_exception(sb);
    out[i] = guest_string(ex, item);
    nx_sandbox_free_value(sb, item);
  }
  nx_sandbox_free_value(sb, arr);
  return 0;
}

/* Keeps only the frames in the handler's own source, with line numbers
 * relative to it. Sets *line / *column from the first such frame. */
static char *handler_stack(nx_exec_t *ex, const char *stack, uint32_t *line, uint32_t *column) {
  size_t cap = strlen(stack) + 1, n = 0;
  char *out = nx_mem_alloc(&ex->seg, cap + 64);
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
    nx_mem_free(&ex->seg, out);
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

/* Turns a thrown or rejected value into the segment's failure. The handler
 * is over by now: host functions close before any getter of the thrown
 * value runs. */
static void failure_from_value(nx_exec_t *ex, nx_jsval_t reason, nx_error_code_t fallback) {
  nx_sandbox_t *sb = ex->sb;
  nx_error_code_t code = fallback;
  int host, is_error;
  char *s[4], *name, *message, *stack;
  nx_failure_t *f = &ex->fail;

  ex->phase = NX_PHASE_CLOSED;
  if (ex->fatal != NX_OK) {
    fail_with(ex, ex->fatal, ex->fatal_msg ? ex->fatal_msg : nx_error_name(ex->fatal));
    return;
  }
  if (sb->interrupted) {
    fail_timeout(ex);
    return;
  }
  if (nx_jsval_tag(reason) == NX_TAG_UNINITIALIZED) { /* nothing was thrown */
    /* Crafted bytecode can make the reader fail that way: still the
     * caller's code (INVALID_HANDLER), not ours. */
    fail_with(ex, fallback == NX_E_EXECUTION_ERROR ? NX_E_INTERNAL_ERROR : fallback,
              sb->fault ? sb->fault : "the engine failed without an exception");
    return;
  }
  host = is_host_error(ex, reason, &code);
  is_error = (int)Q(JS_IsError)(&sb->inst, reason);
  if (describe_thrown(ex, reason, is_error, s) != 0) {
    /* Out of memory, most likely: collect and try once more. */
    Q(JS_RunGC)(&sb->inst, sb->rt);
    if (!sb->interrupted && describe_thrown(ex, reason, is_error, s) != 0) s[0] = s[1] = s[2] = s[3] = NULL;
  }
  if (sb->interrupted) { /* a getter ran into the deadline */
    fail_timeout(ex);
    return;
  }
  name = s[0];
  message = s[1];
  stack = s[2];
  if (is_error && !host && name && message && strcmp(name, "InternalError") == 0 &&
      strcmp(message, "out of memory") == 0) {
    code = NX_E_MEMORY_LIMIT;
    sb->broken = 1;
  }
  if (code == NX_E_MEMORY_LIMIT) {
    char msg[96];
    snprintf(msg, sizeof msg, "Memory limit of %llu bytes exceeded",
             (unsigned long long)ex->cfg->memory_limit);
    fail_with(ex, code, msg);
  } else if (message && (host || name == NULL)) {
    fail_with(ex, code, message);
  } else if (message) {
    size_t n = strlen(name) + strlen(message) + 3;
    char *m = nx_mem_alloc(&ex->seg, n);
    fail_with(ex, code, "");
    if (m) {
      snprintf(m, n, "%s: %s", name, message);
      nx_mem_free(&ex->seg, f->message);
      f->message = m;
    }
  } else {
    const char *what = s[3] ? s[3] : is_error && name ? name : "exception";
    size_t n = strlen(what) + 16;
    char *m = nx_mem_alloc(&ex->seg, n);
    fail_with(ex, code, "Uncaught exception");
    if (m) {
      snprintf(m, n, "Uncaught %s", what);
      nx_mem_free(&ex->seg, f->message);
      f->message = m;
    }
  }
  if (stack) f->stack = handler_stack(ex, stack, &f->line, &f->column);
}

static void failure_from_exception(nx_exec_t *ex, nx_error_code_t fallback) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t exc = Q(JS_GetException)(&sb->inst, sb->ctx);
  failure_from_value(ex, exc, fallback);
  nx_sandbox_free_value(sb, exc);
}

/* Turns an encoder status into the segment's failure; 0 for NX_MP_OK. */
static int encode_failed(nx_exec_t *ex, nx_mp_status_t st, const nx_mp_encoder_t *enc) {
  switch (st) {
    case NX_MP_OK: return 0;
    case NX_MP_UNCROSSABLE: fail_with(ex, NX_E_EXECUTION_ERROR, enc->err); break;
    case NX_MP_LIMIT: fail_result_limit(ex, enc->err); break;
    case NX_MP_NOMEM: fail_with(ex, NX_E_INTERNAL_ERROR, "host out of memory"); break;
    case NX_MP_GUEST: failure_from_exception(ex, NX_E_EXECUTION_ERROR); break;
    case NX_MP_IMPURE:
      fail_with(ex, NX_E_INTERNAL_ERROR, "a copied value still needs guest code to read");
      break;
  }
  return -1;
}

/* ---- values leaving the guest -------------------------------------------- */

/* Encodes a result value into `out`. The strict encoder goes first; a value
 * it cannot read without running guest code is copied by the bootstrap
 * (getters run, and may change $state: the caller looks again), and the
 * copy is encoded. No host pointer into the execution is held across that
 * copy: `out` must not live in memory the guest can make us move. */
static int encode_result_value(nx_exec_t *ex, nx_jsval_t v, nx_buf_t *out, const char *root) {
  nx_sandbox_t *sb = ex->sb;
  nx_mp_encoder_t *enc = nx_mem_alloc(&ex->seg, sizeof *enc);
  nx_mp_status_t st;
  int rc;

  if (enc == NULL) {
    fail_with(ex, NX_E_INTERNAL_ERROR, "host out of memory");
    return -1;
  }
  nx_mp_encoder_init(enc, sb, out, root);
  st = nx_mp_encode(enc, v);
  if (st == NX_MP_IMPURE) {
    nx_jsval_t held = nx_sandbox_dup_value(sb, v), copy;
    nx_buf_truncate(out, 0);
    copy = call_bootstrap(sb, sb->copy, &held, 1);
    nx_sandbox_free_value(sb, held);
    if (nx_jsval_tag(copy) == NX_TAG_EXCEPTION) {
      st = NX_MP_GUEST;
    } else {
      nx_mp_encoder_init(enc, sb, out, root);
      st = nx_mp_encode(enc, copy);
      nx_sandbox_free_value(sb, copy);
    }
  }
  if (st != NX_MP_OK) nx_buf_truncate(out, 0);
  rc = encode_failed(ex, st, enc);
  nx_mem_free(&ex->seg, enc);
  return rc;
}

/* ---- $state at the end of a segment ---------------------------------------- */

/* Keys whose value goes into the result, or needs a look for in-place
 * changes (objects read from $state). */
static int slot_wanted(const nx_state_slot_t *s) {
  if (s->change >= 0) return !s->deleted;
  return s->read && s->loaded && nx_jsval_tag(s->value) == NX_TAG_OBJECT;
}

static int count_bytes(void *data, const char *p, size_t n) {
  (void)p;
  *(size_t *)data += n;
  return 0;
}

/* Size of a snapshot value's MessagePack, as msgpack-c writes it. */
static size_t object_size(const msgpack_object *o) {
  size_t n = 0;
  msgpack_packer pk;
  msgpack_packer_init(&pk, &n, count_bytes);
  msgpack_pack_object(&pk, *o);
  return n;
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

/* Position of slot i in the mutation list if it turns out to be an
 * in-place change (for error paths). */
static uint32_t inplace_index(const nx_exec_t *ex, uint32_t i) {
  uint32_t j, n = ex->nchanges;
  for (j = 0; j < i; j++) n += ex->slots[j].inplace;
  return n;
}

/* Takes one slot's snapshot. Explicit writes are charged to the result
 * budget; a read object is encoded against a budget of its own (what the
 * result has left, or its baseline's size if that is more: an unchanged
 * value must always fit) and charged only if it changed. */
static int snapshot_slot(nx_exec_t *ex, uint32_t i) {
  nx_sandbox_t *sb = ex->sb;
  nx_state_slot_t *s = &ex->slots[i];
  int changed = s->change >= 0;
  nx_budget_t own = {0, 0};
  nx_buf_t tmp;
  nx_jsval_t v;
  char root[300];
  int rc;

  s->snapped = 1;
  s->snap_version = s->version;
  s->inplace = 0;
  nx_buf_free(&s->snap);
  if (changed) {
    snprintf(root, sizeof root, "stateMutations[%d].value", s->change);
    nx_buf_init(&tmp, &ex->mem, &ex->budget);
  } else {
    uint64_t left = ex->budget.limit - ex->budget.used;
    uint64_t base = s->has_base ? s->base_len : s->orig ? object_size(s->orig) : 0;
    own.limit = (left > base ? left : base) + 1;
    snprintf(root, sizeof root, "stateMutations[%u].value", inplace_index(ex, i));
    nx_buf_init(&tmp, &ex->mem, &own);
  }
  v = nx_sandbox_dup_value(sb, s->value);
  rc = encode_result_value(ex, v, &tmp, root); /* may run guest code */
  nx_sandbox_free_value(sb, v);
  s = &ex->slots[i]; /* the table may have grown meanwhile */
  if (!changed && (rc != 0 || !same_as_base(s, tmp.data, tmp.size))) {
    /* Reading a key hands out its object; changing that object is a write,
     * and needs the write capability like an assignment does. */
    if (!nx_caps_allows(&ex->caps, NX_CAP_STATE_WRITE, s->key, s->key_len)) {
      char msg[320];
      int k = (int)(s->key_len > 120 ? 120 : s->key_len);
      snprintf(msg, sizeof msg,
               "Permission denied: $state.%.*s was changed in place without capability "
               "state:write:%.*s", k, s->key, k, s->key);
      fail_with(ex, NX_E_PERMISSION_DENIED, msg);
      rc = -1;
    } else if (rc == 0 && tmp.size > ex->budget.limit - ex->budget.used) {
      fail_result_limit(ex, root);
      rc = -1;
    } else if (rc == 0) {
      s->inplace = 1;
      ex->budget.used += tmp.size;
      tmp.budget = &ex->budget;
    }
  }
  if (rc == 0 && (changed || s->inplace)) {
    s->snap = tmp;
  } else {
    if (tmp.budget == &own) tmp.budget = NULL; /* dies with this frame */
    nx_buf_free(&tmp);
  }
  return rc;
}

/* Snapshots every key the result needs. Getters that run while a value is
 * copied may write $state again: such keys are taken again, until a pass
 * finds nothing new. Each value is taken once per write, so this ends,
 * unless getters keep writing fresh values; the deadline stops that. */
static int snapshot_state(nx_exec_t *ex) {
  for (;;) {
    uint32_t i;
    int any = 0;
    for (i = 0; i < ex->nslots; i++) {
      const nx_state_slot_t *s = &ex->slots[i];
      if (!slot_wanted(s) || (s->snapped && s->snap_version == s->version)) continue;
      any = 1;
      if (snapshot_slot(ex, i) != 0) return -1;
    }
    if (!any) return 0;
    if (nx_now_ns() >= ex->sb->deadline_ns) {
      fail_timeout(ex);
      return -1;
    }
  }
}

/* The state mutations, from the snapshots: explicit writes in order of
 * first change, then in-place changes in key order. With `remember` (a
 * suspension) the reported values become the baselines of later segments. */
static int pack_mutations(nx_exec_t *ex, msgpack_packer *pk, int remember) {
  uint32_t *order, n = ex->nchanges, i;
  order = nx_mem_alloc(&ex->seg, ((size_t)ex->nslots + 1) * sizeof *order);
  if (order == NULL) return -1;
  for (i = 0; i < ex->nslots; i++)
    if (ex->slots[i].change >= 0) order[ex->slots[i].change] = i;
  for (i = 0; i < ex->nslots; i++)
    if (ex->slots[i].change < 0 && ex->slots[i].inplace) order[n++] = i;

  msgpack_pack_array(pk, n);
  for (i = 0; i < n; i++) {
    nx_state_slot_t *s = &ex->slots[order[i]];
    msgpack_pack_map(pk, s->deleted ? 2 : 3);
    msgpack_pack_str_with_body(pk, "key", 3);
    msgpack_pack_str_with_body(pk, s->key, s->key_len);
    msgpack_pack_str_with_body(pk, "operation", 9);
    if (s->deleted) {
      msgpack_pack_str_with_body(pk, "delete", 6);
    } else {
      msgpack_pack_str_with_body(pk, "set", 3);
      msgpack_pack_str_with_body(pk, "value", 5);
      nx_buf_write(pk->data, s->snap.data, s->snap.size);
    }
    if (remember) {
      nx_mem_free(&ex->mem, s->base);
      s->base = NULL;
      s->base_len = 0;
      if (!s->deleted) s->base = (uint8_t *)nx_buf_take(&s->snap, &s->base_len);
      s->has_base = 1;
    }
  }
  if (remember) {
    for (i = 0; i < ex->nslots; i++) {
      ex->slots[i].change = -1;
      ex->slots[i].inplace = 0;
    }
    ex->nchanges = 0;
  }
  nx_mem_free(&ex->seg, order);
  return 0;
}

/* ---- the result ------------------------------------------------------------ */

static void pack_str(msgpack_packer *pk, const char *s) {
  msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* `snippet`: the offending source line and a caret under the column. Long
 * (minified) lines are cut to a window around the column. */
#define SNIPPET_BEFORE 60u
#define SNIPPET_WIDTH 160u

static void pack_snippet(msgpack_packer *pk, const nx_exec_t *ex, uint32_t line,
                         uint32_t column) {
  const char *p, *end, *eol;
  uint32_t l = 1, col0, from, len, i, k;
  char buf[2 * SNIPPET_WIDTH + 4];

  if (ex == NULL || ex->code == NULL || ex->mode == NX_MODE_BYTECODE) { /* no source */
    msgpack_pack_nil(pk);
    return;
  }
  p = ex->code;
  end = ex->code + ex->code_len;
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

/* Writes at most `room` bytes of s (cut at a UTF-8 boundary, marked with
 * an ellipsis) and returns what it used. */
static size_t pack_str_within(msgpack_packer *pk, const char *s, size_t room) {
  static const char more[] = "\xE2\x80\xA6"; /* U+2026 */
  size_t len = strlen(s), cut;
  if (len <= room) {
    msgpack_pack_str_with_body(pk, s, len);
    return len;
  }
  cut = room > sizeof more - 1 ? room - (sizeof more - 1) : 0;
  while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
  msgpack_pack_str(pk, cut + sizeof more - 1);
  msgpack_pack_str_body(pk, s, cut);
  msgpack_pack_str_body(pk, more, sizeof more - 1);
  return cut + sizeof more - 1;
}

/* Bytes an error result may spend on its message and stack: the budget
 * less the logs it keeps and the fixed fields, and never more than
 * NX_ERROR_TEXT_MAX each, so a thrown megabyte string cannot make the
 * result outgrow config.maxResultBytes. */
#define NX_ERROR_TEXT_MAX (64u << 10)
#define NX_ERROR_FIXED 1024u

static void pack_error(msgpack_packer *pk, const nx_failure_t *f, const nx_exec_t *ex) {
  uint64_t room = NX_ERROR_TEXT_MAX;
  if (ex) {
    uint64_t limit = ex->budget.limit, used = ex->logs.buf.size + NX_ERROR_FIXED;
    room = limit > used ? limit - used : 0;
    if (room > NX_ERROR_TEXT_MAX) room = NX_ERROR_TEXT_MAX;
  }
  msgpack_pack_map(pk, 5);
  pack_str(pk, "code");
  pack_str(pk, nx_error_name(f->code));
  pack_str(pk, "message");
  room -= pack_str_within(pk, f->message ? f->message : nx_error_name(f->code), room);
  pack_str(pk, "stack");
  if (f->stack) pack_str_within(pk, f->stack, room);
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

static void pack_list(msgpack_packer *pk, const nx_out_list_t *list) {
  msgpack_pack_array(pk, list ? list->count : 0);
  if (list && list->buf.size) nx_buf_write(pk->data, list->buf.data, list->buf.size);
}

static const char *const hostcall_names[NX_HOSTCALL__COUNT] = {
    "state.get", "state.set", "emit", "view", "log"};

const char *nx_engine_hostcall_name(nx_hostcall_kind_t kind) { return hostcall_names[kind]; }

static void pack_metrics(msgpack_packer *pk, const nx_exec_t *ex, uint64_t duration_us,
                         uint64_t compile_us) {
  uint32_t i, n = 0, used = 0;
  const nx_sandbox_t *sb = ex ? ex->sb : NULL;
  if (sb && ex->env->heap_used_offset)
    nx_guest_read_u32((nx_wasm_instance_t *)&sb->inst, sb->rt + ex->env->heap_used_offset, &used);
  msgpack_pack_map(pk, 7);
  pack_str(pk, "durationUs");
  msgpack_pack_uint64(pk, duration_us);
  pack_str(pk, "memoryUsedBytes");
  msgpack_pack_uint64(pk, used);
  pack_str(pk, "compilationTimeUs");
  msgpack_pack_uint64(pk, compile_us);
  pack_str(pk, "memoryPeakBytes");
  msgpack_pack_uint64(pk, sb ? nx_sandbox_memory_bytes(sb) : 0);
  pack_str(pk, "instructionCount");
  /* QuickJS calls the interrupt handler once per 10 000 "ticks" (function
   * calls and backward jumps): an estimate of work, not instructions. */
  msgpack_pack_uint64(pk, sb ? (sb->interrupts - ex->interrupts0) * 10000u : 0);
  pack_str(pk, "cacheHit");
  if (ex && ex->cache_hit) msgpack_pack_true(pk);
  else msgpack_pack_false(pk);
  pack_str(pk, "hostCalls");
  if (ex) {
    for (i = 0; i < NX_HOSTCALL__COUNT; i++) n += ex->hostcalls[i] != 0;
    for (i = 0; i < ex->next_counts; i++) n += ex->ext_counts[i].count != 0;
  }
  msgpack_pack_map(pk, n);
  for (i = 0; ex && i < NX_HOSTCALL__COUNT; i++) {
    if (!ex->hostcalls[i]) continue;
    pack_str(pk, hostcall_names[i]);
    msgpack_pack_uint64(pk, ex->hostcalls[i]);
  }
  for (i = 0; ex && i < ex->next_counts; i++) {
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
  nx_buf_write(pk->data, (const char *)c->args, c->args_len);
}

/* The WasmResult of a segment. `ex` may be NULL (an execution that never
 * reached a sandbox); then `f` says why. Host work only: the guest is not
 * touched. The buffer handed out is plain malloc (the caller frees it). */
static int finish_result(nx_exec_t *ex, const nx_failure_t *f, nx_status_t status,
                         uint64_t duration_us, uint64_t compile_us, char **out,
                         size_t *out_len) {
  static const char *const names[NX_STATUS__COUNT] = {"success", "error", "suspended"};
  nx_mem_t scratch;
  nx_buf_t res;
  msgpack_packer pk;
  int ok = status != NX_STATUS_ERROR, rc = -1;
  uint32_t i;

  nx_mem_init(&scratch);
  nx_buf_init(&res, &scratch, NULL);
  pk = nx_buf_packer(&res);
  msgpack_pack_map(&pk, status == NX_STATUS_SUSPENDED ? 8 : 7);
  pack_str(&pk, "status");
  pack_str(&pk, names[status]);
  if (status == NX_STATUS_SUCCESS) {
    pack_str(&pk, "returnValue");
    nx_buf_write(&res, ex->retval.data, ex->retval.size);
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
  if (!ok) msgpack_pack_array(&pk, 0);
  else if (ex->mode == NX_MODE_COMPILE) msgpack_pack_array(&pk, 0);
  else if (pack_mutations(ex, &pk, status == NX_STATUS_SUSPENDED) != 0) goto done;
  pack_str(&pk, "events");
  pack_list(&pk, ok ? &ex->events : NULL);
  pack_str(&pk, "viewCommands");
  pack_list(&pk, ok ? &ex->views : NULL);
  pack_str(&pk, "logs");
  pack_list(&pk, ex ? &ex->logs : NULL);
  pack_str(&pk, "metrics");
  pack_metrics(&pk, ex, duration_us, compile_us);
  if (res.refused) goto done;
  *out = malloc(res.size);
  if (*out == NULL) goto done;
  memcpy(*out, res.data, res.size);
  *out_len = res.size;
  rc = 0;
done:
  nx_mem_release(&scratch);
  return rc;
}

int nx_engine_error_result(nx_error_code_t code, const char *message, char **out,
                           size_t *out_len) {
  nx_failure_t f;
  memset(&f, 0, sizeof f);
  f.code = code;
  f.message = (char *)message;
  return finish_result(NULL, &f, NX_STATUS_ERROR, 0, 0, out, out_len);
}

/* ---- loading the handler ------------------------------------------------------ */

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
                        nx_jsval_t *out) {
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
  if (st == NX_MP_UNCROSSABLE) fail_with(ex, NX_E_EXECUTION_ERROR, err);
  else if (st == NX_MP_GUEST) failure_from_exception(ex, NX_E_EXECUTION_ERROR);
  return st == NX_MP_OK ? 0 : -1;
}

#define JS_EVAL_FLAG_COMPILE_ONLY (1 << 5)
#define JS_WRITE_OBJ_BYTECODE (1 << 0)
#define JS_READ_OBJ_BYTECODE (1 << 0)

/* Prefixes a failure to read or evaluate bytecode with what it is. */
static void invalid_bytecode(nx_exec_t *ex) {
  char msg[300];
  snprintf(msg, sizeof msg, "Invalid handler bytecode: %s",
           ex->fail.message ? ex->fail.message : "unreadable");
  fail_with(ex, NX_E_INVALID_HANDLER, msg);
}

/* Evaluates a compiled script (consumed) to the handler function: the
 * wrapper expression must yield an async function. */
static nx_jsval_t eval_wrapper(nx_exec_t *ex, nx_jsval_t obj, nx_error_code_t code) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t fn = Q(JS_EvalFunction)(&sb->inst, sb->ctx, obj);
  if (nx_jsval_tag(fn) == NX_TAG_EXCEPTION) {
    failure_from_exception(ex, code);
    if (ex->fail.code == NX_E_INVALID_HANDLER) invalid_bytecode(ex);
    return NX_EXCEPTION;
  }
  if (!Q(JS_IsAsyncFunction)(&sb->inst, fn)) {
    nx_sandbox_free_value(sb, fn);
    fail_with(ex, code,
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
static nx_jsval_t read_bytecode(nx_exec_t *ex, const uint8_t *bc, size_t len) {
  nx_sandbox_t *sb = ex->sb;
  uint32_t p = nx_sandbox_put(sb, bc, len);
  nx_jsval_t obj;
  if (p == 0) {
    drop_exception(sb);
    fail_with(ex, NX_E_MEMORY_LIMIT, "Memory limit exceeded while loading the handler");
    return NX_EXCEPTION;
  }
  obj = Q(JS_ReadObject)(&sb->inst, sb->ctx, p, (uint32_t)len, JS_READ_OBJ_BYTECODE);
  if (nx_jsval_tag(obj) == NX_TAG_EXCEPTION) {
    failure_from_exception(ex, NX_E_INVALID_HANDLER);
    if (ex->fail.code == NX_E_INVALID_HANDLER) invalid_bytecode(ex);
    return NX_EXCEPTION;
  }
  return eval_wrapper(ex, obj, NX_E_INVALID_HANDLER);
}

/* Compiles prefix + source + suffix (compile only); NX_EXCEPTION with the
 * guest's exception pending on a syntax error, 0 when out of memory. */
static nx_jsval_t compile_wrapped(nx_exec_t *ex, const char *prefix, size_t plen,
                                  const char *suffix, size_t slen) {
  nx_sandbox_t *sb = ex->sb;
  size_t len = plen + ex->code_len + slen;
  uint32_t p;
  char *src = nx_mem_alloc(&ex->seg, len + sizeof HANDLER_FILE);

  if (src == NULL) return 0;
  memcpy(src, prefix, plen);
  memcpy(src + plen, ex->code, ex->code_len);
  memcpy(src + plen + ex->code_len, suffix, slen);
  /* File name right after the source, in the same scratch copy. */
  memcpy(src + len, "\0" HANDLER_FILE, sizeof HANDLER_FILE);
  p = nx_sandbox_put(sb, src, len + sizeof HANDLER_FILE);
  nx_mem_free(&ex->seg, src);
  if (p == 0) {
    drop_exception(sb);
    return 0;
  }
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
    drop_exception(sb);
    return 0;
  }
  nx_sandbox_free_value(sb, obj);
  return 1;
}

/* Compiles the wrapped source; *bc receives its bytecode (segment memory). */
static nx_jsval_t compile_source(nx_exec_t *ex, uint8_t **bc, size_t *bc_len) {
  nx_sandbox_t *sb = ex->sb;
  uint32_t slot, out, n = 0;
  uint8_t *bytes;
  nx_jsval_t obj = compile_wrapped(ex, wrap_prefix, sizeof wrap_prefix - 1, wrap_suffix,
                                   sizeof wrap_suffix - 1);

  if (obj == 0) {
    fail_with(ex, NX_E_MEMORY_LIMIT, "Memory limit exceeded while loading the handler");
    return NX_EXCEPTION;
  }
  if (nx_jsval_tag(obj) == NX_TAG_EXCEPTION) {
    failure_from_exception(ex, NX_E_COMPILATION_ERROR);
    return NX_EXCEPTION;
  }
  if (!stays_in_wrapper(ex)) {
    nx_sandbox_free_value(sb, obj);
    fail_with(ex, NX_E_COMPILATION_ERROR,
              "Handler code must be the body of a function (it closed the wrapper)");
    return NX_EXCEPTION;
  }
  slot = nx_sandbox_slot_push(sb, 1);
  out = slot ? Q(JS_WriteObject)(&sb->inst, sb->ctx, slot, obj, JS_WRITE_OBJ_BYTECODE) : 0;
  if (out != 0 && nx_guest_read_u32(&sb->inst, slot, &n) == 0 &&
      (bytes = nx_guest_bytes(&sb->inst, out, n)) != NULL &&
      (*bc = nx_mem_alloc(&ex->seg, n ? n : 1)) != NULL) {
    memcpy(*bc, bytes, n);
    *bc_len = n;
  }
  if (out) Q(js_free)(&sb->inst, sb->ctx, out);
  if (slot) nx_sandbox_slot_pop(sb, 1);
  if (*bc == NULL) {
    nx_sandbox_free_value(sb, obj);
    fail_with(ex, NX_E_INTERNAL_ERROR, "could not serialise the compiled handler");
    return NX_EXCEPTION;
  }
  return eval_wrapper(ex, obj, NX_E_COMPILATION_ERROR);
}

/* The handler function for this execution. Source is compiled once per
 * runtime (and engine version): later executions read the cached bytecode
 * into their fresh sandbox. In compile mode *packed receives the
 * precompileHandler() buffer (segment memory). */
static nx_jsval_t load_handler(nx_exec_t *ex, uint8_t **packed, size_t *packed_len) {
  const nx_engine_env_t *env = ex->env;
  uint8_t key[32], *bc = NULL;
  size_t bc_len = 0;
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
      fail_with(ex, NX_E_INVALID_HANDLER, msg);
      return NX_EXCEPTION;
    }
    ex->cache_hit = 1; /* nothing to compile */
    return read_bytecode(ex, body, body_len);
  }

  nx_compiler_key(env->engine, ex->code, ex->code_len, key);
  ex->cache_lookup = env->cache != NULL;
  /* Held in the execution, not a local: released by the segment's cleanup
   * even if reading it traps. */
  if (env->cache) ex->blob = nx_cache_get(env->cache, key, &where);
  if (ex->blob) {
    fn = read_bytecode(ex, ex->blob->data, ex->blob->len);
    if (nx_jsval_tag(fn) != NX_TAG_EXCEPTION) {
      ex->cache_hit = 1;
      if (packed && nx_compiler_pack(&ex->seg, env->engine, ex->code, ex->code_len,
                                     ex->blob->data, ex->blob->len, packed, packed_len) != 0)
        fail_with(ex, NX_E_INTERNAL_ERROR, "host out of memory");
      nx_blob_release(ex->blob);
      ex->blob = NULL;
      return fn;
    }
    /* Unreadable cached bytecode: compile afresh and replace it. */
    nx_blob_release(ex->blob);
    ex->blob = NULL;
    memset(&ex->fail, 0, sizeof ex->fail);
  }
  fn = compile_source(ex, &bc, &bc_len);
  if (bc && env->cache && nx_jsval_tag(fn) != NX_TAG_EXCEPTION)
    nx_blob_release(nx_cache_put(env->cache, key, bc, bc_len));
  if (bc && packed && nx_jsval_tag(fn) != NX_TAG_EXCEPTION &&
      nx_compiler_pack(&ex->seg, env->engine, ex->code, ex->code_len, bc, bc_len, packed,
                       packed_len) != 0)
    fail_with(ex, NX_E_INTERNAL_ERROR, "host out of memory");
  nx_mem_free(&ex->seg, bc);
  return fn;
}

/* ---- running ----------------------------------------------------------------- */

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

/* Seeds the guest's Math.random from the kernel's CSPRNG for every
 * execution, so no execution can learn another's sequence. */
static int random_seed(uint32_t out[4]) {
  size_t got = 0;
  while (got < 4 * sizeof out[0]) {
    ssize_t r = getrandom((uint8_t *)out + got, 4 * sizeof out[0] - got, 0);
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

/* First segment: compile, decode the inputs, start the handler. */
static int start_handler(nx_exec_t *ex) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t a[8] = {NX_UNDEFINED, NX_UNDEFINED, NX_UNDEFINED, NX_UNDEFINED};
  uint32_t seed[4];
  uint64_t t = nx_now_ns();
  int rc = -1, i;

  a[0] = load_handler(ex, NULL, NULL);
  ex->compile_us = (nx_now_ns() - t) / 1000u;
  if (nx_jsval_tag(a[0]) == NX_TAG_EXCEPTION || ex->fail.code != NX_OK) {
    if (nx_jsval_tag(a[0]) != NX_TAG_EXCEPTION) nx_sandbox_free_value(sb, a[0]);
    a[0] = NX_UNDEFINED;
    goto done;
  }
  if (decode_field(ex, ex->args, "args", &a[1]) != 0 ||
      decode_field(ex, ex->scope, "scope", &a[2]) != 0)
    goto done;
  if (ex->registry && ex->registry->type == MSGPACK_OBJECT_MAP && ex->registry->via.map.size &&
      decode_field(ex, ex->registry, "extensionRegistry", &a[3]) != 0)
    goto done;
  if (random_seed(seed) != 0) {
    fail_with(ex, NX_E_INTERNAL_ERROR, "the kernel's random source failed");
    goto done;
  }
  for (i = 0; i < 4; i++) a[4 + i] = NX_INT((int32_t)seed[i]);
  ex->promise = call_bootstrap(sb, sb->run, a, 8);
  if (nx_jsval_tag(ex->promise) == NX_TAG_EXCEPTION) {
    ex->promise = NX_UNDEFINED;
    failure_from_exception(ex, NX_E_EXECUTION_ERROR);
    goto done;
  }
  rc = 0;
done:
  for (i = 0; i < 4; i++) nx_sandbox_free_value(sb, a[i]);
  return rc;
}

/* Resolves or rejects the guest promise of each answered call. Settling may
 * run handler code (a `then` getter), so nothing here keeps a pointer into
 * the execution's tables across it: calls are found by index each time. */
static int settle_calls(nx_exec_t *ex, const nx_answer_t *answers, uint32_t n) {
  nx_sandbox_t *sb = ex->sb;
  uint32_t i;
  for (i = 0; i < n; i++) {
    const nx_answer_t *an = &answers[i];
    nx_jsval_t a[3], r;
    nx_path_t path;
    char err[300];
    size_t off = 0;
    nx_mp_status_t st = NX_MP_UNCROSSABLE;

    if (an->call >= ex->ncalls || ex->calls[an->call].answered) continue;
    ex->calls[an->call].answered = 1;
    ex->nanswered++;
    a[0] = NX_INT(an->call);
    a[1] = NX_BOOL(an->ok);
    a[2] = NX_UNDEFINED;
    snprintf(err, sizeof err, "the host's answer could not be read");
    if (msgpack_unpack_next(&ex->answer, (const char *)an->bytes, an->len, &off) ==
        MSGPACK_UNPACK_SUCCESS) {
      nx_path_set(&path, "result.value");
      st = nx_mp_decode(sb, &ex->answer.data, &a[2], &path, err, sizeof err);
    }
    if (st == NX_MP_GUEST) {
      failure_from_exception(ex, NX_E_EXECUTION_ERROR);
      return -1;
    }
    if (st == NX_MP_UNCROSSABLE) { /* reject the call rather than lose it */
      uint32_t p = nx_sandbox_put(sb, err, strlen(err));
      a[1] = NX_BOOL(0);
      a[2] = p ? Q(JS_NewStringLen)(&sb->inst, sb->ctx, p, (uint32_t)strlen(err)) : NX_EXCEPTION;
      if (nx_jsval_tag(a[2]) == NX_TAG_EXCEPTION) {
        failure_from_exception(ex, NX_E_EXECUTION_ERROR);
        return -1;
      }
    }
    r = call_bootstrap(sb, sb->settle, a, 3);
    nx_sandbox_free_value(sb, a[2]);
    if (nx_jsval_tag(r) == NX_TAG_EXCEPTION) {
      failure_from_exception(ex, NX_E_EXECUTION_ERROR);
      return -1;
    }
    nx_sandbox_free_value(sb, r);
  }
  return 0;
}

/* precompileHandler(): compile, no run; the result's returnValue is the
 * buffer. */
static nx_status_t run_compile(nx_exec_t *ex) {
  nx_sandbox_t *sb = ex->sb;
  uint8_t *packed = NULL;
  size_t packed_len = 0;
  uint64_t t = nx_now_ns();
  nx_jsval_t fn = load_handler(ex, &packed, &packed_len);
  ex->compile_us = (nx_now_ns() - t) / 1000u;
  if (nx_jsval_tag(fn) != NX_TAG_EXCEPTION) nx_sandbox_free_value(sb, fn);
  if (packed == NULL || ex->fail.code != NX_OK) return NX_STATUS_ERROR;
  {
    msgpack_packer pk = nx_buf_packer(&ex->retval);
    msgpack_pack_bin_with_body(&pk, packed, packed_len);
  }
  if (ex->retval.refused) {
    fail_with(ex, NX_E_INTERNAL_ERROR, "host out of memory");
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
      rc = encode_result_value(ex, value, &ex->retval, "returnValue");
      nx_sandbox_free_value(sb, value);
      if (rc == 0 && snapshot_state(ex) == 0) status = NX_STATUS_SUCCESS;
      break;
    case 2: /* rejected */
      value = Q(JS_PromiseResult)(&sb->inst, sb->ctx, ex->promise);
      failure_from_value(ex, value, NX_E_EXECUTION_ERROR);
      nx_sandbox_free_value(sb, value);
      break;
    case 0:
      if (sb->interrupted) {
        fail_timeout(ex);
      } else if (ex->nanswered < ex->ncalls) {
        ex->phase = NX_PHASE_FINISH;
        if (snapshot_state(ex) == 0) status = NX_STATUS_SUSPENDED;
      } else {
        fail_with(ex, NX_E_EXECUTION_ERROR,
                  "Handler never settled: it awaited a promise that nothing can resolve");
      }
      break;
    default:
      fail_with(ex, NX_E_INTERNAL_ERROR, "run() did not return a promise");
  }
  ex->phase = NX_PHASE_CLOSED;
  return status;
}

/* The part of a segment that runs guest code. Kept out of nx_engine_run so
 * no local lives across its setjmp: everything it leaves is in `ex`. */
static nx_status_t run_guarded(nx_exec_t *ex, int first, const nx_answer_t *answers,
                               uint32_t n) {
  nx_sandbox_t *sb = ex->sb;
  nx_status_t status = NX_STATUS_ERROR;

  if (ex->mode == NX_MODE_COMPILE) {
    status = run_compile(ex);
  } else if (first ? start_handler(ex) != 0 : settle_calls(ex, answers, n) != 0) {
    /* failure set */
  } else if (drain_jobs(ex) != 0) {
    failure_from_exception(ex, NX_E_EXECUTION_ERROR);
  } else {
    status = finish_segment(ex);
  }
  if (sb->interrupted || sb->stop) sb->broken = 1;
  return status;
}

static int parse_context(nx_exec_t *ex) {
  size_t off = 0;
  /* 32: msgpack-c's own parse-stack depth. */
  if (nx_mp_validate(ex->context, ex->context_len, 32) != 0 ||
      msgpack_unpack_next(&ex->ctx_msg, (const char *)ex->context, ex->context_len, &off) !=
          MSGPACK_UNPACK_SUCCESS ||
      off != ex->context_len || ex->ctx_msg.data.type != MSGPACK_OBJECT_MAP) {
    fail_with(ex, NX_E_INTERNAL_ERROR,
              "context is not a MessagePack map (nested deeper than 32 levels?)");
    return -1;
  }
  ex->state = map_get(&ex->ctx_msg.data, "stateSnapshot");
  ex->args = map_get(&ex->ctx_msg.data, "args");
  ex->scope = map_get(&ex->ctx_msg.data, "scope");
  ex->registry = map_get(&ex->ctx_msg.data, "extensionRegistry");
  if (nx_caps_parse(&ex->caps, map_get(&ex->ctx_msg.data, "capabilities")) != 0) {
    fail_with(ex, NX_E_INTERNAL_ERROR, "host out of memory");
    return -1;
  }
  return 0;
}

static void out_list_init(nx_exec_t *ex, nx_out_list_t *l) {
  nx_buf_init(&l->buf, &ex->mem, &ex->budget);
  l->count = 0;
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
  nx_mem_init(&ex->mem);
  nx_mem_init(&ex->seg);
  ex->budget.limit = cfg->max_result_bytes;
  /* A precompiled buffer is not a handler's result: no budget. */
  nx_buf_init(&ex->retval, &ex->mem, mode == NX_MODE_COMPILE ? NULL : &ex->budget);
  out_list_init(ex, &ex->events);
  out_list_init(ex, &ex->views);
  out_list_init(ex, &ex->logs);
  msgpack_unpacked_init(&ex->ctx_msg);
  msgpack_unpacked_init(&ex->answer);
  return ex;
}

/* Each result reports what happened since the previous one, within a fresh
 * budget: what the segment writes plus the calls still pending, which its
 * result lists again. */
static void segment_begin(nx_exec_t *ex) {
  uint32_t i;
  nx_buf_truncate(&ex->events.buf, 0);
  nx_buf_truncate(&ex->views.buf, 0);
  nx_buf_truncate(&ex->logs.buf, 0);
  ex->events.count = ex->views.count = ex->logs.count = 0;
  ex->budget.used = 0;
  for (i = 0; i < ex->ncalls; i++)
    if (!ex->calls[i].answered) ex->budget.used += ex->calls[i].charge;
  /* The oldest pending call is listed twice (`suspension` too). */
  for (i = 0; i < ex->ncalls; i++)
    if (!ex->calls[i].answered) {
      ex->budget.used += ex->calls[i].charge;
      break;
    }
  memset(&ex->fail, 0, sizeof ex->fail);
  ex->phase = NX_PHASE_RUN;
  memset(ex->hostcalls, 0, sizeof ex->hostcalls);
  for (i = 0; i < ex->next_counts; i++) ex->ext_counts[i].count = 0;
  ex->start_ns = nx_now_ns();
  ex->interrupts0 = ex->sb->interrupts;
}

/* What a segment leaves behind, on every path (a trap included): the
 * result's parts are in the result by now. */
static void segment_end(nx_exec_t *ex) {
  uint32_t i;
  nx_buf_free(&ex->retval);
  if (ex->blob) nx_blob_release(ex->blob);
  ex->blob = NULL;
  msgpack_unpacked_destroy(&ex->answer);
  msgpack_unpacked_init(&ex->answer);
  for (i = 0; i < ex->nslots; i++) {
    nx_buf_free(&ex->slots[i].snap);
    ex->slots[i].snapped = 0;
    ex->slots[i].inplace = 0;
  }
  memset(&ex->fail, 0, sizeof ex->fail);
  nx_mem_release(&ex->seg);
}

/* A syntax error at the very end of the source is found in the wrapper's
 * closing line: report it just past the handler's last character. */
static void clamp_location(nx_exec_t *ex) {
  nx_failure_t *f = &ex->fail;
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
  nx_wasm_guard_t guard;
  volatile nx_status_t status = NX_STATUS_ERROR;
  uint64_t seg_ns, left;
  int first = !ex->started, trap, rc;

  segment_begin(ex);
  ex->started = 1;
  if (first && ex->mode != NX_MODE_COMPILE && parse_context(ex) != 0) goto finish;

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
      fail_with(ex, NX_E_TIMEOUT, msg);
    } else if (trap == WASM_RT_TRAP_EXHAUSTION) {
      fail_with(ex, NX_E_EXECUTION_ERROR, "RangeError: Maximum call stack size exceeded");
    } else {
      char msg[96];
      snprintf(msg, sizeof msg, "Sandbox trapped (%s); it was reset", nx_wasm_trap_name(trap));
      fail_with(ex, NX_E_INTERNAL_ERROR, msg);
    }
    goto finish;
  }
  status = run_guarded(ex, first, answers, nanswers);
  nx_wasm_leave(&guard);

finish:
  /* A limit hit is the outcome, whatever the handler did after it. */
  if (ex->fatal != NX_OK && ex->fail.code != ex->fatal)
    fail_with(ex, ex->fatal, ex->fatal_msg ? ex->fatal_msg : nx_error_name(ex->fatal));
  if (ex->fail.code != NX_OK) status = NX_STATUS_ERROR;
  if (status == NX_STATUS_ERROR && ex->fail.code == NX_OK)
    fail_with(ex, NX_E_INTERNAL_ERROR, "the execution failed without a reason");
  clamp_location(ex);
  seg_ns = nx_now_ns() - ex->start_ns;
  ex->run_ns += seg_ns;
  rc = finish_result(ex, &ex->fail, status, seg_ns / 1000u, first ? ex->compile_us : 0, out,
                     out_len);
  if (outcome) {
    outcome->status = status;
    outcome->code = status == NX_STATUS_ERROR ? ex->fail.code : NX_OK;
    outcome->duration_us = seg_ns / 1000u;
    outcome->compile_us = first ? ex->compile_us : 0;
    outcome->cache = first && ex->cache_lookup ? ex->cache_hit : -1;
  }
  sb->exec = NULL;
  sb->deadline_ns = 0;
  segment_end(ex);
  return rc;
}

void nx_exec_free(nx_exec_t *ex) {
  if (ex == NULL) return;
  /* Guest references are not released one by one: the sandbox is reset to
   * its snapshot (or destroyed), which drops the guest's whole heap. */
  nx_caps_free(&ex->caps);
  if (ex->blob) nx_blob_release(ex->blob);
  msgpack_unpacked_destroy(&ex->answer);
  msgpack_unpacked_destroy(&ex->ctx_msg);
  nx_mem_release(&ex->seg);
  nx_mem_release(&ex->mem);
  free(ex->code);
  free(ex->context);
  free(ex);
}

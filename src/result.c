/* The result of a segment (see result.h): output lists, values copied out
 * of the guest within the budget, and the WasmResult assembled on the host
 * once the guest is done. */
#include "result.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "failure.h"
#include "lazy.h"
#include "mpack.h"
#include "util.h"

/* ---- output lists ---------------------------------------------------------- */

void nx_result_init(nx_exec_t *ex) {
  nx_out_list_t *lists[3] = {&ex->out.events, &ex->out.views, &ex->out.logs};
  int i;
  for (i = 0; i < 3; i++) {
    nx_buf_init(&lists[i]->buf, &ex->mem, &ex->budget);
    lists[i]->count = 0;
  }
}

void nx_result_begin_segment(nx_exec_t *ex) {
  nx_out_list_t *lists[3] = {&ex->out.events, &ex->out.views, &ex->out.logs};
  int i;
  for (i = 0; i < 3; i++) {
    nx_buf_truncate(&lists[i]->buf, 0);
    lists[i]->count = 0;
  }
}

size_t nx_result_begin(nx_out_list_t *list) { return list->buf.size; }

int nx_result_commit(nx_sandbox_t *sb, nx_out_list_t *list, size_t mark, const char *path) {
  int refused = list->buf.refused;
  if (refused == 0) {
    list->count++;
    return 0;
  }
  nx_buf_truncate(&list->buf, mark);
  if (refused == NX_BUF_NOMEM) {
    nx_failure_fatal(sb, NX_E_INTERNAL_ERROR, "host out of memory");
    return NX_RC_NOMEM;
  }
  nx_failure_fatal_result_limit(sb, path);
  return NX_RC_INVALID;
}

/* ---- values leaving the guest ---------------------------------------------- */

int nx_result_encode(nx_exec_t *ex, nx_jsval_t v, nx_buf_t *out, const char *path) {
  nx_sandbox_t *sb = ex->sb;
  nx_mp_encoder_t *enc = nx_mem_alloc(&ex->seg, sizeof *enc);
  nx_mp_status_t st;
  int rc = NX_RC_INVALID;

  if (enc == NULL) {
    nx_failure_set(ex, NX_E_INTERNAL_ERROR, "host out of memory");
    return NX_RC_NOMEM;
  }
  nx_mp_encoder_init(enc, sb, out, path);
  nx_lazy_encoder(ex, enc);
  st = nx_mp_encode(enc, v);
  if (st == NX_MP_IMPURE) {
    nx_jsval_t held = nx_sandbox_dup_value(sb, v), copy;
    nx_buf_truncate(out, 0);
    copy = nx_sandbox_call(sb, sb->copy, &held, 1); /* guest code runs here */
    nx_sandbox_free_value(sb, held);
    if (nx_jsval_tag(copy) == NX_TAG_EXCEPTION) {
      st = NX_MP_GUEST;
    } else {
      nx_mp_encoder_init(enc, sb, out, path);
      nx_lazy_encoder(ex, enc);
      st = nx_mp_encode(enc, copy);
      nx_sandbox_free_value(sb, copy);
    }
  }
  if (st != NX_MP_OK) nx_buf_truncate(out, 0);
  switch (st) {
    case NX_MP_OK: rc = NX_RC_OK; break;
    case NX_MP_UNCROSSABLE: nx_failure_set(ex, NX_E_EXECUTION_ERROR, enc->err); break;
    case NX_MP_LIMIT: nx_failure_result_limit(ex, enc->err); break;
    case NX_MP_NOMEM: nx_failure_set(ex, NX_E_INTERNAL_ERROR, "host out of memory"); break;
    case NX_MP_GUEST: nx_failure_from_exception(ex, NX_E_EXECUTION_ERROR); break;
    case NX_MP_IMPURE:
      nx_failure_set(ex, NX_E_INTERNAL_ERROR, "a copied value still needs guest code to read");
      break;
  }
  nx_mem_free(&ex->seg, enc);
  return rc;
}

int nx_result_encode_call(nx_sandbox_t *sb, nx_buf_t *out, size_t mark, nx_jsval_t v,
                          const char *path, int copied) {
  nx_exec_t *ex = sb->exec;
  nx_mp_encoder_t *enc = nx_mem_alloc(&ex->seg, sizeof *enc);
  nx_mp_status_t st;
  int rc = -1;

  if (enc == NULL) {
    nx_buf_truncate(out, mark);
    nx_failure_fatal(sb, NX_E_INTERNAL_ERROR, "host out of memory");
    return -1;
  }
  nx_mp_encoder_init(enc, sb, out, path);
  nx_lazy_encoder(ex, enc);
  st = nx_mp_encode(enc, v);
  if (st != NX_MP_OK) nx_buf_truncate(out, mark);
  switch (st) {
    case NX_MP_OK: rc = 1; break;
    case NX_MP_IMPURE:
      if (!copied) {
        rc = 0;
        break;
      }
      snprintf(enc->err, sizeof enc->err, "%s still needs guest code to read after copying", path);
      nx_failure_fatal(sb, NX_E_INTERNAL_ERROR, enc->err);
      break;
    case NX_MP_UNCROSSABLE: nx_failure_throw(sb, NX_E_EXECUTION_ERROR, 1, enc->err); break;
    case NX_MP_LIMIT: nx_failure_fatal_result_limit(sb, enc->err); break;
    case NX_MP_NOMEM: nx_failure_fatal(sb, NX_E_INTERNAL_ERROR, "host out of memory"); break;
    case NX_MP_GUEST: break; /* the guest's exception is pending */
  }
  nx_mem_free(&ex->seg, enc);
  return rc;
}

/* ---- the WasmResult ----------------------------------------------------------- */

static void pack_str(nx_buf_t *out, const char *s) { nx_mp_pack_str(out, s, strlen(s)); }

/* Writes at most `room` bytes of s (cut at a UTF-8 boundary, marked with
 * an ellipsis) and returns what it used. */
static size_t pack_str_within(nx_buf_t *out, const char *s, size_t room) {
  static const char more[] = "\xE2\x80\xA6"; /* U+2026 */
  size_t len = strlen(s), cut;
  if (len <= room) {
    nx_mp_pack_str(out, s, len);
    return len;
  }
  cut = room > sizeof more - 1 ? room - (sizeof more - 1) : 0;
  while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
  nx_mp_pack_str_header(out, cut + sizeof more - 1);
  nx_buf_write(out, s, cut);
  nx_buf_write(out, more, sizeof more - 1);
  return cut + sizeof more - 1;
}

/* `snippet`: the offending source line and a caret under the column. Long
 * (minified) lines are cut to a window around the column. */
static void pack_snippet(nx_buf_t *out, const nx_exec_t *ex, uint32_t line, uint32_t column) {
  const char *p, *end, *eol;
  uint32_t l = 1, col0, from, len, i, k;
  char buf[2 * NX_SNIPPET_WIDTH + 4];

  if (ex == NULL || ex->code == NULL || ex->mode == NX_MODE_BYTECODE) { /* no source */
    nx_mp_pack_nil(out);
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
    nx_mp_pack_nil(out);
    return;
  }
  eol = memchr(p, '\n', (size_t)(end - p));
  if (eol == NULL) eol = end;
  if (eol > p && eol[-1] == '\r') eol--;
  col0 = column > 0 ? column - 1 : 0;
  from = col0 > NX_SNIPPET_BEFORE ? col0 - NX_SNIPPET_BEFORE : 0;
  if ((size_t)(eol - p) < from) from = (uint32_t)(eol - p);
  len = (uint32_t)(eol - p) - from;
  if (len > NX_SNIPPET_WIDTH) len = NX_SNIPPET_WIDTH;
  if (col0 - from > NX_SNIPPET_WIDTH) col0 = from + NX_SNIPPET_WIDTH;
  memcpy(buf, p + from, len);
  i = len;
  buf[i++] = '\n';
  /* Keep tabs so the caret lines up under tab-indented code. */
  for (k = from; k < col0; k++) buf[i++] = (k < from + len && p[k] == '\t') ? '\t' : ' ';
  buf[i++] = '^';
  nx_mp_pack_str(out, buf, i);
}

/* Bytes an error result may spend on its message and stack: the budget
 * less the logs it keeps and the fixed fields, and never more than
 * ERROR_TEXT_MAX, so a thrown megabyte string cannot make the result
 * outgrow config.maxResultBytes. */
#define ERROR_TEXT_MAX (64u << 10)
#define ERROR_FIXED 1024u

static void pack_error(nx_buf_t *out, const nx_failure_t *f, const nx_exec_t *ex) {
  uint64_t room = ERROR_TEXT_MAX;
  if (ex) {
    uint64_t limit = ex->budget.limit, used = ex->out.logs.buf.size + ERROR_FIXED;
    room = limit > used ? limit - used : 0;
    if (room > ERROR_TEXT_MAX) room = ERROR_TEXT_MAX;
  }
  nx_mp_pack_map(out, 5);
  pack_str(out, "code");
  pack_str(out, nx_error_name(f->code));
  pack_str(out, "message");
  room -= pack_str_within(out, f->message ? f->message : nx_error_name(f->code), room);
  pack_str(out, "stack");
  if (f->stack)
    pack_str_within(out, f->stack, room);
  else
    nx_mp_pack_nil(out);
  pack_str(out, "location");
  if (f->line) {
    nx_mp_pack_map(out, 2);
    pack_str(out, "line");
    nx_mp_pack_uint(out, f->line);
    pack_str(out, "column");
    nx_mp_pack_uint(out, f->column);
  } else {
    nx_mp_pack_nil(out);
  }
  pack_str(out, "snippet");
  if (f->line)
    pack_snippet(out, ex, f->line, f->column);
  else
    nx_mp_pack_nil(out);
}

static void pack_list(nx_buf_t *out, const nx_out_list_t *list) {
  nx_mp_pack_array(out, list ? list->count : 0);
  if (list && list->buf.size) nx_buf_write(out, list->buf.data, list->buf.size);
}

static void pack_metrics(nx_buf_t *out, const nx_exec_t *ex, uint64_t duration_us,
                         uint64_t compile_us) {
  const nx_sandbox_t *sb = ex ? ex->sb : NULL;
  uint32_t i, n = 0, used = ex ? ex->heap_used : 0;
  nx_mp_pack_map(out, 7);
  pack_str(out, "durationUs");
  nx_mp_pack_uint(out, duration_us);
  pack_str(out, "memoryUsedBytes");
  nx_mp_pack_uint(out, used);
  pack_str(out, "compilationTimeUs");
  nx_mp_pack_uint(out, compile_us);
  pack_str(out, "memoryPeakBytes");
  nx_mp_pack_uint(out, sb ? nx_sandbox_memory_bytes(sb) : 0);
  pack_str(out, "instructionCount");
  /* QuickJS calls the interrupt handler once per 10 000 "ticks" (function
   * calls and backward jumps): an estimate of work, not instructions. */
  nx_mp_pack_uint(out, sb ? (sb->interrupts - ex->interrupts0) * 10000u : 0);
  pack_str(out, "cacheHit");
  nx_mp_pack_bool(out, ex && ex->cache_hit);
  pack_str(out, "hostCalls");
  for (i = 0; ex && i < ex->ncounts; i++) n += ex->counts[i].count != 0;
  nx_mp_pack_map(out, n);
  for (i = 0; ex && i < ex->ncounts; i++) {
    if (!ex->counts[i].count) continue;
    pack_str(out, ex->counts[i].name);
    nx_mp_pack_uint(out, ex->counts[i].count);
  }
}

static void pack_call(nx_buf_t *out, const nx_ext_call_t *c) {
  char hex[2 * NX_SUSPENSION_ID_BYTES + 1];
  nx_util_hex_encode(c->id, NX_SUSPENSION_ID_BYTES, hex);
  nx_mp_pack_map(out, 4);
  pack_str(out, "suspensionId");
  pack_str(out, hex);
  pack_str(out, "extensionName");
  pack_str(out, c->ext);
  pack_str(out, "method");
  pack_str(out, c->method);
  pack_str(out, "args");
  nx_buf_write(out, c->args, c->args_len);
}

static void pack_pending(nx_buf_t *out, const nx_exec_t *ex) {
  const nx_ext_call_t *first = NULL;
  uint32_t i;
  for (i = 0; i < ex->ncalls && first == NULL; i++)
    if (!ex->calls[i].answered) first = &ex->calls[i];
  pack_str(out, "suspension");
  pack_call(out, first);
  pack_str(out, "pendingCalls");
  nx_mp_pack_array(out, ex->ncalls - ex->nanswered);
  for (i = 0; i < ex->ncalls; i++)
    if (!ex->calls[i].answered) pack_call(out, &ex->calls[i]);
}

/* `ex` may be NULL (an execution that never reached a sandbox); then `f`
 * says why. The buffer handed out is plain malloc (the caller frees it). */
static int finish(const nx_exec_t *ex, const nx_failure_t *f, nx_status_t status,
                  uint64_t duration_us, uint64_t compile_us, char **out, size_t *out_len) {
  nx_mem_t scratch;
  nx_buf_t res;
  int ok = status != NX_STATUS_ERROR, rc = NX_RC_NOMEM;

  nx_mem_init(&scratch);
  nx_buf_init(&res, &scratch, NULL);
  nx_mp_pack_map(&res, status == NX_STATUS_SUSPENDED ? 8 : 7);
  pack_str(&res, "status");
  pack_str(&res, nx_status_name(status));
  if (status == NX_STATUS_SUCCESS) {
    pack_str(&res, "returnValue");
    nx_buf_write(&res, ex->retval.data, ex->retval.size);
  } else if (status == NX_STATUS_ERROR) {
    pack_str(&res, "error");
    pack_error(&res, f, ex);
  } else {
    pack_pending(&res, ex);
  }
  /* A failed handler's effects are not applied: only its logs survive. */
  pack_str(&res, "stateMutations");
  if (ok && ex->mutations.size)
    nx_buf_write(&res, ex->mutations.data, ex->mutations.size);
  else
    nx_mp_pack_array(&res, 0);
  pack_str(&res, "events");
  pack_list(&res, ok ? &ex->out.events : NULL);
  pack_str(&res, "viewCommands");
  pack_list(&res, ok ? &ex->out.views : NULL);
  pack_str(&res, "logs");
  pack_list(&res, ex ? &ex->out.logs : NULL);
  pack_str(&res, "metrics");
  pack_metrics(&res, ex, duration_us, compile_us);
  if (res.refused) goto done;
  *out = malloc(res.size);
  if (*out == NULL) goto done;
  memcpy(*out, res.data, res.size);
  *out_len = res.size;
  rc = NX_RC_OK;
done:
  nx_mem_release(&scratch);
  return rc;
}

int nx_result_finish(nx_exec_t *ex, nx_status_t status, uint64_t duration_us, uint64_t compile_us,
                     char **out, size_t *out_len) {
  return finish(ex, &ex->fail, status, duration_us, compile_us, out, out_len);
}

int nx_result_error(nx_error_code_t code, const char *message, char **out, size_t *out_len) {
  nx_failure_t f;
  memset(&f, 0, sizeof f);
  f.code = code;
  f.message = (char *)message;
  return finish(NULL, &f, NX_STATUS_ERROR, 0, 0, out, out_len);
}

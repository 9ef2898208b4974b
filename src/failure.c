/* Failures of a segment (see failure.h): errors thrown into the guest,
 * limits, and the description of a thrown value. Every string lives in the
 * execution's memory, so a trap halfway loses nothing. */
#include "failure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"

/* ---- the segment's failure ---------------------------------------------- */

void nx_failure_set(nx_exec_t *ex, nx_error_code_t code, const char *message) {
  nx_failure_clear(ex);
  ex->fail.code = code;
  ex->fail.message = nx_mem_strndup(&ex->seg, message, strlen(message));
}

void nx_failure_clear(nx_exec_t *ex) {
  nx_failure_t *f = &ex->fail;
  nx_mem_free(&ex->seg, f->message);
  nx_mem_free(&ex->seg, f->stack);
  f->message = f->stack = NULL;
  f->line = f->column = 0;
  f->code = NX_OK;
}

void nx_failure_timeout(nx_exec_t *ex) {
  char msg[96];
  snprintf(msg, sizeof msg, "Execution timed out after %u ms",
           (unsigned)(ex->timeout_ns / 1000000u));
  nx_failure_set(ex, NX_E_TIMEOUT, msg);
}

static void result_limit_message(const nx_exec_t *ex, const char *path, char *msg, size_t len) {
  snprintf(msg, len,
           "Result too large: config.maxResultBytes (%llu bytes) was reached while encoding %s",
           (unsigned long long)ex->cfg->max_result_bytes, path);
}

void nx_failure_result_limit(nx_exec_t *ex, const char *path) {
  char msg[400];
  result_limit_message(ex, path, msg, sizeof msg);
  nx_failure_set(ex, NX_E_RESOURCE_LIMIT, msg);
}

/* ---- describing a thrown value ------------------------------------------ */

/* [name, message, stack, String(value)] of a thrown value, read by the
 * bootstrap's describe() in the guest: getters may run there, under the
 * deadline, but the host functions refuse every call by now. */
static int describe(nx_exec_t *ex, nx_jsval_t v, int is_error, char *out[4]) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t args[2], arr;
  int i;
  args[0] = v;
  args[1] = NX_BOOL(is_error);
  for (i = 0; i < 4; i++) out[i] = NULL;
  arr = nx_sandbox_call(sb, sb->describe, args, 2);
  if (nx_jsval_tag(arr) != NX_TAG_OBJECT) {
    if (nx_jsval_tag(arr) == NX_TAG_EXCEPTION)
      nx_sandbox_drop_exception(sb);
    else
      nx_sandbox_free_value(sb, arr);
    return -1;
  }
  /* An array literal of the bootstrap's: its elements are own data
   * properties, so reading them runs nothing. */
  for (i = 0; i < 4; i++) {
    nx_jsval_t item = Q(JS_GetPropertyUint32)(&sb->inst, sb->ctx, arr, (uint32_t)i);
    if (nx_jsval_tag(item) == NX_TAG_EXCEPTION) nx_sandbox_drop_exception(sb);
    out[i] = nx_sandbox_string(sb, item, &ex->seg, NULL, 0, NULL);
    nx_sandbox_free_value(sb, item);
  }
  nx_sandbox_free_value(sb, arr);
  return 0;
}

/* Keeps only the frames in the handler's own source, with line numbers
 * relative to it. Sets *line / *column from the first such frame. */
static char *handler_stack(nx_exec_t *ex, const char *stack, uint32_t *line, uint32_t *column) {
  static const char file[] = NX_HANDLER_FILE ":";
  size_t cap = strlen(stack) + 65, n = 0;
  char *out = nx_mem_alloc(&ex->seg, cap);
  const char *p = stack;

  if (out == NULL) return NULL;
  *line = *column = 0;
  while (*p) {
    const char *eol = strchr(p, '\n');
    size_t len = eol ? (size_t)(eol - p) : strlen(p);
    const char *at = memmem(p, len, file, sizeof file - 1);
    if (at) {
      const char *num = at + sizeof file - 1;
      char *end;
      unsigned long l = strtoul(num, &end, 10), c = 0;
      const char *rest = end;
      if (*end == ':') {
        c = strtoul(end + 1, &end, 10);
        rest = end;
      }
      if (l > NX_HANDLER_PREFIX_LINES) { /* else: inside the wrapper itself */
        l -= NX_HANDLER_PREFIX_LINES;
        if (*line == 0) {
          *line = (uint32_t)l;
          *column = (uint32_t)c;
        }
        n += (size_t)snprintf(out + n, cap - n, "%s%.*s%lu:%lu%.*s", n ? "\n" : "", (int)(num - p),
                              p, l, c, (int)(len - (size_t)(rest - p)), rest);
        if (n >= cap) n = cap - 1;
      }
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

static int thrown_by_host(const nx_exec_t *ex, nx_jsval_t v, nx_error_code_t *code) {
  uint32_t i;
  if (nx_jsval_tag(v) != NX_TAG_OBJECT) return 0;
  for (i = 0; i < ex->fail.nthrown; i++)
    if (ex->fail.thrown[i] == v) {
      *code = ex->fail.thrown_codes[i];
      return 1;
    }
  return 0;
}

/* "prefix: text" or "prefix text" in segment memory, for messages built
 * from two guest strings of any length. */
static void set_joined(nx_exec_t *ex, nx_error_code_t code, const char *a, const char *sep,
                       const char *b) {
  size_t n = strlen(a) + strlen(sep) + strlen(b) + 1;
  char *m = nx_mem_alloc(&ex->seg, n);
  if (m == NULL) {
    nx_failure_set(ex, code, a);
    return;
  }
  snprintf(m, n, "%s%s%s", a, sep, b);
  nx_failure_set(ex, code, "");
  nx_mem_free(&ex->seg, ex->fail.message);
  ex->fail.message = m;
}

void nx_failure_from_value(nx_exec_t *ex, nx_jsval_t thrown, nx_error_code_t fallback) {
  nx_sandbox_t *sb = ex->sb;
  nx_error_code_t code = fallback;
  int host, is_error;
  char *s[4];

  ex->phase = NX_PHASE_CLOSED;
  if (ex->fail.fatal != NX_OK) {
    nx_failure_set(ex, ex->fail.fatal, ex->fail.fatal_message);
    return;
  }
  if (sb->interrupted) {
    nx_failure_timeout(ex);
    return;
  }
  if (nx_jsval_tag(thrown) == NX_TAG_UNINITIALIZED) { /* nothing was thrown */
    /* Crafted bytecode can make the reader fail that way: still the
     * caller's code (INVALID_HANDLER), not ours. */
    nx_failure_set(ex, fallback == NX_E_EXECUTION_ERROR ? NX_E_INTERNAL_ERROR : fallback,
                   sb->fault ? sb->fault : "the engine failed without an exception");
    return;
  }
  host = thrown_by_host(ex, thrown, &code);
  is_error = (int)Q(JS_IsError)(&sb->inst, thrown);
  if (describe(ex, thrown, is_error, s) != 0) {
    /* Out of memory, most likely: collect and try once more. */
    Q(JS_RunGC)(&sb->inst, sb->qrt);
    if (!sb->interrupted && describe(ex, thrown, is_error, s) != 0)
      s[0] = s[1] = s[2] = s[3] = NULL;
  }
  if (sb->interrupted) { /* a getter ran into the deadline */
    nx_failure_timeout(ex);
    return;
  }
  if (is_error && !host && s[0] && s[1] && strcmp(s[0], "InternalError") == 0 &&
      strcmp(s[1], "out of memory") == 0) {
    code = NX_E_MEMORY_LIMIT;
    sb->broken = 1;
  }
  if (code == NX_E_MEMORY_LIMIT) {
    char msg[96];
    snprintf(msg, sizeof msg, "Memory limit of %llu bytes exceeded",
             (unsigned long long)ex->cfg->memory_limit);
    nx_failure_set(ex, code, msg);
  } else if (s[1] && (host || s[0] == NULL)) {
    nx_failure_set(ex, code, s[1]);
  } else if (s[1]) {
    set_joined(ex, code, s[0], ": ", s[1]);
  } else {
    set_joined(ex, code, "Uncaught", " ", s[3] ? s[3] : is_error && s[0] ? s[0] : "exception");
  }
  if (s[2]) ex->fail.stack = handler_stack(ex, s[2], &ex->fail.line, &ex->fail.column);
}

void nx_failure_from_exception(nx_exec_t *ex, nx_error_code_t fallback) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t exc = Q(JS_GetException)(&sb->inst, sb->ctx);
  nx_failure_from_value(ex, exc, fallback);
  nx_sandbox_free_value(sb, exc);
}

/* ---- errors thrown into the guest --------------------------------------- */

void nx_failure_throw(nx_sandbox_t *sb, nx_error_code_t code, int type_error, const char *message) {
  nx_wasm_instance_t *in = &sb->inst;
  nx_exec_t *ex = sb->exec;
  nx_jsval_t args[3], err = NX_EXCEPTION;
  uint32_t i, p;

  args[0] = NX_BOOL(type_error);
  args[1] = NX_UNDEFINED;
  args[2] = NX_UNDEFINED;
  p = nx_sandbox_put(sb, message, strlen(message));
  args[1] = p ? Q(JS_NewStringLen)(in, sb->ctx, p, (uint32_t)strlen(message)) : NX_EXCEPTION;
  if (code != NX_E_EXECUTION_ERROR) {
    const char *name = nx_error_name(code);
    p = nx_sandbox_put(sb, name, strlen(name));
    args[2] = p ? Q(JS_NewStringLen)(in, sb->ctx, p, (uint32_t)strlen(name)) : NX_EXCEPTION;
  }
  if (nx_jsval_tag(args[1]) != NX_TAG_EXCEPTION && nx_jsval_tag(args[2]) != NX_TAG_EXCEPTION)
    err = nx_sandbox_call(sb, sb->mkerr, args, 3);
  for (i = 1; i < 3; i++) nx_sandbox_free_value(sb, args[i]);
  if (nx_jsval_tag(err) == NX_TAG_EXCEPTION) return; /* OOM: that is pending */
  if (ex && code != NX_E_EXECUTION_ERROR && ex->fail.nthrown < NX_FAILURE_THROWN) {
    ex->fail.thrown[ex->fail.nthrown] = nx_sandbox_dup_value(sb, err);
    ex->fail.thrown_codes[ex->fail.nthrown++] = code;
  }
  if (ex && ex->fail.fatal != NX_OK) Q(JS_SetUncatchableError)(in, sb->ctx, err);
  Q(JS_Throw)(in, sb->ctx, err);
}

void nx_failure_fatal(nx_sandbox_t *sb, nx_error_code_t code, const char *message) {
  nx_exec_t *ex = sb->exec;
  if (ex->fail.fatal == NX_OK) {
    ex->fail.fatal = code;
    ex->fail.fatal_message = nx_mem_strndup(&ex->mem, message, strlen(message));
    if (ex->fail.fatal_message == NULL) ex->fail.fatal_message = (char *)nx_error_name(code);
  }
  /* The handler cannot catch its way past this: the error is uncatchable
   * and every later interrupt check stops the guest, whatever it does. */
  sb->stop = 1;
  nx_failure_throw(sb, ex->fail.fatal, 0, ex->fail.fatal_message);
}

void nx_failure_fatal_result_limit(nx_sandbox_t *sb, const char *path) {
  char msg[400];
  result_limit_message(sb->exec, path, msg, sizeof msg);
  nx_failure_fatal(sb, NX_E_RESOURCE_LIMIT, msg);
}

/* ---- end of a segment ------------------------------------------------------ */

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

void nx_failure_finish(nx_exec_t *ex) {
  if (ex->fail.fatal != NX_OK && ex->fail.code != ex->fail.fatal)
    nx_failure_set(ex, ex->fail.fatal, ex->fail.fatal_message);
  clamp_location(ex);
}

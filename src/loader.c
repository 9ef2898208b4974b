/* Loading handlers (see loader.h). The source is compiled inside the
 * wrapper of the contract (src/contract.js) under its file name, so errors
 * point into the handler's own lines. A TypeScript source is compiled as
 * the JavaScript the host stripped it to, which keeps its positions. */
#include "loader.h"

#include <stdio.h>
#include <string.h>

#include "compiler.h"
#include "exec.h"
#include "failure.h"
#include "util.h"
#include "wasm_rt/nx_wasm.h"

static const char wrap_prefix[] = NX_HANDLER_PREFIX;
static const char wrap_suffix[] = NX_HANDLER_SUFFIX;

/* Prefixes a failure to read or evaluate bytecode with what it is. */
static void invalid_bytecode(nx_exec_t *ex) {
  char msg[300];
  snprintf(msg, sizeof msg, "Invalid handler bytecode: %s",
           ex->fail.message ? ex->fail.message : "unreadable");
  nx_failure_set(ex, NX_E_INVALID_HANDLER, msg);
}

/* Evaluates a compiled script (consumed) to the handler function: the
 * wrapper expression must yield an async function. */
static nx_jsval_t eval_wrapper(nx_exec_t *ex, nx_jsval_t obj, nx_error_code_t code) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t fn = Q(JS_EvalFunction)(&sb->inst, sb->ctx, obj);
  if (nx_jsval_tag(fn) == NX_TAG_EXCEPTION) {
    nx_failure_from_exception(ex, code);
    if (ex->fail.code == NX_E_INVALID_HANDLER) invalid_bytecode(ex);
    return NX_EXCEPTION;
  }
  if (!Q(JS_IsAsyncFunction)(&sb->inst, fn)) {
    nx_sandbox_free_value(sb, fn);
    nx_failure_set(ex, code,
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
    nx_sandbox_drop_exception(sb);
    nx_failure_set(ex, NX_E_MEMORY_LIMIT, "Memory limit exceeded while loading the handler");
    return NX_EXCEPTION;
  }
  obj = Q(JS_ReadObject)(&sb->inst, sb->ctx, p, (uint32_t)len, NX_READ_OBJ_BYTECODE);
  if (nx_jsval_tag(obj) == NX_TAG_EXCEPTION) {
    nx_failure_from_exception(ex, NX_E_INVALID_HANDLER);
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
  const char *code = ex->lang.js ? ex->lang.js : ex->code;
  size_t code_len = ex->lang.js ? ex->lang.js_len : ex->code_len;
  size_t len = plen + code_len + slen;
  uint32_t p;
  char *src = nx_mem_alloc(&ex->seg, len + sizeof NX_HANDLER_FILE);

  if (src == NULL) return 0;
  memcpy(src, prefix, plen);
  memcpy(src + plen, code, code_len);
  memcpy(src + plen + code_len, suffix, slen);
  /* File name right after the source, in the same scratch copy. */
  memcpy(src + len, "\0" NX_HANDLER_FILE, sizeof NX_HANDLER_FILE);
  p = nx_sandbox_put(sb, src, len + sizeof NX_HANDLER_FILE);
  nx_mem_free(&ex->seg, src);
  if (p == 0) {
    nx_sandbox_drop_exception(sb);
    return 0;
  }
  return Q(JS_Eval)(&sb->inst, sb->ctx, p, (uint32_t)len, p + (uint32_t)len + 1,
                    NX_EVAL_COMPILE_ONLY);
}

/* Code can close the wrapper and open a function of its own
 * (`}); x; (async function () {`). The same code compiled as the body of a
 * function declaration cannot do that and still parse: after its `}` the
 * parser is at statement level, where the `)` the escape needs is a syntax
 * error. So a handler must compile both ways. */
static const char decl_prefix[] = NX_HANDLER_DECL_PREFIX;
static const char decl_suffix[] = NX_HANDLER_DECL_SUFFIX;

static int stays_in_wrapper(nx_exec_t *ex) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t obj =
      compile_wrapped(ex, decl_prefix, sizeof decl_prefix - 1, decl_suffix, sizeof decl_suffix - 1);
  if (nx_jsval_tag(obj) == NX_TAG_EXCEPTION) {
    nx_sandbox_drop_exception(sb);
    return 0;
  }
  nx_sandbox_free_value(sb, obj);
  return 1;
}

/* Compiles the wrapped source; *bc receives its bytecode (segment memory). */
static nx_jsval_t compile_source(nx_exec_t *ex, uint8_t **bc, size_t *bc_len) {
  nx_sandbox_t *sb = ex->sb;
  uint32_t lenp, out, n = 0;
  uint8_t *bytes;
  nx_jsval_t obj =
      compile_wrapped(ex, wrap_prefix, sizeof wrap_prefix - 1, wrap_suffix, sizeof wrap_suffix - 1);

  if (obj == 0) {
    nx_failure_set(ex, NX_E_MEMORY_LIMIT, "Memory limit exceeded while loading the handler");
    return NX_EXCEPTION;
  }
  if (nx_jsval_tag(obj) == NX_TAG_EXCEPTION) {
    nx_failure_from_exception(ex, NX_E_COMPILATION_ERROR);
    return NX_EXCEPTION;
  }
  if (!stays_in_wrapper(ex)) {
    nx_sandbox_free_value(sb, obj);
    nx_failure_set(ex, NX_E_COMPILATION_ERROR,
                   "Handler code must be the body of a function (it closed the wrapper)");
    return NX_EXCEPTION;
  }
  lenp = nx_sandbox_outs_push(sb, 1);
  out = lenp ? Q(JS_WriteObject)(&sb->inst, sb->ctx, lenp, obj, NX_WRITE_OBJ_BYTECODE) : 0;
  if (out != 0 && nx_guest_read_u32(&sb->inst, lenp, &n) == 0 &&
      (bytes = nx_guest_bytes(&sb->inst, out, n)) != NULL &&
      (*bc = nx_mem_alloc(&ex->seg, n ? n : 1)) != NULL) {
    memcpy(*bc, bytes, n);
    *bc_len = n;
  }
  if (out) Q(js_free)(&sb->inst, sb->ctx, out);
  if (lenp) nx_sandbox_outs_pop(sb, 1);
  if (*bc == NULL) {
    nx_sandbox_free_value(sb, obj);
    nx_failure_set(ex, NX_E_INTERNAL_ERROR, "could not serialise the compiled handler");
    return NX_EXCEPTION;
  }
  return eval_wrapper(ex, obj, NX_E_COMPILATION_ERROR);
}

/* ---- reading a handler in ahead ---------------------------------------------

 * Reading cached bytecode (JS_ReadObject, then evaluating the wrapper) was
 * about 40% of a trivial handler's time in the sandbox. After a reset the
 * worker reads in the handler the sandbox ran last; an execution of the
 * same handler then takes that function instead of reading it (hot
 * handlers tend to run again). It is safe because nothing else runs in
 * between: the function is made from the same cached bytecode, in the
 * sandbox freshly reset to its snapshot, exactly as the execution would
 * have made it first thing, and the next reset drops it with the rest of
 * the heap, so no execution ever sees a function another one used. An
 * execution of another handler frees it first; what remains of it (atoms
 * of the other handler's names) holds nothing any execution wrote. */

/* The guarded part (no local lives across the setjmp). */
static nx_jsval_t preload_guarded(nx_sandbox_t *sb, const nx_blob_t *blob) {
  uint32_t p = nx_sandbox_put(sb, blob->data, blob->len);
  nx_jsval_t obj, fn;
  if (p == 0) return NX_EXCEPTION;
  obj = Q(JS_ReadObject)(&sb->inst, sb->ctx, p, (uint32_t)blob->len, NX_READ_OBJ_BYTECODE);
  if (nx_jsval_tag(obj) == NX_TAG_EXCEPTION) return NX_EXCEPTION;
  fn = Q(JS_EvalFunction)(&sb->inst, sb->ctx, obj);
  if (nx_jsval_tag(fn) == NX_TAG_EXCEPTION) return NX_EXCEPTION;
  if (!Q(JS_IsAsyncFunction)(&sb->inst, fn)) {
    nx_sandbox_free_value(sb, fn);
    return NX_EXCEPTION;
  }
  return fn;
}

/* Evaluating the wrapper runs no handler code, but bytecode from a disk
 * cache is only as trusted as its directory: a deadline, as for a handler. */
#define NX_PRELOAD_NS 100000000ull

void nx_loader_preload(nx_sandbox_t *sb, const nx_engine_t *eng) {
  nx_wasm_guard_t guard;
  nx_blob_t *blob;
  nx_jsval_t fn;
  if (!sb->has_next_key || eng->cache == NULL || sb->broken) return;
  sb->has_next_key = 0;
  blob = nx_cache_peek(eng->cache, sb->next_key);
  if (blob == NULL) return;
  atomic_store(&sb->deadline_ns, nx_util_now_ns() + NX_PRELOAD_NS);
  if (NX_WASM_TRY(&guard, nx_sandbox_trap_memory(sb)) != 0) {
    sb->broken = 1;
  } else {
    fn = preload_guarded(sb, blob);
    if (nx_jsval_tag(fn) == NX_TAG_EXCEPTION) {
      nx_sandbox_drop_exception(sb);
    } else {
      sb->preloaded = fn;
      memcpy(sb->preloaded_key, sb->next_key, sizeof sb->preloaded_key);
    }
    nx_wasm_leave(&guard);
  }
  if (sb->interrupted) sb->broken = 1; /* the deadline fired: start afresh */
  atomic_store(&sb->deadline_ns, 0);
  nx_blob_release(blob);
}

/* The handler to read in after this sandbox's next reset. */
static void remember(nx_exec_t *ex, const uint8_t key[32]) {
  memcpy(ex->sb->next_key, key, sizeof ex->sb->next_key);
  ex->sb->has_next_key = 1;
}

/* The function read in ahead, when it is this handler's (a new reference
 * the caller owns), else NX_UNDEFINED; another handler's is freed. */
static nx_jsval_t take_preloaded(nx_exec_t *ex, const uint8_t key[32]) {
  nx_sandbox_t *sb = ex->sb;
  nx_jsval_t fn = sb->preloaded;
  if (!nx_jsval_has_ref(fn)) return NX_UNDEFINED;
  sb->preloaded = NX_UNDEFINED;
  if (memcmp(key, sb->preloaded_key, 32) == 0) return fn;
  nx_sandbox_free_value(sb, fn);
  return NX_UNDEFINED;
}

/* Source is compiled once per runtime (and engine version): later
 * executions read the cached bytecode into their fresh sandbox, or take
 * the function read in ahead after the reset. */
nx_jsval_t nx_loader_load(nx_exec_t *ex, uint8_t **packed, size_t *packed_len) {
  const nx_engine_t *eng = ex->engine;
  uint8_t key[32], *bc = NULL;
  size_t bc_len = 0;
  nx_cache_where_t where = NX_CACHE_MISS;
  nx_jsval_t fn = NX_EXCEPTION;

  ex->sb->has_next_key = 0;

  if (ex->mode == NX_MODE_BYTECODE) {
    const uint8_t *body;
    size_t body_len;
    const char *why =
        nx_compiler_unpack(eng->tag, (const uint8_t *)ex->code, ex->code_len, &body, &body_len);
    if (why) {
      char msg[200];
      snprintf(msg, sizeof msg, "Invalid handler bytecode: %s", why);
      nx_failure_set(ex, NX_E_INVALID_HANDLER, msg);
      return NX_EXCEPTION;
    }
    ex->cache_hit = 1; /* nothing to compile */
    return read_bytecode(ex, body, body_len);
  }

  if (ex->lang.error) {
    /* TypeScript the host could not strip (an enum, say): nothing to
     * compile, and nothing to cache. */
    nx_failure_set(ex, NX_E_COMPILATION_ERROR, ex->lang.error);
    ex->fail.line = ex->lang.line;
    ex->fail.column = ex->lang.column;
    return NX_EXCEPTION;
  }
  nx_compiler_key(eng->tag, nx_language_name(ex->lang.id), ex->code, ex->code_len, key);
  ex->cache_lookup = eng->cache != NULL;
  fn = take_preloaded(ex, key);
  if (nx_jsval_has_ref(fn) && packed == NULL) {
    ex->cache_hit = 1;
    nx_cache_touch(eng->cache, key);
    remember(ex, key);
    return fn;
  }
  if (nx_jsval_has_ref(fn)) nx_sandbox_free_value(ex->sb, fn);
  fn = NX_EXCEPTION;
  /* Held in the execution, not a local: released by the segment's cleanup
   * even if reading it traps. */
  if (eng->cache) ex->blob = nx_cache_get(eng->cache, key, &where);
  if (ex->blob) {
    fn = read_bytecode(ex, ex->blob->data, ex->blob->len);
    if (nx_jsval_tag(fn) != NX_TAG_EXCEPTION) {
      ex->cache_hit = 1;
      remember(ex, key);
      if (packed && nx_compiler_pack(&ex->seg, eng->tag, ex->code, ex->code_len, ex->blob->data,
                                     ex->blob->len, packed, packed_len) != 0)
        nx_failure_set(ex, NX_E_INTERNAL_ERROR, "host out of memory");
      nx_blob_release(ex->blob);
      ex->blob = NULL;
      return fn;
    }
    /* Unreadable cached bytecode: compile afresh and replace it. */
    nx_blob_release(ex->blob);
    ex->blob = NULL;
    nx_failure_clear(ex);
    ex->phase = NX_PHASE_RUN; /* the failed read closed it */
  }
  fn = compile_source(ex, &bc, &bc_len);
  if (bc && eng->cache && nx_jsval_tag(fn) != NX_TAG_EXCEPTION) {
    nx_blob_release(nx_cache_put(eng->cache, key, bc, bc_len));
    remember(ex, key);
  }
  if (bc && packed && nx_jsval_tag(fn) != NX_TAG_EXCEPTION &&
      nx_compiler_pack(&ex->seg, eng->tag, ex->code, ex->code_len, bc, bc_len, packed,
                       packed_len) != 0)
    nx_failure_set(ex, NX_E_INTERNAL_ERROR, "host out of memory");
  nx_mem_free(&ex->seg, bc);
  return fn;
}

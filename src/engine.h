/* The engine runs executions in a sandbox, one segment at a time: the
 * first decodes the context, loads the handler and starts it; a resume
 * settles the extension calls the host answered; each ends with a
 * MessagePack WasmResult (success, error, or suspended on calls the host
 * must answer). This is the runtime's whole view of an execution. */
#ifndef NX_ENGINE_H
#define NX_ENGINE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "config.h"
#include "errors.h"
#include "sandbox.h"

#define NX_SUSPENSION_ID_BYTES 16
#define NX_ENGINE_TAG_MAX 200

/* What an execution starts from. */
typedef enum {
  NX_MODE_SOURCE,   /* handler source: compiled, or its bytecode from the cache */
  NX_MODE_BYTECODE, /* a precompileHandler() buffer */
  NX_MODE_COMPILE,  /* compile only: the result's returnValue is that buffer */
} nx_exec_mode_t;

/* The language of a source handler and, for TypeScript, what
 * lib/typescript.js made of it on the host: the source with its types
 * blanked out, which is compiled in its place (every position in it, in
 * UTF-8 bytes, is the source's), or why the types could not be stripped and
 * where. The source itself stays what the cache key, the snippet and the
 * precompiled header name. */
typedef struct {
  nx_language_t id;
  char *js; /* malloc'd; NULL for JavaScript and for a stripping failure */
  size_t js_len;
  char *error;           /* malloc'd message of a stripping failure, or NULL */
  uint32_t line, column; /* where in the source it is; 0: unknown */
} nx_lang_t;

/* Frees what `lang` holds and empties it. */
void nx_engine_lang_free(nx_lang_t *lang);

/* Faults the tests make the next execution's sandbox have (the addon's
 * injectFault): what a bug in the engine would do, so that its
 * containment can be seen. */
#define NX_ENGINE_FAULT_OOB 1u   /* a guest load far past its memory */
#define NX_ENGINE_FAULT_STACK 2u /* native recursion under the guard, guard pages only */

/* Shared by every execution of a runtime; read-only once built. */
typedef struct {
  const nx_config_t *cfg;
  nx_cache_t *cache;            /* bytecode by source: memory and disk */
  char tag[NX_ENGINE_TAG_MAX];  /* engine tag (compiler.h) */
  uint32_t heap_used_offset;    /* of JSRuntime's malloc_size; 0: unknown */
  _Atomic uint32_t *fault_next; /* NX_ENGINE_FAULT_* for the next execution, or 0 */
} nx_engine_t;

/* The host's answer to one pending call: MessagePack of the value, or of
 * the error message when !ok. */
typedef struct {
  uint32_t call;
  int ok;
  const uint8_t *bytes;
  size_t len;
} nx_answer_t;

/* Host calls of a segment by metric name ("state.get", "ext.http.get"). */
typedef struct {
  const char *name;
  uint64_t count;
} nx_host_count_t;

typedef struct {
  nx_status_t status;
  nx_error_code_t code; /* NX_OK unless status is NX_STATUS_ERROR */
  uint64_t duration_us; /* this segment's */
  uint64_t compile_us;
  int cache;                     /* -1: not asked; 0: miss; 1: hit (first segment only) */
  const nx_host_count_t *counts; /* valid until the next segment */
  uint32_t ncounts;
} nx_exec_outcome_t;

/* A new execution of `code` (written in `lang`) in `sb`; code, what
 * `lang` holds (moved out of it) and context are owned from here on (freed
 * even on failure). NULL when memory ran out. */
nx_exec_t *nx_engine_exec_new(nx_sandbox_t *sb, const nx_engine_t *engine, nx_exec_mode_t mode,
                              char *code, size_t code_len, nx_lang_t *lang, uint8_t *context,
                              size_t context_len, uint32_t timeout_ms);
/* Frees the execution's host memory. The sandbox stays, holding whatever
 * the guest allocated until it is reset. */
void nx_engine_exec_free(nx_exec_t *ex);

/* Runs the next segment: the start, or a resume with the host's answers.
 * *out receives the MessagePack result (malloc'd, the caller frees it).
 * 0, or NX_RC_NOMEM when not even that could be built (the outcome is then
 * an error). When the outcome is not NX_STATUS_SUSPENDED the execution is
 * over: free it. */
int nx_engine_run(nx_exec_t *ex, const nx_answer_t *answers, uint32_t nanswers, char **out,
                  size_t *out_len, nx_exec_outcome_t *outcome);

/* executeHandlerSync: an $ext call ends the execution (nothing could
 * answer it) instead of suspending it. */
void nx_engine_exec_set_sync(nx_exec_t *ex);

nx_sandbox_t *nx_engine_sandbox(const nx_exec_t *ex);
/* The execution's extension calls, answered or not, in the order made. */
uint32_t nx_engine_calls(const nx_exec_t *ex);
const uint8_t *nx_engine_call_id(const nx_exec_t *ex, uint32_t call);
int nx_engine_call_pending(const nx_exec_t *ex, uint32_t call);

#endif

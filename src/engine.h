/* The engine runs executions in a sandbox: decode the context, compile the
 * handler, run it and its promise jobs under the deadline, and encode the
 * result (MessagePack, the contract's WasmResult). An execution that awaits
 * extension calls ends a segment "suspended"; its nx_exec_t lives on, parked
 * with its sandbox, until the host answers the calls and runs it again. */
#ifndef NX_ENGINE_H
#define NX_ENGINE_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cache.h"
#include "caps.h"
#include "config.h"
#include "errors.h"
#include "mem.h"
#include "sandbox.h"

/* One top-level key of $state. Values load lazily: a handler that reads one
 * key of a 10 000-key state decodes one key. */
typedef struct {
  const char *key;              /* in the context, or the execution's memory */
  uint32_t key_len;
  const msgpack_object *orig;   /* in the snapshot, or NULL */
  nx_jsval_t value;             /* guest value once loaded or set */
  uint8_t loaded, read, deleted;
  int32_t change;               /* position in the change order, or -1 */
  uint32_t version;             /* bumped by every write and delete */
  /* At the end of a segment: the value's encoding as of snap_version. */
  nx_buf_t snap;
  uint32_t snap_version;
  uint8_t snapped, inplace;     /* inplace: a read object changed in place */
  /* The value the host was last told about, once a suspended result has
   * reported this key (before that, `orig` is the baseline). */
  uint8_t *base;
  size_t base_len;
  uint8_t has_base;
} nx_state_slot_t;

/* Result output the host applies (events, view commands, logs): encoded
 * entries, charged to the segment's result budget as they are written. */
typedef struct {
  nx_buf_t buf;
  uint32_t count;
} nx_out_list_t;

typedef enum {
  NX_HOSTCALL_STATE_GET,
  NX_HOSTCALL_STATE_SET,
  NX_HOSTCALL_EMIT,
  NX_HOSTCALL_VIEW,
  NX_HOSTCALL_LOG,
  NX_HOSTCALL__COUNT
} nx_hostcall_kind_t;

#define NX_SUSPENSION_ID_BYTES 16

/* What an execution starts from. */
typedef enum {
  NX_MODE_SOURCE,   /* handler source: compiled, or its bytecode from the cache */
  NX_MODE_BYTECODE, /* a precompileHandler() buffer */
  NX_MODE_COMPILE,  /* compile only: the result's returnValue is that buffer */
} nx_exec_mode_t;

/* Shared by every execution of a runtime; read-only once built. */
typedef struct {
  const nx_config_t *cfg;
  nx_cache_t *cache;         /* bytecode by source: memory and disk */
  char engine[200];          /* engine tag (compiler.h) */
  uint32_t heap_used_offset; /* of JSRuntime's malloc_size; 0: unknown */
} nx_engine_env_t;

/* One $ext call. `answered` belongs to the worker running the execution;
 * `published` and `claimed` to the runtime's lock (suspension table). */
typedef struct {
  uint8_t id[NX_SUSPENSION_ID_BYTES];
  char *ext, *method;    /* NUL-terminated, in the execution's memory */
  uint8_t *args;         /* MessagePack array, copied at call time */
  size_t args_len;
  uint64_t charge;       /* result bytes its entry takes while pending */
  uint8_t answered, published, claimed;
} nx_ext_call_t;

/* Host calls counted by name for metrics.hostCalls ("ext.http.get"). */
typedef struct {
  char *name;
  uint64_t count;
} nx_named_count_t;

/* How far the current segment is: which host functions still answer. */
typedef enum {
  NX_PHASE_RUN,    /* the handler runs: everything */
  NX_PHASE_FINISH, /* its result is being copied out: no new $ext call */
  NX_PHASE_CLOSED, /* nothing: only the host runs now */
} nx_phase_t;

/* Why a segment failed. Strings live in the execution's segment memory. */
typedef struct {
  nx_error_code_t code;
  char *message;
  char *stack;
  uint32_t line, column; /* 0 when unknown */
} nx_failure_t;

#define NX_HOST_ERRORS 8

struct nx_exec_s {
  nx_sandbox_t *sb;
  const nx_config_t *cfg;
  const nx_engine_env_t *env;
  nx_exec_mode_t mode;
  char *code;               /* owned: the source, or the precompiled buffer */
  size_t code_len;
  /* Every host byte of this execution: freed by nx_exec_free, whatever
   * way its segments ended. `seg` holds one segment's temporaries and is
   * released when the segment ends, a trap included. */
  nx_mem_t mem, seg;
  nx_budget_t budget;       /* this segment's result bytes: config.maxResultBytes */
  nx_failure_t fail;        /* this segment's failure, if any */
  nx_buf_t retval;          /* returnValue (or the precompiled buffer) */
  nx_blob_t *blob;          /* cached bytecode being read into the sandbox */
  msgpack_unpacked answer;  /* the host answer being decoded */
  uint64_t host_calls;      /* all segments, against config.maxHostCalls */
  nx_phase_t phase;
  uint8_t in_host;          /* a host function runs: refuse re-entry */
  nx_error_code_t fatal;    /* the execution must end with this (a limit) */
  char *fatal_msg;
  uint8_t *context;         /* owned: msgpack-c objects point into these bytes */
  size_t context_len;
  msgpack_unpacked ctx_msg; /* the decoded context; owns its zone */
  const msgpack_object *state, *args, *scope, *registry;
  nx_caps_t caps;
  int started;              /* the first segment ran */
  nx_jsval_t promise;       /* the handler's promise while suspended */
  uint64_t timeout_ns, run_ns; /* run time allowed and used so far */

  nx_ext_call_t *calls;
  uint32_t ncalls, calls_cap, nanswered;
  nx_named_count_t *ext_counts;
  uint32_t next_counts;

  nx_state_slot_t *slots;
  uint32_t nslots, slots_cap;
  uint32_t *index;          /* open addressing over slots, slot + 1 */
  uint32_t index_cap;
  uint32_t nchanges;

  nx_out_list_t events, views, logs;

  nx_jsval_t host_errors[NX_HOST_ERRORS]; /* errors the host threw, with codes */
  nx_error_code_t host_codes[NX_HOST_ERRORS];
  uint32_t nhost_errors;

  uint64_t hostcalls[NX_HOSTCALL__COUNT];
  uint64_t start_ns;         /* of the current segment */
  uint64_t interrupts0;
  uint64_t compile_us;
  int cache_hit;             /* the bytecode came from the compile cache */
  int cache_lookup;          /* the cache was asked (source mode) */

  /* Owned by the runtime, under its lock. */
  struct nx_exec_s *park_prev, *park_next; /* parked list, oldest first */
  uint64_t park_deadline_ns; /* discarded when not resumed by then */
  uint64_t parked_bytes;     /* sandbox memory while parked */
  struct nx_job_s *waiters;  /* resumes that arrived while a segment ran */
  uint8_t parked, busy, counted, doomed;
};

/* The host's answer to one pending call: MessagePack of the value, or of
 * the error message when !ok. */
typedef struct {
  uint32_t call;
  int ok;
  const uint8_t *bytes;
  size_t len;
} nx_answer_t;

typedef struct {
  nx_status_t status;
  nx_error_code_t code; /* NX_OK unless status is NX_STATUS_ERROR */
  uint64_t duration_us; /* this segment's */
  uint64_t compile_us;
  int cache;            /* -1: not asked; 0: miss; 1: hit (first segment only) */
} nx_exec_outcome_t;

/* A new execution of `code` (owned from here on, like `context`). */
nx_exec_t *nx_exec_new(nx_sandbox_t *sb, const nx_engine_env_t *env, nx_exec_mode_t mode,
                       char *code, size_t code_len, uint8_t *context, size_t context_len,
                       uint32_t timeout_ms);
/* Runs the next segment: the start, or a resume with the host's answers.
 * *out receives the MessagePack result (malloc'd, the caller frees it);
 * returns -1 only when even that could not be built. When the outcome is
 * not NX_STATUS_SUSPENDED the execution is over: free it. */
int nx_engine_run(nx_exec_t *ex, const nx_answer_t *answers, uint32_t nanswers,
                  char **out, size_t *out_len, nx_exec_outcome_t *outcome);
/* Frees the execution's host memory. The sandbox stays, holding whatever
 * the guest allocated until it is reset. */
void nx_exec_free(nx_exec_t *ex);

/* The 32 lowercase hex digits of a suspension id. */
void nx_exec_format_id(const uint8_t id[NX_SUSPENSION_ID_BYTES],
                       char hex[2 * NX_SUSPENSION_ID_BYTES + 1]);

/* "state.get", "emit", ...: the metrics.hostCalls keys. */
const char *nx_engine_hostcall_name(nx_hostcall_kind_t kind);

/* Builds a result for an execution that never reached a sandbox. */
int nx_engine_error_result(nx_error_code_t code, const char *message,
                           char **out, size_t *out_len);

#endif

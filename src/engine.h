/* The engine runs one execution in a sandbox: decode the context, compile
 * the handler, run it and its promise jobs under the deadline, and encode
 * the result (MessagePack, the contract's WasmResult) for the caller. */
#ifndef NX_ENGINE_H
#define NX_ENGINE_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#include "caps.h"
#include "config.h"
#include "errors.h"
#include "sandbox.h"

/* One top-level key of $state. Values load lazily: a handler that reads one
 * key of a 10 000-key state decodes one key. */
typedef struct {
  const char *key;
  uint32_t key_len;
  uint32_t owned_key;           /* key was malloc'd (added by the handler) */
  const msgpack_object *orig;   /* in the snapshot, or NULL */
  nx_jsval_t value;             /* guest value once loaded or set */
  uint8_t loaded, read, deleted;
  int32_t change;               /* position in the change order, or -1 */
} nx_state_slot_t;

/* A guest value that can only hold result output: the buffers the host
 * applies (events, view commands, logs). */
typedef struct {
  msgpack_sbuffer buf;
  msgpack_packer pk;
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

struct nx_exec_s {
  nx_sandbox_t *sb;
  const nx_config_t *cfg;
  msgpack_unpacked ctx_msg; /* the decoded context; owns its zone */
  const msgpack_object *state, *args, *scope;
  nx_caps_t caps;

  nx_state_slot_t *slots;
  uint32_t nslots, slots_cap;
  uint32_t *index;          /* open addressing over slots, slot + 1 */
  uint32_t index_cap;
  uint32_t nchanges;

  nx_out_list_t events, views, logs;
  uint64_t out_bytes, out_limit;
  int logs_truncated;

  nx_jsval_t host_errors[8];      /* errors the host threw, with codes */
  nx_error_code_t host_codes[8];
  uint32_t nhost_errors;

  uint64_t hostcalls[NX_HOSTCALL__COUNT];
  uint64_t start_ns;
  uint64_t interrupts0;
  int cache_hit;             /* the sandbox had this handler compiled */
};

typedef struct {
  const char *code;
  size_t code_len;
  const uint8_t *context;
  size_t context_len;
  uint32_t timeout_ms;
} nx_exec_request_t;

typedef struct {
  nx_error_code_t code; /* NX_OK on success */
  uint64_t duration_us;
  uint64_t compile_us;
} nx_exec_outcome_t;

/* Runs one execution. *out receives the MessagePack result (malloc'd, the
 * caller frees it); returns -1 only when even that could not be built.
 * Marks the sandbox broken when it must not be reused. */
int nx_engine_execute(nx_sandbox_t *sb, const nx_config_t *cfg,
                      const nx_exec_request_t *req, char **out, size_t *out_len,
                      nx_exec_outcome_t *outcome);

/* Builds a result for an execution that never reached a sandbox. */
int nx_engine_error_result(nx_error_code_t code, const char *message,
                           char **out, size_t *out_len);

#endif

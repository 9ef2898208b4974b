/* One execution of a handler as the engine layer keeps it between its
 * segments (the runtime sees it only through engine.h). Each group of
 * fields has one module that writes it, named above the group; the others
 * only read it. */
#ifndef NX_EXEC_H
#define NX_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "cache.h"
#include "caps.h"
#include "engine.h"
#include "failure.h"
#include "hostcalls.h"
#include "lazy.h"
#include "mem.h"
#include "result.h"
#include "sandbox.h"
#include "state.h"

/* How far the current segment is: which host functions still answer. */
typedef enum {
  NX_PHASE_RUN,    /* the handler runs: everything */
  NX_PHASE_FINISH, /* its result is being copied out: no new $ext call */
  NX_PHASE_CLOSED, /* nothing: only the host runs now */
} nx_phase_t;

/* One $ext call: made by hostcalls.c, answered through nx_host_answer(). */
typedef struct {
  uint8_t id[NX_SUSPENSION_ID_BYTES];
  char *ext, *method; /* NUL-terminated, in the execution's memory */
  uint8_t *args;      /* MessagePack array, copied at call time */
  size_t args_len;
  uint64_t charge; /* result bytes its entry takes while pending */
  uint8_t answered;
} nx_ext_call_t;

struct nx_exec_s {
  /* engine.c, when the execution is made and as its segments run */
  nx_sandbox_t *sb;
  const nx_engine_t *engine;
  const nx_config_t *cfg;
  nx_exec_mode_t mode;
  char *code; /* the source as given, or the precompiled buffer */
  size_t code_len;
  nx_lang_t lang;   /* the source's language; for TypeScript, what is compiled */
  uint8_t *context; /* everything below that reads the context points in here */
  size_t context_len;
  /* Every host byte of this execution: freed by nx_engine_exec_free,
   * whatever way its segments ended. `seg` holds one segment's
   * temporaries and is released when the segment ends, a trap included. */
  nx_mem_t mem, seg;
  /* Validated MessagePack inside `context` (NULL when absent): the caps
   * below point into it too. */
  const uint8_t *args, *scope, *registry_bytes;
  nx_caps_t caps;
  int started;                 /* the first segment ran */
  int sync;                    /* executeHandlerSync: it must not suspend */
  nx_jsval_t promise;          /* the handler's promise while suspended */
  uint64_t timeout_ns, run_ns; /* run time allowed and used so far */
  uint64_t start_ns;           /* of the current segment */
  uint64_t interrupts0;
  uint64_t compile_us;
  uint32_t heap_used; /* JSRuntime's malloc counter when the segment ended */
  nx_phase_t phase;
  nx_budget_t budget; /* this segment's result bytes: config.maxResultBytes */
  nx_buf_t retval;    /* returnValue (or the precompiled buffer) */
  nx_buf_t mutations; /* stateMutations, from state.c */

  /* loader.c */
  nx_blob_t *blob;  /* cached bytecode being read into the sandbox */
  int cache_hit;    /* the bytecode came from the compile cache */
  int cache_lookup; /* the cache was asked (source mode) */

  /* failure.c */
  nx_failure_t fail;

  /* state.c */
  nx_state_t state;

  /* lazy.c */
  nx_lazy_table_t lazy;

  /* result.c */
  nx_output_t out;

  /* hostcalls.c */
  nx_ext_call_t *calls;
  uint32_t ncalls, calls_cap, nanswered;
  nx_host_count_t *counts; /* this segment's host calls by metric name */
  uint32_t ncounts, counts_cap;
  uint64_t host_calls; /* all segments, against config.maxHostCalls */
  uint8_t in_host;     /* a host function runs: refuse re-entry */
};

/* engine.c: reads the context's fields (a new execution's first segment
 * does, and an imported one before its tables are restored). */
int nx_engine_parse_context(nx_exec_t *ex);
/* engine.c: the result of an execution restored from elsewhere: suspended
 * on its pending calls, with no effects (portable.h). Malloc'd. */
int nx_engine_suspended_result(nx_exec_t *ex, char **out, size_t *out_len);

#endif

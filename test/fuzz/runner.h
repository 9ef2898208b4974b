/* Support shared by the libFuzzer harnesses (not a harness itself): a
 * reader of input bytes as choices, an independent MessagePack reader for
 * checking results, and a driver that runs jobs through the real runtime
 * (src/runtime.h) one at a time and waits for each result. */
#ifndef FZ_RUNNER_H
#define FZ_RUNNER_H

#include <stddef.h>
#include <stdint.h>

#include "runtime.h"

/* ---- input bytes as choices -------------------------------------------- */

typedef struct {
  const uint8_t *p;
  size_t len, at;
} fz_bytes_t;

/* A choice in [0, n): the next input byte modulo n, or 0 once the input is
 * used up (so the first option of every table must end the recursion). */
unsigned fz_pick(fz_bytes_t *in, unsigned n);

/* ---- failures and notes --------------------------------------------------- */

/* Reports a broken contract and aborts, so libFuzzer saves the input. */
void fz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* Prints an unexpected but non-fatal outcome, once per distinct key. */
void fz_note(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- MessagePack, read without the project's code ---------------------------- */

/* One complete, well-formed value, at any nesting depth (the runtime's
 * results may nest past the validator's limit). */
int fz_mp_wellformed(const uint8_t *buf, size_t len);

/* One item as that reader sees it: a scalar or str/bin/ext whole, a
 * container's header only. For checking the project's cursor (mpack.h). */
typedef enum {
  FZ_MP_NIL,
  FZ_MP_BOOL,
  FZ_MP_INT,
  FZ_MP_FLOAT,
  FZ_MP_STR,
  FZ_MP_BIN,
  FZ_MP_EXT,
  FZ_MP_ARRAY,
  FZ_MP_MAP
} fz_mp_kind_t;

typedef struct {
  fz_mp_kind_t kind;
  uint64_t count;      /* array items or map pairs */
  const uint8_t *data; /* str / bin / ext payload */
  size_t size;
} fz_mp_item_t;

/* Reads the item at the start of buf: its length in bytes, 0 when it is
 * malformed or cut short. */
size_t fz_mp_item(const uint8_t *buf, size_t len, fz_mp_item_t *it);

#define FZ_MAX_PENDING 64

/* What the harnesses check and use of a WasmResult. */
typedef struct {
  char status[16];       /* "success", "error" or "suspended" */
  char code[32];         /* error.code, for errors */
  char message[160];     /* error.message (cut), for errors */
  const uint8_t *retval; /* returnValue's bytes when it is a bin */
  size_t retval_len;
  uint32_t npending; /* pendingCalls listed (at most FZ_MAX_PENDING kept) */
  uint8_t ids[FZ_MAX_PENDING][NX_SUSPENSION_ID_BYTES];
} fz_result_t;

/* Checks a result against the contract (fz_fail() when it breaks it) and
 * fills *out. */
void fz_result_check(const char *buf, size_t len, fz_result_t *out);

/* ---- the runtime ------------------------------------------------------------ */

/* The harnesses' configuration: one worker, small limits, short timeouts,
 * bounds checks (guard pages would take libFuzzer's own SIGSEGV: see
 * scripts/fuzz.sh). */
void fz_config(nx_config_t *cfg);

/* Starts the runtime once for the whole fuzzing session. */
void fz_runtime_start(const nx_config_t *cfg);
/* That runtime, for the calls a harness makes itself. */
nx_runtime_t *fz_runtime(void);

/* Runs one execution to its first result. `code` and `context` are copied
 * into the job (the job owns malloc'd copies, as the addon's jobs do). The
 * returned job is completed: free it with nx_job_free(). */
nx_job_t *fz_execute(nx_exec_mode_t mode, const void *code, size_t code_len, const uint8_t *context,
                     size_t context_len);

/* Imports exported bytes (src/transfer.c) on this thread when a sandbox is
 * idle, else as a job; returns the completed job: its result is the
 * suspended result, or reject_code says why the bytes were refused. */
nx_job_t *fz_import(const uint8_t *bytes, size_t len);

/* Checks a completed job's result and, while it is suspended, resumes it
 * with answers chosen by `in` or cancels it, so no suspended execution is
 * left behind. Frees the job. */
void fz_finish(nx_job_t *job, fz_bytes_t *in);

/* The runtime's engine tag, read from the header of a precompiled trivial
 * handler (the runtime keeps its own copy private). */
void fz_engine_tag(char *out, size_t outlen);

/* A context map as src/addon.c receives it (msgpackr's encoding of the
 * seven fields), malloc'd into *out. `caps` are capability tokens. */
void fz_context(const char *const *caps, size_t ncaps, uint8_t **out, size_t *out_len);

#endif

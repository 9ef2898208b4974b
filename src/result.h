/* What a segment gives back: the output lists host functions append to
 * (events, view commands, logs), values copied out of the guest for the
 * result, and the WasmResult itself, MessagePack as msgpackr reads it. */
#ifndef NX_RESULT_H
#define NX_RESULT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "errors.h"
#include "guest.h"

typedef struct nx_exec_s nx_exec_t;
typedef struct nx_sandbox_s nx_sandbox_t;

/* Encoded entries, charged to the segment's budget as they are written. */
typedef struct {
  nx_buf_t buf;
  uint32_t count;
} nx_out_list_t;

typedef struct {
  nx_out_list_t events, views, logs;
} nx_output_t;

/* Binds the lists to the execution's memory and budget. */
void nx_result_init(nx_exec_t *ex);
/* Each result reports what happened since the previous one. */
void nx_result_begin_segment(nx_exec_t *ex);

/* An entry is written at the end of a list from the mark nx_result_begin
 * returns; nx_result_commit counts it, or, when the budget refused a byte,
 * removes it and ends the execution (RESOURCE_LIMIT naming `path`): a list
 * never holds half an entry. 0 or NX_RC_NOMEM / NX_RC_INVALID. */
size_t nx_result_begin(nx_out_list_t *list);
int nx_result_commit(nx_sandbox_t *sb, nx_out_list_t *list, size_t mark, const char *path);

/* Encodes a result value into `out` from the engine (not a host function):
 * strictly first; a value that needs guest code to read is copied by the
 * bootstrap (getters run, and may change $state) and the copy encoded.
 * No pointer into the execution may be held across this call. 0, or a
 * negative nx_rc_t with the segment's failure set. */
int nx_result_encode(nx_exec_t *ex, nx_jsval_t v, nx_buf_t *out, const char *path);

/* Encodes `v` into `out` for a host function: 1 done, 0 the value needs
 * the bootstrap's copy() first (when `copied` says it has not had one),
 * -1 after throwing in the guest. On failure `out` is back at `mark`. */
int nx_result_encode_call(nx_sandbox_t *sb, nx_buf_t *out, size_t mark, nx_jsval_t v,
                          const char *path, int copied);

/* The WasmResult of a segment, in a malloc'd buffer for the caller. Host
 * work only: the guest is not touched. */
int nx_result_finish(nx_exec_t *ex, nx_status_t status, uint64_t duration_us, uint64_t compile_us,
                     char **out, size_t *out_len);
/* The result of an execution that never reached a sandbox. */
int nx_result_error(nx_error_code_t code, const char *message, char **out, size_t *out_len);

#endif

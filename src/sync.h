/* executeHandlerSync: one segment run on the calling thread, for handlers
 * that do not suspend. Same engine, limits and isolation as a job: the
 * sandbox comes from a small set of the runtime's own, is pristine when
 * taken, and is reset afterwards by a worker, off the caller's time. */
#ifndef NX_SYNC_H
#define NX_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "runtime.h"

/* Runs code (mode as for a job) with context on this thread. *out gets the
 * MessagePack WasmResult (malloc'd). 0, NX_RC_STOPPING after shutdown, or
 * NX_RC_NOMEM / NX_RC_INVALID (*out then holds an error result if any). */
int nx_sync_execute(nx_runtime_t *rt, nx_exec_mode_t mode, char *code, size_t code_len,
                    nx_lang_t *lang, uint8_t *context, size_t context_len, uint32_t timeout_ms,
                    char **out, size_t *out_len);

#endif

/* Getting a handler's function into a sandbox: compile its source (or read
 * the compile cache's bytecode for it), or check and read a precompiled
 * buffer. Bytecode is only ever parsed inside the sandbox. */
#ifndef NX_LOADER_H
#define NX_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "guest.h"
#include "sandbox.h"

typedef struct nx_exec_s nx_exec_t;

/* The handler function (a new reference), or NX_EXCEPTION with the
 * segment's failure set. In compile mode *packed receives the
 * precompileHandler() buffer (segment memory). */
nx_jsval_t nx_loader_load(nx_exec_t *ex, uint8_t **packed, size_t *packed_len);

/* Right after a reset, reads in the handler the sandbox's last execution
 * loaded from source (its bytecode from the compile cache's memory), so
 * that the next execution, if it runs the same handler, starts without
 * reading it. Nothing happens when there is none or it is no longer
 * cached; a failure leaves no function behind, and a trap sets
 * sb->broken. Must run on a thread that set its wasm depth limit. */
void nx_loader_preload(nx_sandbox_t *sb, const nx_engine_t *engine);

#endif

/* Getting a handler's function into a sandbox: compile its source (or read
 * the compile cache's bytecode for it), or check and read a precompiled
 * buffer. Bytecode is only ever parsed inside the sandbox. */
#ifndef NX_LOADER_H
#define NX_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "guest.h"

typedef struct nx_exec_s nx_exec_t;

/* The handler function (a new reference), or NX_EXCEPTION with the
 * segment's failure set. In compile mode *packed receives the
 * precompileHandler() buffer (segment memory). */
nx_jsval_t nx_loader_load(nx_exec_t *ex, uint8_t **packed, size_t *packed_len);

#endif

/* Precompiled handlers: the format of the buffer precompileHandler() returns
 * (a header naming the engine it was compiled for, then QuickJS bytecode),
 * and the key under which the compile cache keeps a source's bytecode. The
 * bytecode itself is only ever parsed inside a sandbox. */
#ifndef NX_COMPILER_H
#define NX_COMPILER_H

#include <stddef.h>
#include <stdint.h>

#include "mem.h"

#define NX_COMPILER_FORMAT 2

/* "quickjs-wasi 3.6.2; quickjs-ng 0.10.1; bootstrap 1a2b...": bytecode
 * from one engine build means nothing to another. */
void nx_compiler_engine_tag(char *out, size_t outlen, const char *qjs_version);

/* SHA-256 over the engine tag, the source's language ("js", "ts") and the
 * source as given: a TypeScript source and the same bytes as JavaScript
 * are different handlers. */
void nx_compiler_key(const char *engine, const char *language, const char *code, size_t code_len,
                     uint8_t key[32]);

/* Header + bytecode in one buffer from `mem`; -1 on allocation failure. */
int nx_compiler_pack(nx_mem_t *mem, const char *engine, const char *code, size_t code_len,
                     const uint8_t *bc, size_t bc_len, uint8_t **out, size_t *out_len);

/* Checks a precompiled buffer: NULL and the bytecode's place in buf when it
 * is sound, else a message naming the check that failed. */
const char *nx_compiler_unpack(const char *engine, const uint8_t *buf, size_t len,
                               const uint8_t **bc, size_t *bc_len);

#endif

/* Runtime configuration as the native layer sees it. lib/index.js checks
 * the user's object against src/contract.js; the addon checks it again
 * against the same table (contract.h) and fills in this struct. */
#ifndef NX_CONFIG_H
#define NX_CONFIG_H

#include <stdint.h>

#include "contract.h"

typedef struct {
#define NX_CONFIG_MEMBER(js, member, min, max, def) uint64_t member;
  NX_CONFIG_INTEGERS(NX_CONFIG_MEMBER)
#undef NX_CONFIG_MEMBER
#define NX_CONFIG_MEMBER(js, member, names, count, def) uint32_t member;
  NX_CONFIG_CHOICES(NX_CONFIG_MEMBER) /* the value's index: NX_MEMORY_CHECK_GUARD, ... */
#undef NX_CONFIG_MEMBER
  char cache_dir[4096]; /* "" = no disk cache */
} nx_config_t;

/* The contract's defaults; workers from the online CPUs, maxInstances
 * twice the workers. */
void nx_config_defaults(nx_config_t *cfg);

/* Shadow-stack budget QuickJS may use before it throws RangeError. The wasm
 * module places its 1 MiB stack below its data; keep room for C frames. */
#define NX_JS_MAX_STACK (768u * 1024u)

/* Linear memory reserved per sandbox: the heap limit plus the module's
 * stack and static data, plus allocator slack. */
uint64_t nx_config_memory_reserve(const nx_config_t *cfg);

/* How many nested wasm calls fit in a worker's native stack. The largest
 * frame wasm2c emits for this module is ~600 bytes (gcc -fstack-usage);
 * budget 768 and keep 256 KiB for the host's own frames. */
uint32_t nx_config_wasm_depth(const nx_config_t *cfg);

#endif

/* Runtime configuration as the native layer sees it. lib/index.js validates
 * the user's object (types, ranges, unknown fields); this struct holds the
 * result, with defaults filled in by nx_config_defaults(). */
#ifndef NX_CONFIG_H
#define NX_CONFIG_H

#include <stdint.h>

typedef struct {
  uint32_t workers;            /* worker threads */
  uint32_t max_instances;      /* sandboxes alive at most */
  uint32_t min_instances;      /* sandboxes created up front */
  uint64_t memory_limit;       /* QuickJS heap limit per sandbox, bytes */
  uint64_t stack_size;         /* worker thread stack, bytes */
  uint32_t default_timeout_ms; /* used when a call passes 0 */
  uint32_t suspension_timeout_ms; /* parked executions not resumed by then are dropped */
  uint32_t max_suspended;      /* parked executions at most */
  uint64_t max_cache_bytes;    /* compile cache in memory */
  uint64_t max_disk_cache_bytes; /* compile cache on disk; 0 = unbounded */
  uint64_t max_result_bytes;   /* encoded result of one segment, at most */
  uint32_t max_host_calls;     /* host calls of one execution, at most */
  char cache_dir[4096];        /* "" = no disk cache */
} nx_config_t;

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

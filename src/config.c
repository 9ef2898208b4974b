/* Defaults and derived limits of the runtime configuration. */
#include "config.h"

#include <unistd.h>

void nx_config_defaults(nx_config_t *cfg) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  cfg->workers = cpus > 0 ? (uint32_t)cpus : 1;
  cfg->max_instances = cfg->workers * 2;
  cfg->min_instances = 0;
  cfg->memory_limit = 32u << 20;
  cfg->stack_size = 8u << 20;
  cfg->default_timeout_ms = 5000;
  cfg->suspension_timeout_ms = 30000;
  cfg->max_suspended = 1000;
  cfg->max_cache_bytes = 64u << 20;
  cfg->max_disk_cache_bytes = 0;
  cfg->max_result_bytes = 8u << 20;
  cfg->max_host_calls = 10000;
  cfg->cache_dir[0] = 0;
}

uint64_t nx_config_memory_reserve(const nx_config_t *cfg) {
  uint64_t bytes = cfg->memory_limit + (4u << 20);
  return (bytes + 65535) & ~(uint64_t)65535;
}

uint32_t nx_config_wasm_depth(const nx_config_t *cfg) {
  uint64_t usable = cfg->stack_size > (512u << 10) ? cfg->stack_size - (256u << 10)
                                                   : cfg->stack_size / 2;
  return (uint32_t)(usable / 768);
}

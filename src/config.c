/* Defaults and derived limits of the runtime configuration. */
#include "config.h"

#include <string.h>
#include <unistd.h>

void nx_config_defaults(nx_config_t *cfg) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  memset(cfg, 0, sizeof *cfg);
#define NX_CONFIG_DEFAULT(js, member, min, max, def) cfg->member = def;
  NX_CONFIG_INTEGERS(NX_CONFIG_DEFAULT)
#undef NX_CONFIG_DEFAULT
#define NX_CONFIG_DEFAULT(js, member, names, count, def) cfg->member = def;
  NX_CONFIG_CHOICES(NX_CONFIG_DEFAULT)
#undef NX_CONFIG_DEFAULT
  cfg->workers = cpus > 0 ? (uint64_t)cpus : 1;
  cfg->max_instances = cfg->workers * 2;
}

uint64_t nx_config_memory_reserve(const nx_config_t *cfg) {
  uint64_t bytes = cfg->memory_limit + (4u << 20);
  return (bytes + 65535) & ~(uint64_t)65535;
}

uint32_t nx_config_wasm_depth(const nx_config_t *cfg) {
  uint64_t usable =
      cfg->stack_size > (512u << 10) ? cfg->stack_size - (256u << 10) : cfg->stack_size / 2;
  return (uint32_t)(usable / 768);
}

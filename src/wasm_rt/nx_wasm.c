/* The wasm_rt_* functions that wasm2c-generated code calls, written for a
 * host process we do not own: no process-wide trap state. Traps unwind to
 * the calling thread's innermost NX_WASM_TRY; so do faults in a guard-variant
 * memory, through nx_fault.c's handler. */
#include "nx_wasm.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define NX_WASM_PAGE 65536u

__thread uint32_t nx_wasm_depth __attribute__((tls_model("initial-exec"))) =
    NX_WASM_DEPTH_CEILING - 1000;
__thread nx_wasm_guard_t *nx_wasm_guard_top __attribute__((tls_model("initial-exec")));
static __thread uint64_t next_memory_max = (uint64_t)NX_WASM_PAGE * 65536u;

void nx_wasm_thread_set_depth_limit(uint32_t limit) {
  if (limit > NX_WASM_DEPTH_CEILING / 2) limit = NX_WASM_DEPTH_CEILING / 2;
  nx_wasm_depth = NX_WASM_DEPTH_CEILING - limit;
}

void nx_wasm_set_next_memory_max(uint64_t bytes) { next_memory_max = bytes; }

void nx_wasm_unwind(nx_wasm_guard_t *g, int trap) {
  nx_wasm_guard_top = g->prev;
  nx_wasm_depth = g->depth;
  siglongjmp(g->env, trap == WASM_RT_TRAP_NONE ? 1 : trap);
}

void wasm_rt_trap(wasm_rt_trap_t code) {
  nx_wasm_guard_t *g = nx_wasm_guard_top;
  if (g == NULL) {
    /* Only reachable through a bug in the addon: wasm ran unguarded. */
    fprintf(stderr, "nexus-wasm-bridge: wasm trap %d outside a guard\n", code);
    abort();
  }
  nx_wasm_unwind(g, (int)code);
}

const char *nx_wasm_trap_name(int trap) {
  switch (trap) {
    case WASM_RT_TRAP_OOB: return "out-of-bounds memory access";
    case WASM_RT_TRAP_INT_OVERFLOW: return "integer overflow";
    case WASM_RT_TRAP_DIV_BY_ZERO: return "integer divide by zero";
    case WASM_RT_TRAP_INVALID_CONVERSION: return "invalid conversion";
    case WASM_RT_TRAP_UNREACHABLE: return "unreachable executed";
    case WASM_RT_TRAP_CALL_INDIRECT: return "invalid indirect call";
    case WASM_RT_TRAP_UNCAUGHT_EXCEPTION: return "uncaught wasm exception";
    case WASM_RT_TRAP_EXHAUSTION: return "call stack exhausted";
    default: return "unknown trap";
  }
}

const char *wasm_rt_strerror(wasm_rt_trap_t trap) { return nx_wasm_trap_name((int)trap); }

/* Function types are registered while the module initialises (once, under
 * pthread_once in the sandbox module); ids must be stable and equal for equal
 * signatures, since call_indirect compares them. */
typedef struct {
  uint32_t params, results;
  wasm_rt_type_t types[32];
} func_type_t;

static pthread_mutex_t types_lock = PTHREAD_MUTEX_INITIALIZER;
static func_type_t *types;
static uint32_t types_len, types_cap;

uint32_t wasm_rt_register_func_type(uint32_t params, uint32_t results, ...) {
  func_type_t t;
  va_list ap;
  uint32_t i, id = 0;

  if (params + results > 32) {
    fprintf(stderr, "nexus-wasm-bridge: function type too wide\n");
    abort();
  }
  memset(&t, 0, sizeof t);
  t.params = params;
  t.results = results;
  va_start(ap, results);
  for (i = 0; i < params + results; i++) t.types[i] = va_arg(ap, wasm_rt_type_t);
  va_end(ap);

  pthread_mutex_lock(&types_lock);
  for (i = 0; i < types_len; i++)
    if (memcmp(&types[i], &t, sizeof t) == 0) goto done;
  if (types_len == types_cap) {
    uint32_t cap = types_cap ? types_cap * 2 : 128;
    func_type_t *n = realloc(types, cap * sizeof *n);
    if (n == NULL) {
      fprintf(stderr, "nexus-wasm-bridge: out of memory registering types\n");
      abort();
    }
    types = n;
    types_cap = cap;
  }
  types[types_len++] = t;
done:
  id = i + 1; /* 0 is the null funcref's type */
  pthread_mutex_unlock(&types_lock);
  return id;
}

void wasm_rt_init(void) {}
bool wasm_rt_is_initialized(void) { return true; }
void wasm_rt_free(void) {}

/* Reserves `reserve` bytes PROT_NONE and commits the initial pages; traps
 * (the caller is under a guard) when the address space is not there. */
static void allocate(wasm_rt_memory_t *mem, uint32_t initial_pages, uint32_t max_pages,
                     uint64_t reserve) {
  uint64_t limit_pages = next_memory_max / NX_WASM_PAGE;
  uint8_t *data;

  if (limit_pages < max_pages) max_pages = (uint32_t)limit_pages;
  if (initial_pages > max_pages) max_pages = initial_pages;
  if (reserve == 0) reserve = (uint64_t)max_pages * NX_WASM_PAGE;
  mem->data = NULL;
  mem->pages = mem->max_pages = mem->size = 0;

  data = mmap(NULL, (size_t)reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (data == MAP_FAILED) wasm_rt_trap(WASM_RT_TRAP_OOB);
  if (initial_pages &&
      mprotect(data, (size_t)initial_pages * NX_WASM_PAGE, PROT_READ | PROT_WRITE) != 0) {
    munmap(data, (size_t)reserve);
    wasm_rt_trap(WASM_RT_TRAP_OOB);
  }
  mem->data = data;
  mem->pages = initial_pages;
  mem->max_pages = max_pages;
  mem->size = initial_pages * NX_WASM_PAGE;
}

void wasm_rt_allocate_memory(wasm_rt_memory_t *mem, uint32_t initial_pages, uint32_t max_pages) {
  allocate(mem, initial_pages, max_pages, 0);
}

/* The guard variant's memory: the same commit limit (max_pages, from
 * memoryLimitBytes), inside a reservation that covers every address its
 * code can form. The part past the committed pages stays PROT_NONE. */
void nx_wasm_guard_allocate_memory(wasm_rt_memory_t *mem, uint32_t initial_pages,
                                   uint32_t max_pages) {
  allocate(mem, initial_pages, max_pages, NX_WASM_GUARD_RESERVE);
}

/* Commits pages up to max_pages: the limit is the same in both variants,
 * and so is the page-granular protection past it. */
uint32_t wasm_rt_grow_memory(wasm_rt_memory_t *mem, uint32_t delta) {
  uint32_t old = mem->pages;
  uint64_t pages = (uint64_t)old + delta;

  if (pages > mem->max_pages) return (uint32_t)-1;
  if (delta && mprotect(mem->data + (size_t)old * NX_WASM_PAGE, (size_t)delta * NX_WASM_PAGE,
                        PROT_READ | PROT_WRITE) != 0)
    return (uint32_t)-1;
  mem->pages = (uint32_t)pages;
  mem->size = (uint32_t)(pages * NX_WASM_PAGE); /* wraps only at 4 GiB */
  return old;
}

void wasm_rt_free_memory(wasm_rt_memory_t *mem) {
  if (mem->data) munmap(mem->data, (size_t)mem->max_pages * NX_WASM_PAGE);
  mem->data = NULL;
  mem->pages = mem->max_pages = mem->size = 0;
}

void nx_wasm_guard_free_memory(wasm_rt_memory_t *mem) {
  if (mem->data) munmap(mem->data, (size_t)NX_WASM_GUARD_RESERVE);
  mem->data = NULL;
  mem->pages = mem->max_pages = mem->size = 0;
}

void wasm_rt_allocate_funcref_table(wasm_rt_funcref_table_t *table, uint32_t elements,
                                    uint32_t max_elements) {
  (void)max_elements;
  table->data = calloc(elements ? elements : 1, sizeof(wasm_rt_funcref_t));
  if (table->data == NULL) wasm_rt_trap(WASM_RT_TRAP_OOB);
  table->size = elements;
  table->max_size = elements; /* QuickJS never grows its table */
}

void wasm_rt_free_funcref_table(wasm_rt_funcref_table_t *table) {
  free(table->data);
  table->data = NULL;
  table->size = table->max_size = 0;
}

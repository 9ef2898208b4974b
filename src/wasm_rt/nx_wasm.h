/* Host-side control of the wasm2c runtime: per-thread trap recovery, the
 * per-thread call-depth budget and reserved linear memories. */
#ifndef NX_WASM_H
#define NX_WASM_H

#include <setjmp.h>
#include <stdint.h>

#include <wasm-rt.h>

/* One guarded region per thread. nx_wasm_trap() longjmps to the innermost
 * target; a trap with no target aborts, which would be our bug, never a
 * handler's: every entry into wasm goes through NX_WASM_TRY. */
typedef struct nx_wasm_guard_s {
  jmp_buf env;
  struct nx_wasm_guard_s *prev;
  uint32_t depth; /* counter value to restore when a trap unwinds */
} nx_wasm_guard_t;

extern __thread nx_wasm_guard_t *nx_wasm_guard_top __attribute__((tls_model("initial-exec")));

/* Usage:  nx_wasm_guard_t g;  int trap = NX_WASM_TRY(&g);
 *         if (trap == 0) { ...wasm calls...; nx_wasm_leave(&g); }
 *                                  else { trap is the wasm_rt_trap_t; the guard is already left }
 */
#define NX_WASM_TRY(g) (nx_wasm_enter(g), setjmp((g)->env))

static inline void nx_wasm_enter(nx_wasm_guard_t *g) {
  g->prev = nx_wasm_guard_top;
  g->depth = nx_wasm_depth;
  nx_wasm_guard_top = g;
}

static inline void nx_wasm_leave(nx_wasm_guard_t *g) { nx_wasm_guard_top = g->prev; }

/* Sets how many nested wasm calls this thread may make. */
void nx_wasm_thread_set_depth_limit(uint32_t limit);

/* Linear memories are reserved at their maximum once (PROT_NONE) and committed
 * as the guest grows them, so the data pointer never moves. The maximum for
 * the next instantiation on this thread is taken from here. */
void nx_wasm_set_next_memory_max(uint64_t bytes);

/* Human-readable name of a trap, for INTERNAL_ERROR messages. */
const char *nx_wasm_trap_name(int trap);

#endif

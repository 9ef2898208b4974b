/* Host-side control of the wasm2c runtime: per-thread trap recovery, the
 * per-thread call-depth budget, reserved linear memories, and the two
 * compiled variants of the engine (bounds checks, guard pages). */
#ifndef NX_WASM_H
#define NX_WASM_H

#include <setjmp.h>
#include <stdint.h>

#include <wasm-rt.h>

/* A guard-variant memory reserves this much address space: any address the
 * generated code can form is base + a 32-bit index + a 32-bit offset
 * (< 8 GiB), plus up to 8 bytes of access, so every out-of-bounds access
 * lands in the reservation's PROT_NONE part. 64 KiB covers the access size
 * and keeps the length a whole wasm page. */
#define NX_WASM_GUARD_RESERVE ((UINT64_C(1) << 33) + 65536u)

/* One guarded region per thread. A trap longjmps to the innermost target; a
 * trap with no target aborts, which would be our bug, never a handler's:
 * every entry into wasm goes through NX_WASM_TRY. `mem` is the guard-variant
 * memory of the sandbox the region runs (NULL for the bounds variant): a
 * fault inside its reservation is that sandbox's trap (nx_fault.c). */
typedef struct nx_wasm_guard_s {
  sigjmp_buf env;
  struct nx_wasm_guard_s *prev;
  const wasm_rt_memory_t *mem;
  uint32_t depth; /* counter value to restore when a trap unwinds */
} nx_wasm_guard_t;

extern __thread nx_wasm_guard_t *nx_wasm_guard_top __attribute__((tls_model("initial-exec")));

/* Usage:  nx_wasm_guard_t g;  int trap = NX_WASM_TRY(&g, mem);
 *         if (trap == 0) { ...wasm calls...; nx_wasm_leave(&g); }
 *                                  else { trap is the wasm_rt_trap_t; the guard is already left }
 * sigsetjmp(, 0) saves no signal mask (no system call): the fault handler
 * restores the interrupted mask itself before it jumps. */
#define NX_WASM_TRY(g, mem) (nx_wasm_enter((g), (mem)), sigsetjmp((g)->env, 0))

static inline void nx_wasm_enter(nx_wasm_guard_t *g, const wasm_rt_memory_t *mem) {
  g->prev = nx_wasm_guard_top;
  g->mem = mem;
  g->depth = nx_wasm_depth;
  nx_wasm_guard_top = g;
  /* The fault handler reads the guard on this thread: it must be in place
   * before the first access it covers, and stay until the last. */
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static inline void nx_wasm_leave(nx_wasm_guard_t *g) {
  __atomic_signal_fence(__ATOMIC_SEQ_CST);
  nx_wasm_guard_top = g->prev;
}

/* Leaves guard g and jumps to it with `trap` (async-signal-safe). */
__attribute__((noreturn)) void nx_wasm_unwind(nx_wasm_guard_t *g, int trap);

/* Sets how many nested wasm calls this thread may make. */
void nx_wasm_thread_set_depth_limit(uint32_t limit);

/* Linear memories are reserved once (PROT_NONE) and committed as the guest
 * grows them, so the data pointer never moves. `bytes` is the most the next
 * instantiation on this thread may grow to. The bounds variant reserves just
 * that; the guard variant reserves NX_WASM_GUARD_RESERVE whatever the
 * maximum, and commits the same way. */
void nx_wasm_set_next_memory_max(uint64_t bytes);

/* The guard variant's memory functions (wasm-rt.h renames them for it). */
void nx_wasm_guard_allocate_memory(wasm_rt_memory_t *mem, uint32_t initial_pages,
                                   uint32_t max_pages);
void nx_wasm_guard_free_memory(wasm_rt_memory_t *mem);

/* Human-readable name of a trap, for INTERNAL_ERROR messages. */
const char *nx_wasm_trap_name(int trap);

#endif

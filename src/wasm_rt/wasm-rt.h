/* Our view of wabt's wasm-rt.h: the generated QuickJS code includes this file
 * (src/wasm_rt is first on the include path). It fixes the runtime's build
 * options for the two variants the addon carries (NX_WASM_GUARD, see
 * qjs_variant.c) and turns the call-depth counter into a thread-local,
 * because several sandboxes run wasm on several threads at once. */
#ifndef NX_WASM_RT_H
#define NX_WASM_RT_H

/* NX_WASM_GUARD=1 compiles the engine without bounds checks on loads and
 * stores: its memories are reserved with guard pages (nx_wasm.c) and an
 * access outside the committed part faults into nx_fault.c's handler.
 * Everywhere else (the bounds variant, and the host's own files) each access
 * is checked against the memory's size and no signal is involved. */
#ifndef NX_WASM_GUARD
#define NX_WASM_GUARD 0
#endif
#if NX_WASM_GUARD
#define WASM_RT_MEMCHECK_SIGNAL_HANDLER 1
/* The guard variant's memories are 8 GiB reservations: it calls memory
 * functions of its own. Growing is the same for both (commit up to
 * max_pages), so wasm_rt_grow_memory is shared. */
#define wasm_rt_allocate_memory nx_wasm_guard_allocate_memory
#define wasm_rt_free_memory nx_wasm_guard_free_memory
#else
#define WASM_RT_MEMCHECK_SIGNAL_HANDLER 0
#endif
/* Both variants count call depth against a per-thread budget, so deep guest
 * recursion traps well before the native stack ends. In the guard variant
 * the counter takes about a fifth of fib(25)'s time, but without it the
 * depth recursion reaches follows the real frame sizes (the stack's guard
 * page, which the fault handler also turns into this trap, nx_fault.c), and
 * what deep recursion does then differs between the modes: QuickJS's
 * JSON.stringify of a 100 000-deep array times out instead of throwing. */
#define WASM_RT_USE_STACK_DEPTH_COUNT 1

/* The generated prologue compares the counter with this constant. A thread
 * starts its counter at NX_WASM_DEPTH_CEILING - limit, so the effective limit
 * is per thread (it follows the thread's stack size) at no extra cost. */
#define NX_WASM_DEPTH_CEILING 0x40000000u
#define WASM_RT_MAX_CALL_STACK_DEPTH NX_WASM_DEPTH_CEILING

/* The system header declares `extern uint32_t wasm_rt_call_stack_depth;`.
 * Let that declaration name a symbol nobody defines, then point the name the
 * generated code uses at our thread-local. */
#define wasm_rt_call_stack_depth nx_wasm_unused_depth_decl
#include_next <wasm-rt.h>
#undef wasm_rt_call_stack_depth

/* initial-exec: with the default TLS model for a dlopen()ed .node every wasm
 * function prologue calls __tls_get_addr (fib(25) 29 ms instead of 19 ms). */
extern __thread uint32_t nx_wasm_depth __attribute__((tls_model("initial-exec")));
#define wasm_rt_call_stack_depth nx_wasm_depth

#endif

/* Our view of wabt's wasm-rt.h: the generated QuickJS code includes this file
 * (src/wasm_rt is first on the include path). It fixes the runtime's build
 * options and turns the call-depth counter into a thread-local, because
 * several sandboxes run wasm on several threads at once. */
#ifndef NX_WASM_RT_H
#define NX_WASM_RT_H

/* Explicit bounds checks: V8 owns SIGSEGV in a Node process (design #3). */
#define WASM_RT_MEMCHECK_SIGNAL_HANDLER 0
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

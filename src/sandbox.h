/* One sandbox: a wasm2c QuickJS instance with its own linear memory, one
 * QuickJS runtime and context, and the bootstrap that defines the handler
 * globals; plus the helpers that move bytes, values and out-parameters
 * across the guest's memory. The imports the instance calls live in
 * imports.c, above this module. */
#ifndef NX_SANDBOX_H
#define NX_SANDBOX_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "guest.h"
#include "mem.h"

typedef struct nx_sandbox_s nx_sandbox_t;
typedef struct nx_exec_s nx_exec_t;

/* The WASI instance struct wasm2c leaves to the embedder (the env one is in
 * guest.h): imports receive it. */
struct Z_wasi_snapshot_preview1_instance_t {
  nx_sandbox_t *sb;
};

struct nx_sandbox_s {
  nx_wasm_instance_t inst;
  struct Z_env_instance_t env_imports;
  struct Z_wasi_snapshot_preview1_instance_t wasi_imports;
  uint32_t ctx; /* JSContext * inside the guest */
  uint32_t qrt; /* JSRuntime * inside the guest */
  /* What the bootstrap hands back (owned references, in the snapshot): */
  nx_jsval_t run;       /* run(fn, args, scope, registry, seed...) */
  nx_jsval_t mkerr;     /* error(isType, message, code) */
  nx_jsval_t settle;    /* settle(call, ok, value) for $ext promises */
  nx_jsval_t copy;      /* copy(value): plain data, getters run */
  nx_jsval_t describe;  /* describe(thrown, isError) -> [name, message, stack, string] */
  nx_jsval_t date_time; /* Date.prototype.getTime as it was before any handler */
  nx_jsval_t lazy;      /* lazy(id, target, n) -> a Proxy over target (lazy.h) */
  uint32_t scratch;     /* guest buffer for bytes the host passes in */
  uint32_t scratch_cap;
  uint32_t outs; /* guest out-parameter words, used as a stack */
  uint32_t outs_top;
  /* Read by the watchdog thread while the segment runs. */
  _Atomic uint64_t deadline_ns; /* CLOCK_MONOTONIC; 0 = none */
  _Atomic int killed;           /* the watchdog stopped the segment */
  int interrupted;              /* the deadline fired during this execution */
  int stop;                     /* the execution must end: every interrupt check says so */
  int broken;                   /* trapped or hit a limit: reset before any reuse */
  const char *fault;            /* why a helper failed without a guest exception */
  uint64_t interrupts;          /* interrupt-handler calls, for instructionCount */
  /* A handler read in ahead, right after a reset (nx_loader_preload): its
   * function (NX_UNDEFINED when none; cleared by every reset) and its
   * compile-cache key. next_key: the handler the last execution loaded
   * from source, the one to read in after the coming reset. Host fields. */
  nx_jsval_t preloaded;
  uint8_t preloaded_key[32];
  uint8_t next_key[32];
  int has_next_key;
  /* Added to the host's monotonic clock for the guest's (imports.c): minus
   * the time the snapshot was made, or what an execution imported from
   * another process needs to go on from its own clock (portable.h). */
  int64_t clock_offset_ns;
  /* While the snapshot's instance initialises: the clocks read 0 and
   * random bytes are zeros, so every process builds the same image. */
  int deterministic;
  nx_exec_t *exec;           /* execution in progress, for host calls */
  const _Atomic int *cancel; /* set by the runtime to stop every handler */
};

/* Creates and initialises a sandbox whose bootstrap gets one host function
 * per name in the NULL-terminated `host_names`; on failure returns NULL and
 * writes a message into err. Must run on a thread that set its wasm depth
 * limit. */
nx_sandbox_t *nx_sandbox_new(const nx_config_t *cfg, const char *const *host_names, char *err,
                             size_t errlen);
/* The module instantiated, nothing run: the snapshot maps its image over
 * such an instance's memory. */
nx_sandbox_t *nx_sandbox_new_bare(const nx_config_t *cfg, char *err, size_t errlen);
void nx_sandbox_free(nx_sandbox_t *sb);

/* Copies bytes into the sandbox's scratch buffer and returns their guest
 * address, or 0 with an out-of-memory exception pending in the guest. The
 * buffer is reused by the next call: the guest must have copied the bytes
 * by then. */
uint32_t nx_sandbox_put(nx_sandbox_t *sb, const void *bytes, size_t len);

/* Out-parameter words in guest memory (8 bytes each), stack discipline.
 * 0 when exhausted, with sb->fault saying so (no guest exception). */
uint32_t nx_sandbox_outs_push(nx_sandbox_t *sb, uint32_t count);
void nx_sandbox_outs_pop(nx_sandbox_t *sb, uint32_t count);

/* Boxes a value the way quickjs-wasi's host-call trampoline expects (it takes
 * ownership of both the box and the value); 0 on guest OOM. */
uint32_t nx_sandbox_box(nx_sandbox_t *sb, nx_jsval_t v);

void nx_sandbox_free_value(nx_sandbox_t *sb, nx_jsval_t v);
nx_jsval_t nx_sandbox_dup_value(nx_sandbox_t *sb, nx_jsval_t v);
/* Drops the pending exception. */
void nx_sandbox_drop_exception(nx_sandbox_t *sb);

/* Calls a guest function with argc arguments (this = undefined); the
 * result is a new reference or NX_EXCEPTION. */
nx_jsval_t nx_sandbox_call(nx_sandbox_t *sb, nx_jsval_t fn, const nx_jsval_t *args, uint32_t argc);

/* A host copy of a guest string primitive, NUL-terminated: into buf when
 * it fits (cap bytes), else allocated from mem. NULL when v is not a
 * string (nothing is converted: that could run guest code) or memory ran
 * out. Free with nx_sandbox_string_free. */
char *nx_sandbox_string(nx_sandbox_t *sb, nx_jsval_t v, nx_mem_t *mem, char *buf, size_t cap,
                        size_t *len);
void nx_sandbox_string_free(nx_mem_t *mem, char *s, const char *buf);

/* Bytes of linear memory the guest has grown to. */
uint64_t nx_sandbox_memory_bytes(const nx_sandbox_t *sb);

/* 1 when the sandbox runs the guard variant (config.memoryCheck 'guard'):
 * its memory is an 8 GiB reservation, accesses past the committed pages
 * fault, and the watchdog stops it by revoking access (watchdog.c). */
int nx_sandbox_guard_pages(const nx_sandbox_t *sb);
/* What NX_WASM_TRY needs for this sandbox: its memory for the guard
 * variant (a fault inside it is this sandbox's trap), NULL otherwise. */
const wasm_rt_memory_t *nx_sandbox_trap_memory(const nx_sandbox_t *sb);

/* Build facts of the engine, for the precompiled-handler header: the
 * quickjs-wasi package version and the bootstrap's SHA-256 (hex). */
const char *nx_sandbox_engine_package(void);
const char *nx_sandbox_bootstrap_sha256(void);

/* QuickJS's own version string, read from a live sandbox ("" on failure). */
void nx_sandbox_qjs_version(nx_sandbox_t *sb, char *out, size_t outlen);

#endif

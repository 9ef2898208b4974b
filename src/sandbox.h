/* One sandbox: a wasm2c QuickJS instance with its own linear memory, one
 * QuickJS runtime and context, the bootstrap that defines the handler
 * globals, and the host imports the instance calls. */
#ifndef NX_SANDBOX_H
#define NX_SANDBOX_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "guest.h"

typedef struct nx_sandbox_s nx_sandbox_t;
typedef struct nx_exec_s nx_exec_t;

/* The instance structs wasm2c leaves to the embedder: imports receive them. */
struct Z_env_instance_t {
  nx_sandbox_t *sb;
};
struct Z_wasi_snapshot_preview1_instance_t {
  nx_sandbox_t *sb;
};

struct nx_sandbox_s {
  nx_wasm_instance_t inst;
  struct Z_env_instance_t env;
  struct Z_wasi_snapshot_preview1_instance_t wasi;
  uint32_t ctx;        /* JSContext * inside the guest */
  uint32_t rt;         /* JSRuntime * inside the guest */
  nx_jsval_t run;      /* bootstrap's run(fn, args, scope, registry): owned reference */
  nx_jsval_t mkerr;    /* bootstrap's error(isType, message, code) */
  nx_jsval_t settle;   /* bootstrap's settle(call, ok, value) for $ext promises */
  nx_jsval_t copy;     /* bootstrap's copy(value): plain data, getters run */
  nx_jsval_t describe; /* bootstrap's describe(thrown, isError) -> [name, message, stack, string] */
  nx_jsval_t date_time; /* Date.prototype.getTime as it was before any handler */
  uint32_t scratch;    /* guest buffer for bytes the host passes in */
  uint32_t scratch_cap;
  uint32_t slots;      /* guest out-parameter slots, used as a stack */
  uint32_t slots_top;
  uint64_t deadline_ns;   /* CLOCK_MONOTONIC; 0 = none */
  int interrupted;        /* the deadline fired during this execution */
  int killed;             /* the watchdog stopped it (set from another thread) */
  int broken;             /* trapped or hit a limit: reset before any reuse (destroyed if that fails) */
  int stop;               /* the execution must end: every interrupt check says so */
  const char *fault;      /* why a host helper failed without a guest exception */
  uint64_t interrupts;    /* interrupt-handler calls, for instructionCount */
  nx_exec_t *exec;        /* execution in progress, for host calls */
  const volatile int *cancel; /* set by the runtime to stop every handler */
};

/* Creates and initialises a sandbox; on failure returns NULL and writes a
 * message into err. Must run on a thread that set its wasm depth limit. */
nx_sandbox_t *nx_sandbox_new(const nx_config_t *cfg, char *err, size_t errlen);
/* The module instantiated, nothing run: the snapshot maps its image over
 * such an instance's memory. */
nx_sandbox_t *nx_sandbox_new_bare(const nx_config_t *cfg, char *err, size_t errlen);
void nx_sandbox_free(nx_sandbox_t *sb);

/* Copies bytes into the sandbox's scratch buffer and returns their guest
 * address, or 0 with an out-of-memory exception pending in the guest. The
 * buffer is reused by the next call: the guest must have copied the bytes
 * by then. */
uint32_t nx_sandbox_put(nx_sandbox_t *sb, const void *bytes, size_t len);

/* Out-parameter slots in guest memory (8 bytes each), stack discipline.
 * 0 when exhausted, with sb->fault saying so (no guest exception). */
uint32_t nx_sandbox_slot_push(nx_sandbox_t *sb, uint32_t count);
void nx_sandbox_slot_pop(nx_sandbox_t *sb, uint32_t count);

/* Boxes a value the way quickjs-wasi's host-call trampoline expects (it takes
 * ownership of both the box and the value); 0 on guest OOM. */
uint32_t nx_sandbox_box(nx_sandbox_t *sb, nx_jsval_t v);

void nx_sandbox_free_value(nx_sandbox_t *sb, nx_jsval_t v);
nx_jsval_t nx_sandbox_dup_value(nx_sandbox_t *sb, nx_jsval_t v);

/* Bytes of linear memory the guest has grown to. */
uint64_t nx_sandbox_memory_bytes(const nx_sandbox_t *sb);

uint64_t nx_now_ns(void);

/* Build facts of the engine, for the precompiled-handler header: the
 * quickjs-wasi package version and the bootstrap's SHA-256 (hex). */
const char *nx_sandbox_engine_package(void);
const char *nx_sandbox_bootstrap_sha256(void);

/* QuickJS's own version string, read from a live sandbox ("" on failure). */
void nx_sandbox_qjs_version(nx_sandbox_t *sb, char *out, size_t outlen);

#endif

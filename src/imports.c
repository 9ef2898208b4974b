/* The imports the wasm instance calls: quickjs-wasi's env.* (host calls,
 * the interrupt check, the time zone, modules) and the few WASI functions
 * QuickJS uses (clocks, random bytes, stdout/stderr). They are callbacks of
 * the generated code, so they sit above the sandbox: each calls down into
 * the host functions (hostcalls.h) or answers from the sandbox's fields. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "hostcalls.h"
#include "sandbox.h"
#include "util.h"

#define WASI_ERRNO_SUCCESS 0
#define WASI_ERRNO_BADF 8
#define WASI_ERRNO_FAULT 21
#define WASI_ERRNO_INVAL 28
#define WASI_ERRNO_NOSYS 52

/* ---- env.* imports ---------------------------------------------------- */

u32 Z_envZ_host_interrupt(struct Z_env_instance_t *imp) {
  nx_sandbox_t *sb = imp->sb;
  uint64_t deadline;
  sb->interrupts++;
  if (sb->interrupted || sb->stop) return 1;
  if (sb->cancel && atomic_load_explicit(sb->cancel, memory_order_relaxed)) {
    sb->interrupted = 1;
    return 1;
  }
  deadline = atomic_load_explicit(&sb->deadline_ns, memory_order_relaxed);
  if (deadline && nx_util_now_ns() >= deadline) {
    sb->interrupted = 1;
    return 1;
  }
  return 0;
}

u32 Z_envZ_host_call(struct Z_env_instance_t *imp, u32 name, u32 name_len, u32 this_box, u32 argc,
                     u32 argv) {
  (void)this_box;
  return nx_host_call(imp->sb, name, name_len, argc, argv);
}

/* Sandboxes live in UTC: the host's zone is not theirs to see. */
u32 Z_envZ_host_get_timezone_offset(struct Z_env_instance_t *imp, u32 hi, u32 lo) {
  (void)imp;
  (void)hi;
  (void)lo;
  return 0;
}

/* Modules are refused: returning NULL makes QuickJS reject the import. */
u32 Z_envZ_host_module_normalize(struct Z_env_instance_t *imp, u32 base, u32 name) {
  (void)imp;
  (void)base;
  (void)name;
  return 0;
}

u32 Z_envZ_host_module_load(struct Z_env_instance_t *imp, u32 name, u32 out_len) {
  (void)imp;
  (void)name;
  (void)out_len;
  return 0;
}

/* Never enabled (qjs_set_promise_rejection_handler is not called). */
void Z_envZ_host_promise_rejection(struct Z_env_instance_t *imp, u32 promise, u32 reason,
                                   u32 handled) {
  (void)imp;
  (void)promise;
  (void)reason;
  (void)handled;
}

/* ---- WASI imports ----------------------------------------------------- */

u32 Z_wasi_snapshot_preview1Z_clock_time_get(struct Z_wasi_snapshot_preview1_instance_t *w, u32 id,
                                             u64 precision, u32 out) {
  struct timespec ts;
  uint64_t ns;
  uint8_t *p = nx_guest_bytes(&w->sb->inst, out, 8);
  (void)precision;
  if (p == NULL) return WASI_ERRNO_FAULT;
  if (w->sb->deterministic) {
    ns = 0;
  } else {
    if (clock_gettime(id == 0 ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts) != 0)
      return WASI_ERRNO_INVAL;
    ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (id != 0) ns += (uint64_t)w->sb->clock_offset_ns;
  }
  memcpy(p, &ns, 8);
  return WASI_ERRNO_SUCCESS;
}

u32 Z_wasi_snapshot_preview1Z_random_get(struct Z_wasi_snapshot_preview1_instance_t *w, u32 buf,
                                         u32 len) {
  uint8_t *p = nx_guest_bytes(&w->sb->inst, buf, len);
  if (p == NULL) return WASI_ERRNO_FAULT;
  if (w->sb->deterministic) {
    memset(p, 0, len);
    return WASI_ERRNO_SUCCESS;
  }
  return nx_util_random(p, len) == 0 ? WASI_ERRNO_SUCCESS : WASI_ERRNO_INVAL;
}

/* stdout and stderr go to the execution's log; nothing reaches the host's. */
u32 Z_wasi_snapshot_preview1Z_fd_write(struct Z_wasi_snapshot_preview1_instance_t *w, u32 fd,
                                       u32 iovs, u32 iovs_len, u32 out) {
  nx_sandbox_t *sb = w->sb;
  uint32_t i, total = 0;
  uint8_t *outp;

  if (fd != 1 && fd != 2) return WASI_ERRNO_BADF;
  for (i = 0; i < iovs_len; i++) {
    uint32_t base, len;
    uint8_t *bytes;
    if (nx_guest_read_u32(&sb->inst, iovs + i * 8, &base) != 0 ||
        nx_guest_read_u32(&sb->inst, iovs + i * 8 + 4, &len) != 0)
      return WASI_ERRNO_FAULT;
    bytes = nx_guest_bytes(&sb->inst, base, len);
    if (bytes == NULL) return WASI_ERRNO_FAULT;
    nx_host_console(sb, fd == 2, (const char *)bytes, len);
    total += len;
  }
  outp = nx_guest_bytes(&sb->inst, out, 4);
  if (outp == NULL) return WASI_ERRNO_FAULT;
  memcpy(outp, &total, 4);
  return WASI_ERRNO_SUCCESS;
}

u32 Z_wasi_snapshot_preview1Z_fd_close(struct Z_wasi_snapshot_preview1_instance_t *w, u32 fd) {
  (void)w;
  (void)fd;
  return WASI_ERRNO_BADF;
}

u32 Z_wasi_snapshot_preview1Z_fd_fdstat_get(struct Z_wasi_snapshot_preview1_instance_t *w, u32 fd,
                                            u32 out) {
  (void)w;
  (void)fd;
  (void)out;
  return WASI_ERRNO_BADF;
}

u32 Z_wasi_snapshot_preview1Z_fd_seek(struct Z_wasi_snapshot_preview1_instance_t *w, u32 fd,
                                      u64 off, u32 whence, u32 out) {
  (void)w;
  (void)fd;
  (void)off;
  (void)whence;
  (void)out;
  return WASI_ERRNO_NOSYS;
}

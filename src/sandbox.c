/* Sandbox lifecycle and the host side of the wasm imports: instantiate the
 * wasm2c module, start QuickJS, evaluate the bootstrap, and answer the
 * instance's env.* and WASI calls (clock, random, console output; the rest
 * is refused). */
#include "sandbox.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "bootstrap_js.h" /* generated: nx_bootstrap_js[], nx_bootstrap_js_len */
#include "hostcalls.h"
#include "wasm_rt/nx_wasm.h"

#define NX_SCRATCH_INITIAL 4096u
#define NX_SLOT_COUNT 512u
#define WASI_ERRNO_SUCCESS 0
#define WASI_ERRNO_BADF 8
#define WASI_ERRNO_FAULT 21
#define WASI_ERRNO_INVAL 28
#define WASI_ERRNO_NOSYS 52

static pthread_once_t module_once = PTHREAD_ONCE_INIT;
static void module_init(void) { Z_qjs_init_module(); }

uint64_t nx_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- env.* imports ---------------------------------------------------- */

u32 Z_envZ_host_interrupt(struct Z_env_instance_t *env) {
  nx_sandbox_t *sb = env->sb;
  sb->interrupts++;
  if (sb->interrupted || sb->stop) return 1;
  if (sb->cancel && *sb->cancel) {
    sb->interrupted = 1;
    return 1;
  }
  if (sb->deadline_ns && nx_now_ns() >= sb->deadline_ns) {
    sb->interrupted = 1;
    return 1;
  }
  return 0;
}

u32 Z_envZ_host_call(struct Z_env_instance_t *env, u32 name, u32 name_len,
                     u32 this_box, u32 argc, u32 argv) {
  (void)this_box;
  return nx_host_call(env->sb, name, name_len, argc, argv);
}

/* Sandboxes live in UTC: the host's zone is not theirs to see. */
u32 Z_envZ_host_get_timezone_offset(struct Z_env_instance_t *env, u32 hi, u32 lo) {
  (void)env; (void)hi; (void)lo;
  return 0;
}

/* Modules are refused: returning NULL makes QuickJS reject the import. */
u32 Z_envZ_host_module_normalize(struct Z_env_instance_t *env, u32 base, u32 name) {
  (void)env; (void)base; (void)name;
  return 0;
}

u32 Z_envZ_host_module_load(struct Z_env_instance_t *env, u32 name, u32 out_len) {
  (void)env; (void)name; (void)out_len;
  return 0;
}

/* Never enabled (qjs_set_promise_rejection_handler is not called). */
void Z_envZ_host_promise_rejection(struct Z_env_instance_t *env, u32 promise,
                                   u32 reason, u32 handled) {
  (void)env; (void)promise; (void)reason; (void)handled;
}

/* ---- WASI imports ----------------------------------------------------- */

u32 Z_wasi_snapshot_preview1Z_clock_time_get(
    struct Z_wasi_snapshot_preview1_instance_t *w, u32 id, u64 precision, u32 out) {
  struct timespec ts;
  uint64_t ns;
  uint8_t *p = nx_guest_bytes(&w->sb->inst, out, 8);
  (void)precision;
  if (p == NULL) return WASI_ERRNO_FAULT;
  if (clock_gettime(id == 0 ? CLOCK_REALTIME : CLOCK_MONOTONIC, &ts) != 0)
    return WASI_ERRNO_INVAL;
  ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
  memcpy(p, &ns, 8);
  return WASI_ERRNO_SUCCESS;
}

u32 Z_wasi_snapshot_preview1Z_random_get(
    struct Z_wasi_snapshot_preview1_instance_t *w, u32 buf, u32 len) {
  uint8_t *p = nx_guest_bytes(&w->sb->inst, buf, len);
  size_t done = 0;
  if (p == NULL) return WASI_ERRNO_FAULT;
  while (done < len) {
    ssize_t n = getrandom(p + done, len - done, 0);
    if (n <= 0) return WASI_ERRNO_INVAL;
    done += (size_t)n;
  }
  return WASI_ERRNO_SUCCESS;
}

/* stdout and stderr go to the execution's log; nothing reaches the host's. */
u32 Z_wasi_snapshot_preview1Z_fd_write(struct Z_wasi_snapshot_preview1_instance_t *w,
                                       u32 fd, u32 iovs, u32 iovs_len, u32 out) {
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

u32 Z_wasi_snapshot_preview1Z_fd_close(struct Z_wasi_snapshot_preview1_instance_t *w,
                                       u32 fd) {
  (void)w; (void)fd;
  return WASI_ERRNO_BADF;
}

u32 Z_wasi_snapshot_preview1Z_fd_fdstat_get(
    struct Z_wasi_snapshot_preview1_instance_t *w, u32 fd, u32 out) {
  (void)w; (void)fd; (void)out;
  return WASI_ERRNO_BADF;
}

u32 Z_wasi_snapshot_preview1Z_fd_seek(struct Z_wasi_snapshot_preview1_instance_t *w,
                                      u32 fd, u64 off, u32 whence, u32 out) {
  (void)w; (void)fd; (void)off; (void)whence; (void)out;
  return WASI_ERRNO_NOSYS;
}

/* ---- guest memory helpers --------------------------------------------- */

uint32_t nx_sandbox_put(nx_sandbox_t *sb, const void *bytes, size_t len) {
  uint8_t *dst;
  if (len >= 0x7fffffffu) return 0;
  if (len + 1 > sb->scratch_cap) {
    uint32_t cap = sb->scratch_cap ? sb->scratch_cap : NX_SCRATCH_INITIAL;
    uint32_t p;
    while (cap < len + 1) cap *= 2;
    p = Q(wasm_malloc)(&sb->inst, cap);
    if (p == 0) {
      Q(JS_ThrowOutOfMemory)(&sb->inst, sb->ctx);
      return 0;
    }
    if (sb->scratch) Q(wasm_free)(&sb->inst, sb->scratch);
    sb->scratch = p;
    sb->scratch_cap = cap;
  }
  dst = nx_guest_bytes(&sb->inst, sb->scratch, len + 1);
  if (dst == NULL) return 0;
  if (len) memcpy(dst, bytes, len);
  dst[len] = 0;
  return sb->scratch;
}

uint32_t nx_sandbox_slot_push(nx_sandbox_t *sb, uint32_t count) {
  uint32_t at = sb->slots_top;
  if (count > NX_SLOT_COUNT - at) {
    sb->fault = "the host's scratch slots ran out";
    return 0;
  }
  sb->slots_top += count;
  memset(sb->inst.w2c_memory.data + sb->slots + at * 8, 0, (size_t)count * 8);
  return sb->slots + at * 8;
}

void nx_sandbox_slot_pop(nx_sandbox_t *sb, uint32_t count) {
  sb->slots_top = count > sb->slots_top ? 0 : sb->slots_top - count;
}

uint32_t nx_sandbox_box(nx_sandbox_t *sb, nx_jsval_t v) {
  uint32_t box = Q(wasm_malloc)(&sb->inst, 8);
  uint8_t *p = box ? nx_guest_bytes(&sb->inst, box, 8) : NULL;
  if (p == NULL) {
    nx_sandbox_free_value(sb, v);
    return 0;
  }
  memcpy(p, &v, 8);
  return box;
}

void nx_sandbox_free_value(nx_sandbox_t *sb, nx_jsval_t v) {
  if (nx_jsval_has_ref(v)) Q(JS_FreeValue)(&sb->inst, sb->ctx, v);
}

nx_jsval_t nx_sandbox_dup_value(nx_sandbox_t *sb, nx_jsval_t v) {
  return nx_jsval_has_ref(v) ? Q(JS_DupValue)(&sb->inst, sb->ctx, v) : v;
}

uint64_t nx_sandbox_memory_bytes(const nx_sandbox_t *sb) {
  return sb->inst.w2c_memory.size;
}

const char *nx_sandbox_engine_package(void) { return NX_QJS_WASI_VERSION; }
const char *nx_sandbox_bootstrap_sha256(void) { return NX_BOOTSTRAP_SHA256; }

void nx_sandbox_qjs_version(nx_sandbox_t *sb, char *out, size_t outlen) {
  nx_wasm_guard_t guard;
  out[0] = 0;
  if (NX_WASM_TRY(&guard) == 0) {
    uint32_t p = Q(JS_GetVersion)(&sb->inst);
    const uint8_t *s = nx_guest_bytes(&sb->inst, p, 1);
    size_t n = 0;
    while (s && n + 1 < outlen && nx_guest_bytes(&sb->inst, p + (uint32_t)n, 1) && s[n])
      n++;
    if (s) memcpy(out, s, n);
    out[n] = 0;
    nx_wasm_leave(&guard);
  }
}

/* ---- lifecycle -------------------------------------------------------- */

/* Evaluates the bootstrap (a function expression), hands it the host
 * functions and keeps the run() it returns. The host functions exist only
 * inside the bootstrap's closure: handlers cannot reach them. */
static int sandbox_bootstrap(nx_sandbox_t *sb, char *err, size_t errlen) {
  nx_wasm_instance_t *in = &sb->inst;
  nx_jsval_t fn = NX_UNDEFINED, host = NX_UNDEFINED, api = NX_UNDEFINED;
  static const char *const fields[] = {"run", "error", "settle", "copy", "describe", "dateTime"};
  nx_jsval_t *const dest[] = {&sb->run, &sb->mkerr, &sb->settle, &sb->copy, &sb->describe,
                              &sb->date_time};
  uint32_t src, file, argv;
  int i, rc = -1;

  src = nx_sandbox_put(sb, nx_bootstrap_js, nx_bootstrap_js_len);
  file = src ? Q(wasm_malloc)(in, 16) : 0;
  if (file == 0) goto oom;
  memcpy(in->w2c_memory.data + file, "<nexus>", 8);
  fn = Q(JS_Eval)(in, sb->ctx, src, (uint32_t)nx_bootstrap_js_len, file, 0);
  Q(wasm_free)(in, file);
  if (nx_jsval_tag(fn) != NX_TAG_OBJECT) {
    snprintf(err, errlen, "bootstrap did not evaluate to a function");
    goto done;
  }

  host = Q(JS_NewObject)(in, sb->ctx);
  if (nx_jsval_tag(host) != NX_TAG_OBJECT) goto oom;
  for (i = 0; nx_host_names[i] != NULL; i++) {
    size_t len = strlen(nx_host_names[i]);
    uint32_t name = nx_sandbox_put(sb, nx_host_names[i], len);
    uint32_t box = name ? Q(qjs_new_host_function)(in, name, (uint32_t)len, 0) : 0;
    uint64_t f;
    if (box == 0 || nx_guest_read_u64(in, box, &f) != 0) goto oom;
    Q(wasm_free)(in, box);
    name = nx_sandbox_put(sb, nx_host_names[i], len);
    if (name == 0 || (int32_t)Q(JS_SetPropertyStr)(in, sb->ctx, host, name, f) < 0) goto oom;
  }

  argv = nx_sandbox_slot_push(sb, 1);
  if (argv == 0) goto oom;
  memcpy(in->w2c_memory.data + argv, &host, 8);
  api = Q(JS_Call)(in, sb->ctx, fn, NX_UNDEFINED, 1, argv);
  nx_sandbox_slot_pop(sb, 1);
  if (nx_jsval_tag(api) != NX_TAG_OBJECT) {
    snprintf(err, errlen, "bootstrap failed to initialise");
    goto done;
  }
  for (i = 0; i < (int)(sizeof fields / sizeof fields[0]); i++) {
    uint32_t name = nx_sandbox_put(sb, fields[i], strlen(fields[i]));
    *dest[i] = name ? Q(JS_GetPropertyStr)(in, sb->ctx, api, name) : NX_EXCEPTION;
    if (nx_jsval_tag(*dest[i]) != NX_TAG_OBJECT) {
      snprintf(err, errlen, "bootstrap did not provide %s()", fields[i]);
      goto done;
    }
  }
  /* The encoder names array elements by quickjs-ng's tagged-int atoms
   * (mpack.c); a build that numbers them differently must fail here. */
  if (Q(JS_NewAtomUInt32)(in, sb->ctx, 7) != (1u << 31 | 7u)) {
    snprintf(err, errlen, "unexpected atom encoding in this QuickJS build");
    goto done;
  }
  rc = 0;
  goto done;
oom:
  snprintf(err, errlen, "out of memory while creating a sandbox");
done:
  nx_sandbox_free_value(sb, fn);
  nx_sandbox_free_value(sb, host);
  nx_sandbox_free_value(sb, api);
  return rc;
}

/* Everything that runs guest code during creation; called under a guard. */
static int sandbox_init(nx_sandbox_t *sb, const nx_config_t *cfg, char *err,
                        size_t errlen) {
  Q(_initialize)(&sb->inst);
  if (Q(qjs_init)(&sb->inst) != 0) {
    snprintf(err, errlen, "QuickJS failed to initialise");
    return -1;
  }
  sb->ctx = Q(qjs_get_context_ptr)(&sb->inst);
  sb->rt = Q(qjs_get_runtime_ptr)(&sb->inst);
  Q(qjs_set_max_stack_size)(&sb->inst, NX_JS_MAX_STACK);
  Q(qjs_set_interrupt_handler)(&sb->inst, 1);
  sb->slots = Q(wasm_malloc)(&sb->inst, NX_SLOT_COUNT * 8);
  if (sb->slots == 0) {
    snprintf(err, errlen, "out of memory while creating a sandbox");
    return -1;
  }
  if (sandbox_bootstrap(sb, err, errlen) != 0) return -1;
  /* The heap limit applies to handlers, not to the bootstrap. */
  Q(qjs_set_memory_limit)(&sb->inst, (uint32_t)cfg->memory_limit);
  return 0;
}

static nx_sandbox_t *create(const nx_config_t *cfg, int init, char *err, size_t errlen) {
  nx_sandbox_t *volatile sb = calloc(1, sizeof *sb);
  nx_wasm_guard_t guard;
  int trap;

  if (sb == NULL) {
    snprintf(err, errlen, "out of memory while creating a sandbox");
    return NULL;
  }
  pthread_once(&module_once, module_init);
  sb->env.sb = sb;
  sb->wasi.sb = sb;
  sb->run = sb->mkerr = sb->settle = NX_UNDEFINED;
  sb->copy = sb->describe = sb->date_time = NX_UNDEFINED;
  nx_wasm_set_next_memory_max(nx_config_memory_reserve(cfg));

  trap = NX_WASM_TRY(&guard);
  if (trap == 0) {
    Z_qjs_instantiate(&sb->inst, &sb->env, &sb->wasi);
    trap = !init || sandbox_init(sb, cfg, err, errlen) == 0 ? 0 : -1;
    nx_wasm_leave(&guard);
  } else {
    snprintf(err, errlen, "sandbox initialisation trapped: %s", nx_wasm_trap_name(trap));
  }
  if (trap != 0) {
    /* The instance owns only its memory and table: free() them, whatever
     * state QuickJS was left in. */
    Z_qjs_free(&sb->inst);
    free(sb);
    return NULL;
  }
  return sb;
}

nx_sandbox_t *nx_sandbox_new(const nx_config_t *cfg, char *err, size_t errlen) {
  return create(cfg, 1, err, errlen);
}

nx_sandbox_t *nx_sandbox_new_bare(const nx_config_t *cfg, char *err, size_t errlen) {
  return create(cfg, 0, err, errlen);
}

void nx_sandbox_free(nx_sandbox_t *sb) {
  if (sb == NULL) return;
  /* No need to tear QuickJS down inside the guest: its whole world is the
   * linear memory we unmap here. */
  Z_qjs_free(&sb->inst);
  free(sb);
}

/* One sandbox: instantiate the wasm2c module, start QuickJS, evaluate the
 * bootstrap with the host functions it is given, and the helpers that pass
 * bytes, values and out-parameters across the guest's memory. The imports
 * the instance calls are in imports.c. */
#include "sandbox.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "bootstrap_js.h" /* generated: nx_bootstrap_js[], nx_bootstrap_js_len */
#include "wasm_rt/nx_fault.h"
#include "wasm_rt/nx_wasm.h"

#define NX_SCRATCH_INITIAL 4096u
#define NX_OUTS 512u /* out-parameter words */

/* Each variant registers its function types once per process. */
static pthread_once_t bounds_once = PTHREAD_ONCE_INIT, guard_once = PTHREAD_ONCE_INIT;
static void bounds_init(void) { nx_qjs_bounds.module_init(); }
static void guard_init(void) { nx_qjs_guard.module_init(); }

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

uint32_t nx_sandbox_outs_push(nx_sandbox_t *sb, uint32_t count) {
  uint32_t at = sb->outs_top;
  if (count > NX_OUTS - at) {
    sb->fault = "the host's out-parameter words ran out";
    return 0;
  }
  sb->outs_top += count;
  memset(sb->inst.w2c_memory.data + sb->outs + at * 8, 0, (size_t)count * 8);
  return sb->outs + at * 8;
}

void nx_sandbox_outs_pop(nx_sandbox_t *sb, uint32_t count) {
  sb->outs_top = count > sb->outs_top ? 0 : sb->outs_top - count;
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

void nx_sandbox_drop_exception(nx_sandbox_t *sb) {
  nx_sandbox_free_value(sb, Q(JS_GetException)(&sb->inst, sb->ctx));
}

nx_jsval_t nx_sandbox_call(nx_sandbox_t *sb, nx_jsval_t fn, const nx_jsval_t *args, uint32_t argc) {
  uint32_t argv = argc ? nx_sandbox_outs_push(sb, argc) : 0;
  nx_jsval_t r;
  if (argc && argv == 0) return NX_EXCEPTION;
  if (argc) memcpy(sb->inst.w2c_memory.data + argv, args, (size_t)argc * 8);
  r = Q(JS_Call)(&sb->inst, sb->ctx, fn, NX_UNDEFINED, argc, argv);
  if (argc) nx_sandbox_outs_pop(sb, argc);
  return r;
}

char *nx_sandbox_string(nx_sandbox_t *sb, nx_jsval_t v, nx_mem_t *mem, char *buf, size_t cap,
                        size_t *len) {
  uint32_t out, ptr, n = 0;
  uint8_t *bytes;
  char *dst = NULL;
  int tag = nx_jsval_tag(v);

  if (tag != NX_TAG_STRING && tag != NX_TAG_STRING_ROPE) return NULL;
  out = nx_sandbox_outs_push(sb, 1);
  if (out == 0) return NULL;
  ptr = Q(JS_ToCStringLen2)(&sb->inst, sb->ctx, out, v, 0);
  if (ptr != 0 && nx_guest_read_u32(&sb->inst, out, &n) == 0 &&
      (bytes = nx_guest_bytes(&sb->inst, ptr, n)) != NULL) {
    dst = n < cap ? buf : nx_mem_alloc(mem, (size_t)n + 1);
    if (dst) {
      if (n) memcpy(dst, bytes, n);
      dst[n] = 0;
      if (len) *len = n;
    }
  }
  if (ptr) Q(JS_FreeCString)(&sb->inst, sb->ctx, ptr);
  nx_sandbox_outs_pop(sb, 1);
  return dst;
}

void nx_sandbox_string_free(nx_mem_t *mem, char *s, const char *buf) {
  if (s != buf) nx_mem_free(mem, s);
}

uint64_t nx_sandbox_memory_bytes(const nx_sandbox_t *sb) { return sb->inst.w2c_memory.size; }

int nx_sandbox_guard_pages(const nx_sandbox_t *sb) { return sb->env_imports.api == &nx_qjs_guard; }

const wasm_rt_memory_t *nx_sandbox_trap_memory(const nx_sandbox_t *sb) {
  return nx_sandbox_guard_pages(sb) ? &sb->inst.w2c_memory : NULL;
}

const char *nx_sandbox_engine_package(void) { return NX_QJS_WASI_VERSION; }
const char *nx_sandbox_bootstrap_sha256(void) { return NX_BOOTSTRAP_SHA256; }

void nx_sandbox_qjs_version(nx_sandbox_t *sb, char *out, size_t outlen) {
  nx_wasm_guard_t guard;
  out[0] = 0;
  if (NX_WASM_TRY(&guard, nx_sandbox_trap_memory(sb)) == 0) {
    uint32_t p = Q(JS_GetVersion)(&sb->inst);
    const uint8_t *s = nx_guest_bytes(&sb->inst, p, 1);
    size_t n = 0;
    while (s && n + 1 < outlen && nx_guest_bytes(&sb->inst, p + (uint32_t)n, 1) && s[n]) n++;
    if (s) memcpy(out, s, n);
    out[n] = 0;
    nx_wasm_leave(&guard);
  }
}

/* ---- lifecycle -------------------------------------------------------- */

/* Evaluates the bootstrap (a function expression), hands it the host
 * functions and keeps the run() it returns. The host functions exist only
 * inside the bootstrap's closure: handlers cannot reach them. */
static int sandbox_bootstrap(nx_sandbox_t *sb, const char *const *host_names, char *err,
                             size_t errlen) {
  nx_wasm_instance_t *in = &sb->inst;
  nx_jsval_t fn = NX_UNDEFINED, host = NX_UNDEFINED, api = NX_UNDEFINED;
  static const char *const fields[] = {"run",      "error",    "settle", "copy",
                                       "describe", "dateTime", "lazy"};
  nx_jsval_t *const dest[] = {&sb->run,      &sb->mkerr,     &sb->settle, &sb->copy,
                              &sb->describe, &sb->date_time, &sb->lazy};
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
  for (i = 0; host_names[i] != NULL; i++) {
    size_t len = strlen(host_names[i]);
    uint32_t name = nx_sandbox_put(sb, host_names[i], len);
    uint32_t box = name ? Q(qjs_new_host_function)(in, name, (uint32_t)len, 0) : 0;
    uint64_t f;
    if (box == 0 || nx_guest_read_u64(in, box, &f) != 0) goto oom;
    Q(wasm_free)(in, box);
    name = nx_sandbox_put(sb, host_names[i], len);
    if (name == 0 || (int32_t)Q(JS_SetPropertyStr)(in, sb->ctx, host, name, f) < 0) goto oom;
  }

  argv = nx_sandbox_outs_push(sb, 1);
  if (argv == 0) goto oom;
  memcpy(in->w2c_memory.data + argv, &host, 8);
  api = Q(JS_Call)(in, sb->ctx, fn, NX_UNDEFINED, 1, argv);
  nx_sandbox_outs_pop(sb, 1);
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
static int sandbox_init(nx_sandbox_t *sb, const nx_config_t *cfg, const char *const *host_names,
                        char *err, size_t errlen) {
  Q(_initialize)(&sb->inst);
  if (Q(qjs_init)(&sb->inst) != 0) {
    snprintf(err, errlen, "QuickJS failed to initialise");
    return -1;
  }
  sb->ctx = Q(qjs_get_context_ptr)(&sb->inst);
  sb->qrt = Q(qjs_get_runtime_ptr)(&sb->inst);
  Q(qjs_set_max_stack_size)(&sb->inst, NX_JS_MAX_STACK);
  Q(qjs_set_interrupt_handler)(&sb->inst, 1);
  sb->outs = Q(wasm_malloc)(&sb->inst, NX_OUTS * 8);
  if (sb->outs == 0) {
    snprintf(err, errlen, "out of memory while creating a sandbox");
    return -1;
  }
  if (sandbox_bootstrap(sb, host_names, err, errlen) != 0) return -1;
  /* The heap limit applies to handlers, not to the bootstrap. */
  Q(qjs_set_memory_limit)(&sb->inst, (uint32_t)cfg->memory_limit);
  return 0;
}

static nx_sandbox_t *create(const nx_config_t *cfg, const char *const *host_names, char *err,
                            size_t errlen) {
  nx_sandbox_t *volatile sb = calloc(1, sizeof *sb);
  nx_wasm_guard_t guard;
  int trap;

  if (sb == NULL) {
    snprintf(err, errlen, "out of memory while creating a sandbox");
    return NULL;
  }
  if (cfg->memory_check == NX_MEMORY_CHECK_GUARD) {
    sb->env_imports.api = &nx_qjs_guard;
    pthread_once(&guard_once, guard_init);
    if (nx_fault_thread_ready() != 0) {
      snprintf(err, errlen, "could not set up this thread for guard pages");
      free(sb);
      return NULL;
    }
  } else {
    sb->env_imports.api = &nx_qjs_bounds;
    pthread_once(&bounds_once, bounds_init);
  }
  sb->env_imports.sb = sb;
  sb->wasi_imports.sb = sb;
  sb->run = sb->mkerr = sb->settle = NX_UNDEFINED;
  sb->copy = sb->describe = sb->date_time = sb->lazy = NX_UNDEFINED;
  sb->preloaded = NX_UNDEFINED;
  nx_wasm_set_next_memory_max(nx_config_memory_reserve(cfg));

  /* The memory does not exist yet: the guard names where it will be, and
   * covers it from the moment the instantiation maps it. */
  trap = NX_WASM_TRY(&guard, nx_sandbox_trap_memory(sb));
  if (trap == 0) {
    sb->env_imports.api->module_instantiate(&sb->inst, &sb->env_imports, &sb->wasi_imports);
    sb->deterministic = 1;
    trap = !host_names || sandbox_init(sb, cfg, host_names, err, errlen) == 0 ? 0 : -1;
    sb->deterministic = 0;
    nx_wasm_leave(&guard);
  } else {
    snprintf(err, errlen, "sandbox initialisation trapped: %s", nx_wasm_trap_name(trap));
  }
  if (trap != 0) {
    /* The instance owns only its memory and table: free() them, whatever
     * state QuickJS was left in. */
    sb->env_imports.api->module_free(&sb->inst);
    free(sb);
    return NULL;
  }
  return sb;
}

nx_sandbox_t *nx_sandbox_new(const nx_config_t *cfg, const char *const *host_names, char *err,
                             size_t errlen) {
  return create(cfg, host_names, err, errlen);
}

nx_sandbox_t *nx_sandbox_new_bare(const nx_config_t *cfg, char *err, size_t errlen) {
  return create(cfg, NULL, err, errlen);
}

void nx_sandbox_free(nx_sandbox_t *sb) {
  if (sb == NULL) return;
  /* No need to tear QuickJS down inside the guest: its whole world is the
   * linear memory we unmap here. */
  sb->env_imports.api->module_free(&sb->inst);
  free(sb);
}

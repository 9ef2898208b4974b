/* Portable suspensions (see portable.h): the byte layout, the memory diff
 * against the snapshot image, and the order a parked execution is put back
 * together in. The modules that own a part of the execution save and
 * restore it themselves (state.c, lazy.c, hostcalls.c). */
#include "portable.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec.h"
#include "util.h"
#include "wire.h"

#define MAGIC "NXSP"
#define VERSION 1u
#define WASM_PAGE 65536u
/* Differences are found and kept in blocks of this many bytes: a changed
 * page usually differs in a few words (a free list, a counter), and the
 * unchanged rest of it need not travel. For a trivial suspension, 16 makes
 * 7.2 KB of memory runs where 64 made 12.4 KB (8: 5.8 KB, in more runs). */
#define BLOCK 16u

static uint64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* BLOCK bytes at a against the same at b (zeros when b is NULL), as two
 * words: a call to memcmp per block would cost more than the compare. */
static int block_differs(const uint8_t *a, const uint8_t *b) {
  uint64_t x[2], y[2] = {0, 0};
  memcpy(x, a, sizeof x);
  if (b) memcpy(y, b, sizeof y);
  return ((x[0] ^ y[0]) | (x[1] ^ y[1])) != 0;
}

/* The writer's state: the run of differing blocks being collected. */
typedef struct {
  nx_buf_t *out;
  const uint8_t *mem;
  size_t start;
  int open;
} mem_runs_t;

static void run_close(mem_runs_t *r, size_t at) {
  if (r->open) nx_wire_bytes(r->out, r->mem + r->start, at - r->start);
  r->open = 0;
}

/* One page (of the OS's size) at `at`, against `base` (NULL: zeros). */
static void save_page(mem_runs_t *r, size_t at, size_t page, const uint8_t *base) {
  size_t end = at + page;
  for (; at < end; at += BLOCK) {
    if (!block_differs(r->mem + at, base ? base + at : NULL)) {
      run_close(r, at);
    } else if (!r->open) {
      nx_wire_u32(r->out, (uint32_t)at);
      r->start = at;
      r->open = 1;
    }
  }
}

/* Runs of differing blocks, as (offset, length, bytes), then (0, 0). Past
 * the image, memory the guest grew is compared with zeros. Pages the
 * sandbox still shares with the image, and private ones equal to it as a
 * whole, are skipped at once. */
static void save_memory(const nx_sandbox_t *sb, const nx_portable_image_t *img, nx_buf_t *out) {
  mem_runs_t r = {out, sb->inst.w2c_memory.data, 0, 0};
  size_t size = (size_t)sb->inst.w2c_memory.pages * WASM_PAGE, at;
  nx_wire_u32(out, sb->inst.w2c_memory.pages);
  for (at = 0; at < size; at += img->page) {
    const uint8_t *base = at < img->size ? img->bytes : NULL;
    if (base && ((img->changed && !img->changed[at / img->page]) ||
                 memcmp(r.mem + at, base + at, img->page) == 0)) {
      run_close(&r, at);
      continue;
    }
    save_page(&r, at, img->page, base);
  }
  run_close(&r, size);
  nx_wire_u32(out, 0);
  nx_wire_u32(out, 0);
}

int nx_portable_export(const nx_exec_t *ex, const nx_portable_image_t *img, uint64_t remaining_ns,
                       char **out, size_t *out_len) {
  const nx_sandbox_t *sb = ex->sb;
  nx_mem_t mem;
  nx_buf_t b;
  int rc = NX_RC_NOMEM;

  *out = NULL;
  nx_mem_init(&mem);
  nx_buf_init(&b, &mem, NULL);
  nx_buf_write(&b, MAGIC, 4);
  nx_wire_u32(&b, VERSION);
  nx_buf_write(&b, img->sha256, 32);
  nx_wire_u64(&b, remaining_ns);
  /* The guest's monotonic clock goes on from where it was, in whatever
   * process resumes it (imports.c). */
  nx_wire_u64(&b, nx_util_now_ns() + (uint64_t)sb->clock_offset_ns);
  nx_wire_u64(&b, wall_ns());
  nx_wire_u32(&b, sb->inst.w2c___stack_pointer);
  nx_wire_u32(&b, sb->scratch);
  nx_wire_u32(&b, sb->scratch_cap);
  save_memory(sb, img, &b);

  nx_wire_u8(&b, (uint8_t)ex->mode);
  nx_wire_u8(&b, (uint8_t)ex->lang.id);
  nx_wire_bytes(&b, ex->code, ex->code_len);
  nx_wire_bytes(&b, ex->context, ex->context_len);
  nx_wire_u64(&b, ex->timeout_ns);
  nx_wire_u64(&b, ex->run_ns);
  nx_wire_u64(&b, ex->compile_us);
  nx_wire_u32(&b, ex->heap_used);
  nx_wire_u8(&b, (uint8_t)(ex->cache_hit != 0));
  nx_wire_u8(&b, (uint8_t)(ex->cache_lookup != 0));
  nx_wire_u64(&b, ex->promise);
  nx_host_save(ex, &b);
  nx_state_save(ex, &b);
  if (nx_lazy_save(ex, &b) != NX_RC_OK) {
    rc = NX_RC_INVALID;
    goto done;
  }
  if (b.refused) goto done;
  if ((*out = malloc(b.size ? b.size : 1)) == NULL) goto done;
  memcpy(*out, b.data, b.size);
  *out_len = b.size;
  rc = NX_RC_OK;
done:
  nx_mem_release(&mem);
  return rc;
}

/* The memory runs, into a sandbox at the image's state. */
static const char *load_memory(nx_sandbox_t *sb, const nx_portable_image_t *img, nx_wire_rd_t *in) {
  wasm_rt_memory_t *m = &sb->inst.w2c_memory;
  uint32_t pages = nx_wire_get_u32(in);
  uint64_t size = (uint64_t)pages * WASM_PAGE, prev_end = 0;
  if (in->bad || size < img->size || pages > m->max_pages) return "memory size";
  if (pages > m->pages && wasm_rt_grow_memory(m, pages - m->pages) == UINT32_MAX)
    return "memory size (could not grow)";
  for (;;) {
    uint64_t off = nx_wire_get_u32(in);
    size_t len;
    const uint8_t *p = nx_wire_get_bytes(in, (size_t)size, &len);
    if (in->bad) return "memory runs";
    if (len == 0) return off == 0 ? NULL : "memory runs";
    if (off < prev_end || off + len > size) return "memory runs (out of order or past the end)";
    memcpy(m->data + off, p, len);
    prev_end = off + len;
  }
}

/* Everything after the memory: the execution's own fields. */
static const char *load_exec(nx_sandbox_t *sb, const nx_engine_t *engine, nx_wire_rd_t *in,
                             nx_exec_t **exec) {
  const nx_config_t *cfg = engine->cfg;
  nx_lang_t lang = {0};
  uint8_t mode = nx_wire_get_u8(in), lang_id = nx_wire_get_u8(in);
  size_t code_len, context_len;
  const uint8_t *code = nx_wire_get_bytes(in, SIZE_MAX, &code_len);
  const uint8_t *context = nx_wire_get_bytes(in, SIZE_MAX, &context_len);
  char *code_copy;
  uint8_t *context_copy;
  nx_exec_t *ex;
  int rc;

  if (in->bad || (mode != NX_MODE_SOURCE && mode != NX_MODE_BYTECODE) ||
      lang_id >= NX_LANG__COUNT || context_len == 0)
    return "execution header";
  code_copy = malloc(code_len + 1);
  context_copy = malloc(context_len);
  if (code_copy == NULL || context_copy == NULL) {
    free(code_copy);
    free(context_copy);
    return "host out of memory";
  }
  memcpy(code_copy, code, code_len);
  code_copy[code_len] = 0;
  memcpy(context_copy, context, context_len);
  lang.id = (nx_language_t)lang_id;
  ex = nx_engine_exec_new(sb, engine, (nx_exec_mode_t)mode, code_copy, code_len, &lang,
                          context_copy, context_len, 0);
  if (ex == NULL) return "host out of memory";
  *exec = ex;
  ex->started = 1;
  ex->timeout_ns = nx_wire_get_u64(in);
  ex->run_ns = nx_wire_get_u64(in);
  ex->compile_us = nx_wire_get_u64(in);
  ex->heap_used = nx_wire_get_u32(in);
  ex->cache_hit = nx_wire_get_bool(in);
  ex->cache_lookup = nx_wire_get_bool(in);
  ex->promise = nx_wire_get_u64(in);
  if (in->bad || ex->timeout_ns == 0 || ex->timeout_ns > (uint64_t)NX_LIMIT_TIMEOUT_MS * 1000000u ||
      ex->run_ns > ex->timeout_ns || nx_jsval_tag(ex->promise) != NX_TAG_OBJECT)
    return "execution fields";
  if (nx_engine_parse_context(ex) != NX_RC_OK) return "context";
  if ((rc = nx_host_restore(ex, in)) != NX_RC_OK)
    return rc == NX_RC_NOMEM ? "host out of memory" : "pending calls";
  if (ex->host_calls > cfg->max_host_calls) return "pending calls (host call count)";
  if ((rc = nx_state_restore(ex, in)) != NX_RC_OK)
    return rc == NX_RC_NOMEM ? "host out of memory" : "state table";
  if ((rc = nx_lazy_restore(ex, in)) != NX_RC_OK)
    return rc == NX_RC_NOMEM ? "host out of memory" : "lazy state";
  if (in->p != in->end) return "trailing bytes";
  return NULL;
}

int nx_portable_import(nx_sandbox_t *sb, const nx_engine_t *engine, const nx_portable_image_t *img,
                       const uint8_t *bytes, size_t len, nx_exec_t **exec, uint64_t *remaining_ns,
                       char **result, size_t *result_len, char *err, size_t errlen) {
  nx_wire_rd_t in;
  const uint8_t *magic, *sha;
  const char *why = NULL;
  uint64_t guest_mono, then, now;
  nx_exec_t *ex = NULL;

  *exec = NULL;
  *result = NULL;
  nx_wire_init(&in, bytes, len);
  magic = nx_wire_take(&in, 4);
  if (magic == NULL || memcmp(magic, MAGIC, 4) != 0 || nx_wire_get_u32(&in) != VERSION) {
    why = "format";
    goto fail;
  }
  sha = nx_wire_take(&in, 32);
  if (sha == NULL || memcmp(sha, img->sha256, 32) != 0) {
    why = "build (the snapshot image differs)";
    goto fail;
  }
  *remaining_ns = nx_wire_get_u64(&in);
  guest_mono = nx_wire_get_u64(&in);
  then = nx_wire_get_u64(&in);
  sb->inst.w2c___stack_pointer = nx_wire_get_u32(&in);
  sb->scratch = nx_wire_get_u32(&in);
  sb->scratch_cap = nx_wire_get_u32(&in);
  if (in.bad) {
    why = "sandbox fields";
    goto fail;
  }
  /* Parked time counts on the guest's monotonic clock, as it would have
   * had the execution stayed where it was. */
  now = wall_ns();
  guest_mono += now > then ? now - then : 0;
  sb->clock_offset_ns = (int64_t)(guest_mono - nx_util_now_ns());
  if ((why = load_memory(sb, img, &in)) != NULL) goto fail;
  /* Guest addresses the host itself writes through: inside the memory. */
  if ((uint64_t)sb->inst.w2c___stack_pointer > sb->inst.w2c_memory.size ||
      (uint64_t)sb->scratch + sb->scratch_cap > sb->inst.w2c_memory.size ||
      (sb->scratch == 0) != (sb->scratch_cap == 0)) {
    why = "sandbox fields";
    goto fail;
  }
  if ((why = load_exec(sb, engine, &in, &ex)) != NULL) goto fail;
  if (nx_engine_suspended_result(ex, result, result_len) != NX_RC_OK) {
    why = "host out of memory";
    goto fail;
  }
  *exec = ex;
  return NX_RC_OK;
fail:
  nx_engine_exec_free(ex);
  snprintf(err, errlen, "%s", why);
  return strcmp(why, "host out of memory") == 0 ? NX_RC_NOMEM : NX_RC_INVALID;
}

/* Copy-on-write snapshots (see snapshot.h). A reset reads /proc/self/pagemap
 * for the image range and copies the image back into only the pages that
 * became private; that keeps them resident, so the next execution takes no
 * page faults. Where pagemap cannot be read, MADV_DONTNEED drops the private
 * pages instead and they fault back in from the memfd. */
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sha256.h"
#include "util.h"
#include "wasm_rt/nx_wasm.h"

#define WASM_PAGE 65536u
#define PM_PRESENT (1ull << 63)
#define PM_SWAP (1ull << 62)
#define PM_FILE_OR_SHARED (1ull << 61)

struct nx_snapshot_s {
  int fd;               /* memfd holding the image */
  const uint8_t *bytes; /* read-only shared mapping of it */
  size_t size;          /* bytes, whole wasm pages */
  size_t os_page;
  int pagemap;       /* /proc/self/pagemap, or -1: use the fallback */
  nx_sandbox_t tmpl; /* the guest-side fields of an initialised sandbox */
  wasm_rt_funcref_t *table;
  uint32_t table_size;
  const void *tmpl_inst; /* the template's instance, as its table names it */
  char qjs_version[48];
  uint32_t heap_used_offset;
  uint64_t mono0; /* when the image was made: the guests' monotonic clocks start there */
  /* The image's SHA-256, taken the first time an export or import needs
   * it (hashing 1.4 MB at every start would cost more than the start). */
  pthread_mutex_t sha_lock;
  int has_sha;
  uint8_t sha[32];
};

const char *nx_snap_qjs_version(const nx_snapshot_t *snap) { return snap->qjs_version; }
uint32_t nx_snap_heap_used_offset(const nx_snapshot_t *snap) { return snap->heap_used_offset; }

/* malloc_size as JS_ComputeMemoryUsage reports it (its first field). */
static int64_t heap_used(nx_sandbox_t *sb) {
  int64_t v = -1;
  Q(JS_ComputeMemoryUsage)(&sb->inst, sb->qrt, sb->outs);
  nx_guest_read_u64(&sb->inst, sb->outs, (uint64_t *)&v);
  return v;
}

/* JS_ComputeMemoryUsage walks the whole heap: too slow for every result.
 * The runtime keeps the same number in a field of JSRuntime; find that
 * field once, by matching it at two different heap sizes. */
static uint32_t match_heap_used(nx_sandbox_t *sb) {
  uint32_t found = 0, off, v;
  int64_t a = heap_used(sb), b;
  nx_jsval_t o;
  for (off = 4; off < 128 && !found; off += 4)
    if (nx_guest_read_u32(&sb->inst, sb->qrt + off, &v) == 0 && a > 0 && v == (uint64_t)a)
      found = off;
  o = Q(JS_NewArray)(&sb->inst, sb->ctx);
  b = heap_used(sb);
  if (!found || b == a || nx_guest_read_u32(&sb->inst, sb->qrt + found, &v) != 0 ||
      v != (uint64_t)b)
    found = 0;
  nx_sandbox_free_value(sb, o);
  return found;
}

/* The guarded part is a function of its own: no local lives across the
 * setjmp. */
static uint32_t find_heap_used_offset(nx_sandbox_t *sb) {
  nx_wasm_guard_t guard;
  uint32_t found;
  if (NX_WASM_TRY(&guard, nx_sandbox_trap_memory(sb)) != 0) return 0;
  found = match_heap_used(sb);
  nx_wasm_leave(&guard);
  return found;
}

size_t nx_snap_size(const nx_snapshot_t *snap) { return snap->size; }

const uint8_t *nx_snap_image(const nx_snapshot_t *snap) { return snap->bytes; }
size_t nx_snap_page_size(const nx_snapshot_t *snap) { return snap->os_page; }

const uint8_t *nx_snap_sha256(nx_snapshot_t *snap) {
  pthread_mutex_lock(&snap->sha_lock);
  if (!snap->has_sha) {
    nx_sha256(snap->bytes, snap->size, snap->sha);
    snap->has_sha = 1;
  }
  pthread_mutex_unlock(&snap->sha_lock);
  return snap->sha;
}

/* A page the sandbox has its own copy of: present and not backed by the
 * memfd, or swapped out (only private pages go to swap; a page being
 * migrated shows as swapped too). Any other page reads as the image. */
static int private_page(uint64_t entry) {
  return (entry & (PM_PRESENT | PM_FILE_OR_SHARED)) == PM_PRESENT ||
         (entry & (PM_SWAP | PM_FILE_OR_SHARED)) == PM_SWAP;
}

/* changed[i] for each page of the image range at `data`, from pagemap;
 * the count of private pages, or -1 when pagemap cannot be read. */
static int64_t private_pages(const nx_snapshot_t *snap, const uint8_t *data, uint8_t *changed) {
  size_t npages = snap->size / snap->os_page, i;
  off_t base = (off_t)((uintptr_t)data / snap->os_page) * (off_t)sizeof(uint64_t);
  uint64_t *entries;
  int64_t n = -1;
  if (snap->pagemap < 0 || (entries = malloc(npages * sizeof *entries)) == NULL) return -1;
  if (pread(snap->pagemap, entries, npages * sizeof *entries, base) ==
      (ssize_t)(npages * sizeof *entries)) {
    for (n = 0, i = 0; i < npages; i++) n += changed[i] = (uint8_t)private_page(entries[i]);
  }
  free(entries);
  return n;
}

int nx_snap_changed_pages(const nx_snapshot_t *snap, const nx_sandbox_t *sb, uint8_t *changed) {
  return private_pages(snap, sb->inst.w2c_memory.data, changed) < 0 ? -1 : 0;
}

void nx_snap_free(nx_snapshot_t *snap) {
  if (snap == NULL) return;
  if (snap->bytes) munmap((void *)snap->bytes, snap->size);
  if (snap->fd >= 0) close(snap->fd);
  if (snap->pagemap >= 0) close(snap->pagemap);
  pthread_mutex_destroy(&snap->sha_lock);
  free(snap->table);
  free(snap);
}

nx_snapshot_t *nx_snap_create(const nx_config_t *cfg, const char *const *host_names, char *err,
                              size_t errlen) {
  nx_snapshot_t *snap = calloc(1, sizeof *snap);
  nx_sandbox_t *sb = NULL;
  const wasm_rt_funcref_table_t *t;

  if (snap == NULL) goto oom;
  snap->fd = snap->pagemap = -1;
  pthread_mutex_init(&snap->sha_lock, NULL);
  sb = nx_sandbox_new(cfg, host_names, err, errlen);
  if (sb == NULL) goto fail;
  snap->size = sb->inst.w2c_memory.size;
  snap->os_page = (size_t)sysconf(_SC_PAGESIZE);
  snap->fd = memfd_create("nexus-snapshot", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (snap->fd < 0 || nx_util_write_full(snap->fd, sb->inst.w2c_memory.data, snap->size) != 0) {
    snprintf(err, errlen, "could not write the snapshot image: %s", strerror(errno));
    goto fail;
  }
  /* Sealed: nothing can change the image under the instances mapping it. */
  fcntl(snap->fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  snap->mono0 = nx_util_now_ns();
  snap->bytes = mmap(NULL, snap->size, PROT_READ, MAP_SHARED, snap->fd, 0);
  if (snap->bytes == MAP_FAILED) {
    snap->bytes = NULL;
    snprintf(err, errlen, "could not map the snapshot image: %s", strerror(errno));
    goto fail;
  }
  snap->tmpl = *sb;
  snap->tmpl_inst = &sb->inst;
  t = &sb->inst.w2c___indirect_function_table;
  snap->table_size = t->size;
  snap->table = malloc((size_t)t->size * sizeof *t->data + 1);
  if (snap->table == NULL) goto oom;
  memcpy(snap->table, t->data, (size_t)t->size * sizeof *t->data);
  snap->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  nx_sandbox_qjs_version(sb, snap->qjs_version, sizeof snap->qjs_version);
  snap->heap_used_offset = find_heap_used_offset(sb); /* after the image is taken */
  nx_sandbox_free(sb);
  return snap;
oom:
  snprintf(err, errlen, "out of memory while creating the snapshot");
fail:
  nx_sandbox_free(sb);
  nx_snap_free(snap);
  return NULL;
}

/* The guest-side state of a sandbox: where QuickJS and the bootstrap live
 * in linear memory, identical in every instance of the image. */
static void restore_fields(const nx_snapshot_t *snap, nx_sandbox_t *sb) {
  const nx_sandbox_t *t = &snap->tmpl;
  sb->inst.w2c___stack_pointer = t->inst.w2c___stack_pointer;
  sb->ctx = t->ctx;
  sb->qrt = t->qrt;
  sb->run = t->run;
  sb->mkerr = t->mkerr;
  sb->settle = t->settle;
  sb->copy = t->copy;
  sb->describe = t->describe;
  sb->date_time = t->date_time;
  sb->lazy = t->lazy;
  sb->scratch = t->scratch;
  sb->scratch_cap = t->scratch_cap;
  sb->outs = t->outs;
  sb->outs_top = 0;
  sb->exec = NULL;
  atomic_store(&sb->deadline_ns, 0);
  sb->interrupted = 0;
  atomic_store(&sb->killed, 0);
  sb->broken = 0;
  sb->stop = 0;
  sb->fault = NULL;
  sb->preloaded = NX_UNDEFINED; /* its heap is gone; next_key stays */
  /* performance.now() counts from the image, as it did when QuickJS took
   * its time origin while the image was made (it reads 0 now: sandbox.h). */
  sb->clock_offset_ns = -(int64_t)snap->mono0;
}

nx_sandbox_t *nx_snap_instantiate(const nx_snapshot_t *snap, const nx_config_t *cfg, char *err,
                                  size_t errlen) {
  nx_sandbox_t *sb = nx_sandbox_new_bare(cfg, err, errlen);
  wasm_rt_memory_t *mem;
  if (sb == NULL) return NULL;
  mem = &sb->inst.w2c_memory;
  if ((uint64_t)mem->max_pages * WASM_PAGE < snap->size ||
      mmap(mem->data, snap->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, snap->fd, 0) ==
          MAP_FAILED) {
    snprintf(err, errlen, "could not map the snapshot into a sandbox: %s", strerror(errno));
    nx_sandbox_free(sb);
    return NULL;
  }
  mem->pages = (uint32_t)(snap->size / WASM_PAGE);
  mem->size = (uint32_t)snap->size;
  restore_fields(snap, sb);
  return sb;
}

/* Idle sandboxes keep their private pages (restored to the image) so the
 * next execution takes no faults; past this many, a reset drops them all
 * instead, so a sandbox that once ran a big handler does not hold its
 * whole image privately forever. 128 pages of 4 KiB: 512 KiB. */
#define NX_SNAP_KEEP_BYTES (512u << 10)

/* Copies the image back into the pages that became private. Returns -1
 * when pagemap cannot be read, 1 when there were too many to keep. */
static int restore_private_pages(const nx_snapshot_t *snap, uint8_t *data) {
  size_t npages = snap->size / snap->os_page, i;
  uint8_t *changed = malloc(npages ? npages : 1);
  int64_t n = changed ? private_pages(snap, data, changed) : -1;
  int rc = n < 0 ? -1 : (uint64_t)n * snap->os_page > NX_SNAP_KEEP_BYTES ? 1 : 0;
  for (i = 0; rc == 0 && i < npages; i++)
    if (changed[i])
      memcpy(data + i * snap->os_page, snap->bytes + i * snap->os_page, snap->os_page);
  free(changed);
  return rc;
}

int nx_snap_reset(const nx_snapshot_t *snap, nx_sandbox_t *sb) {
  wasm_rt_memory_t *mem = &sb->inst.w2c_memory;
  const wasm_rt_funcref_table_t *t = &sb->inst.w2c___indirect_function_table;
  size_t committed;
  uint32_t i;

  /* QuickJS never writes its table; a changed one means we cannot know
   * what else changed. Entries name their own instance. */
  if (t->size != snap->table_size) return -1;
  for (i = 0; i < t->size; i++) {
    const wasm_rt_funcref_t *a = &t->data[i], *b = &snap->table[i];
    const void *inst =
        b->module_instance == snap->tmpl_inst ? (const void *)&sb->inst : b->module_instance;
    if (a->func_type != b->func_type || a->func != b->func || a->module_instance != inst) return -1;
  }
  /* Committed pages, from `pages`: the watchdog zeroes `size` of a segment
   * it stops, never `pages`. */
  committed = (size_t)mem->pages * WASM_PAGE;
  if (committed > snap->size) { /* memory the execution grew: give it back */
    size_t extra = committed - snap->size;
    if (madvise(mem->data + snap->size, extra, MADV_DONTNEED) != 0 ||
        mprotect(mem->data + snap->size, extra, PROT_NONE) != 0)
      return -1;
  }
  /* A guard-page sandbox the watchdog stopped had its pages made
   * inaccessible (watchdog.c): give the image range its access back before
   * the copy below touches it. */
  if (atomic_load(&sb->killed) && mprotect(mem->data, snap->size, PROT_READ | PROT_WRITE) != 0)
    return -1;
  mem->pages = (uint32_t)(snap->size / WASM_PAGE);
  mem->size = (uint32_t)snap->size;
  if (snap->pagemap < 0 || restore_private_pages(snap, mem->data) != 0) {
    /* Drop every private page: they fault back in from the memfd. */
    if (madvise(mem->data, snap->size, MADV_DONTNEED) != 0) return -1;
  }
  restore_fields(snap, sb);
  return 0;
}

/* Compile cache (see cache.h): the memory LRU, refcounted blobs, and the
 * on-disk store with its file format, atomic writes and size trimming.
 * The mutex guards the table, the LRU list and the stats only; file I/O
 * always runs with it released. */
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sha256.h"

#define NX_INITIAL_BUCKETS 64u
#define NX_NAME_LEN 68u        /* 64 hex digits + ".nxc" */
#define NX_TMP_PREFIX ".tmp-"
#define NX_TMP_NAME_LEN 48u    /* ".tmp-" pid "-" 16 hex, with room to spare */
#define NX_STALE_TEMP_S 60     /* a writer holds its temp file far less */

typedef struct nx_entry_s {
  uint8_t key[32];
  nx_blob_t *blob;                  /* the table's own reference */
  struct nx_entry_s *chain;         /* next in the bucket */
  struct nx_entry_s *newer, *older; /* LRU list */
} nx_entry_t;

struct nx_cache_s {
  pthread_mutex_t lock;
  nx_entry_t **buckets;
  size_t nbuckets; /* power of two */
  nx_entry_t *newest, *oldest;
  uint64_t max_memory, max_disk;
  int dirfd;       /* -1: memory only */
  int trimming;    /* a thread of this cache is trimming the directory */
  uint64_t written_during_trim;
  nx_cache_stats_t stats;
};

typedef struct {
  char name[NX_NAME_LEN + 1];
  uint64_t size;
  struct timespec mtime;
} nx_file_t;

typedef enum { NX_DISK_ABSENT, NX_DISK_OK, NX_DISK_REJECTED } nx_disk_status_t;

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  if (err == NULL || errlen == 0) return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- blobs -------------------------------------------------------------- */

/* Header and payload in one allocation: one malloc per blob, and the
 * payload can never outlive its refcount. */
static nx_blob_t *blob_alloc(size_t len) {
  nx_blob_t *b;
  if (len > SIZE_MAX - sizeof *b) return NULL;
  b = malloc(sizeof *b + len);
  if (b == NULL) return NULL;
  b->data = (const uint8_t *)(b + 1);
  b->len = len;
  b->refs = 1;
  return b;
}

static uint8_t *blob_bytes(nx_blob_t *b) { return (uint8_t *)(b + 1); }

/* Taking a reference needs no ordering: the caller already holds one (or
 * the lock that protects the table's), so the blob cannot be freed under
 * it. Dropping one must publish our reads before a free elsewhere. */
nx_blob_t *nx_blob_retain(nx_blob_t *b) {
  if (b != NULL) __atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
  return b;
}

void nx_blob_release(nx_blob_t *b) {
  if (b != NULL && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0) free(b);
}

/* ---- memory LRU (all under c->lock) ------------------------------------ */

static uint64_t entry_cost(size_t len) { return (uint64_t)len + NX_CACHE_ENTRY_OVERHEAD; }

static int fits_in_memory(const nx_cache_t *c, size_t len) {
  return c->max_memory >= NX_CACHE_ENTRY_OVERHEAD &&
         (uint64_t)len <= c->max_memory - NX_CACHE_ENTRY_OVERHEAD;
}

/* Keys are SHA-256 digests, uniformly random already: their first eight
 * bytes are as good a hash as any function of them. */
static nx_entry_t **find_slot(nx_cache_t *c, const uint8_t key[32]) {
  uint64_t h;
  nx_entry_t **pp;
  memcpy(&h, key, sizeof h);
  pp = &c->buckets[h & (c->nbuckets - 1)];
  while (*pp != NULL && memcmp((*pp)->key, key, 32) != 0) pp = &(*pp)->chain;
  return pp;
}

static void lru_unlink(nx_cache_t *c, nx_entry_t *e) {
  if (e->newer) e->newer->older = e->older;
  else c->newest = e->older;
  if (e->older) e->older->newer = e->newer;
  else c->oldest = e->newer;
  e->newer = e->older = NULL;
}

static void lru_push(nx_cache_t *c, nx_entry_t *e) {
  e->newer = NULL;
  e->older = c->newest;
  if (c->newest) c->newest->newer = e;
  else c->oldest = e;
  c->newest = e;
}

/* Unlinks e from the table and the list and puts it on *dead, to be freed
 * once the lock is released. */
static void drop_locked(nx_cache_t *c, nx_entry_t *e, nx_entry_t **dead) {
  nx_entry_t **pp = find_slot(c, e->key);
  *pp = e->chain;
  lru_unlink(c, e);
  c->stats.entries--;
  c->stats.bytes -= entry_cost(e->blob->len);
  e->chain = *dead;
  *dead = e;
}

/* Load factor 1. A failed allocation keeps the old table: chains grow
 * longer but every lookup still works. */
static void grow_locked(nx_cache_t *c) {
  size_t n = c->nbuckets * 2, i;
  nx_entry_t **nb;
  if (c->stats.entries <= c->nbuckets || n < c->nbuckets) return;
  nb = calloc(n, sizeof *nb);
  if (nb == NULL) return;
  for (i = 0; i < c->nbuckets; i++) {
    nx_entry_t *e = c->buckets[i], *next;
    for (; e != NULL; e = next) {
      uint64_t h;
      next = e->chain;
      memcpy(&h, e->key, sizeof h);
      e->chain = nb[h & (n - 1)];
      nb[h & (n - 1)] = e;
    }
  }
  free(c->buckets);
  c->buckets = nb;
  c->nbuckets = n;
}

/* Links e (which must fit the budget) as the newest entry, replacing any
 * entry with its key, then evicts from the old end until the budget holds.
 * e itself is never evicted: alone it fits. */
static void insert_locked(nx_cache_t *c, nx_entry_t *e, nx_entry_t **dead) {
  nx_entry_t *old = *find_slot(c, e->key);
  nx_entry_t **pp;
  if (old != NULL) drop_locked(c, old, dead);
  pp = find_slot(c, e->key);
  e->chain = NULL;
  *pp = e;
  lru_push(c, e);
  c->stats.entries++;
  c->stats.bytes += entry_cost(e->blob->len);
  while (c->stats.bytes > c->max_memory && c->oldest != e) {
    drop_locked(c, c->oldest, dead);
    c->stats.evictions++;
  }
  grow_locked(c);
}

static nx_entry_t *entry_new(const uint8_t key[32], nx_blob_t *b) {
  nx_entry_t *e = calloc(1, sizeof *e);
  if (e == NULL) return NULL;
  memcpy(e->key, key, 32);
  e->blob = nx_blob_retain(b);
  return e;
}

static void free_entries(nx_entry_t *e) {
  nx_entry_t *next;
  for (; e != NULL; e = next) {
    next = e->chain;
    nx_blob_release(e->blob);
    free(e);
  }
}

/* ---- disk: helpers ---------------------------------------------------- */

static void store_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void store_le64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t load_le32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static uint64_t load_le64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

static void key_name(const uint8_t key[32], char name[NX_NAME_LEN + 1]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 32; i++) {
    name[2 * i] = hex[key[i] >> 4];
    name[2 * i + 1] = hex[key[i] & 15];
  }
  memcpy(name + 64, ".nxc", 5);
}

static int is_cache_name(const char *name) {
  if (strlen(name) != NX_NAME_LEN || strcmp(name + 64, ".nxc") != 0) return 0;
  for (int i = 0; i < 64; i++)
    if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f'))) return 0;
  return 1;
}

static void checksum(const uint8_t key[32], const uint8_t *data, size_t len, uint8_t out[32]) {
  nx_sha256_t s;
  nx_sha256_init(&s);
  nx_sha256_update(&s, key, 32);
  nx_sha256_update(&s, data, len);
  nx_sha256_final(&s, out);
}

/* 0 when all n bytes were read; -1 on error or early end of file. */
static int read_full(int fd, uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static int write_full(int fd, const uint8_t *p, size_t n) {
  while (n > 0) {
    ssize_t r = write(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Temp names carry the pid and 64 random bits so processes sharing the
 * directory never pick the same one; O_EXCL settles the rare collision
 * (and getrandom failing, when the clock stands in for it). */
static int open_temp(int dirfd, char name[NX_TMP_NAME_LEN]) {
  for (int attempt = 0; attempt < 8; attempt++) {
    uint64_t r;
    int fd;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r) {
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      r = ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec) * 0x9e3779b97f4a7c15u +
          (uint64_t)attempt;
    }
    snprintf(name, NX_TMP_NAME_LEN, NX_TMP_PREFIX "%ld-%016llx", (long)getpid(),
             (unsigned long long)r);
    fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) return fd;
    if (errno != EEXIST) break;
  }
  name[0] = '\0';
  return -1;
}

/* ---- disk: read --------------------------------------------------------- */

/* Removes a rejected file, unless the name no longer refers to what we
 * read: another process may have renamed a good file over it meanwhile.
 * A lost race here costs one recompile, never a wrong answer. */
static void forget_file(int dirfd, const char *name, int fd) {
  struct stat ours, now;
  if (fd >= 0 && fstat(fd, &ours) != 0) return;
  if (fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) != 0) return;
  if (fd >= 0 && (ours.st_dev != now.st_dev || ours.st_ino != now.st_ino)) return;
  (void)unlinkat(dirfd, name, 0);
}

/* Reads and verifies key's file. *size gets the size of a rejected file,
 * for the directory estimate. Failures that say nothing about the file
 * (EMFILE, ENOMEM, EACCES) are plain misses and leave it alone. */
static nx_disk_status_t disk_read(nx_cache_t *c, const uint8_t key[32], nx_blob_t **out,
                                  uint64_t *size) {
  char name[NX_NAME_LEN + 1];
  uint8_t hdr[NX_CACHE_HEADER_LEN], sum[32];
  nx_disk_status_t rc = NX_DISK_REJECTED;
  nx_blob_t *b = NULL;
  struct stat st;
  uint64_t len;
  int fd;

  *out = NULL;
  *size = 0;
  key_name(key, name);
  /* O_NOFOLLOW: a planted symlink is foreign. O_NONBLOCK: a planted FIFO
   * must not hang the worker in open(); fstat then rejects it. */
  fd = openat(c->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    rc = errno == ELOOP ? NX_DISK_REJECTED : NX_DISK_ABSENT;
    goto done;
  }
  if (fstat(fd, &st) != 0) {
    rc = NX_DISK_ABSENT;
    goto done;
  }
  if (!S_ISREG(st.st_mode)) goto done;
  *size = (uint64_t)st.st_size;
  if (*size < NX_CACHE_HEADER_LEN || *size - NX_CACHE_HEADER_LEN > NX_CACHE_MAX_DISK_BLOB ||
      read_full(fd, hdr, sizeof hdr) != 0)
    goto done;
  len = load_le64(hdr + 8);
  if (memcmp(hdr, NX_CACHE_MAGIC, 4) != 0 || load_le32(hdr + 4) != NX_CACHE_FORMAT ||
      len != *size - NX_CACHE_HEADER_LEN)
    goto done;
  b = blob_alloc((size_t)len);
  if (b == NULL) {
    rc = NX_DISK_ABSENT;
    goto done;
  }
  if (read_full(fd, blob_bytes(b), b->len) != 0) goto done;
  checksum(key, b->data, b->len, sum);
  if (memcmp(sum, hdr + 16, 32) != 0) goto done;
  /* Trimming drops the files with the oldest mtime; refreshing it on a hit
   * makes that least-recently-used rather than least-recently-written.
   * mtime rather than atime because relatime/noatime mounts make atime
   * unreliable. Best effort: a file we may read but not touch still works. */
  (void)futimens(fd, NULL);
  *out = b;
  b = NULL;
  rc = NX_DISK_OK;

done:
  if (rc == NX_DISK_REJECTED) forget_file(c->dirfd, name, fd);
  nx_blob_release(b);
  if (fd >= 0) close(fd);
  return rc;
}

/* ---- disk: write -------------------------------------------------------- */

/* Writes a temp file and renames it over the final name, so a reader in
 * any process sees the old file, the new one, or none, never a torn one.
 * No fsync: after a crash the worst left behind is a short or empty file,
 * which the size and checksum checks reject and the next put replaces; a
 * cache does not need the durability an fsync would buy at its price.
 * *replaced gets the size of the file renamed over, for the estimate. */
static int disk_write(nx_cache_t *c, const uint8_t key[32], const uint8_t *data, size_t len,
                      uint64_t *replaced) {
  char name[NX_NAME_LEN + 1], tmp[NX_TMP_NAME_LEN];
  uint8_t hdr[NX_CACHE_HEADER_LEN];
  struct stat st;
  int fd = -1, rc = -1;

  tmp[0] = '\0';
  *replaced = 0;
  if (len > NX_CACHE_MAX_DISK_BLOB) goto fail; /* readers would refuse it */
  key_name(key, name);
  memcpy(hdr, NX_CACHE_MAGIC, 4);
  store_le32(hdr + 4, NX_CACHE_FORMAT);
  store_le64(hdr + 8, len);
  checksum(key, data, len, hdr + 16);
  fd = open_temp(c->dirfd, tmp);
  if (fd < 0 || write_full(fd, hdr, sizeof hdr) != 0 || write_full(fd, data, len) != 0)
    goto fail;
  if (close(fd) != 0) { /* NFS reports write errors here */
    fd = -1;
    goto fail;
  }
  fd = -1;
  if (fstatat(c->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
    *replaced = (uint64_t)st.st_size;
  if (renameat(c->dirfd, tmp, c->dirfd, name) != 0) goto fail;
  tmp[0] = '\0';
  rc = 0;

fail:
  if (fd >= 0) close(fd);
  if (tmp[0] != '\0') (void)unlinkat(c->dirfd, tmp, 0);
  return rc;
}

/* ---- disk: scanning and trimming ------------------------------------- */

static int older_first(const void *a, const void *b) {
  const nx_file_t *x = a, *y = b;
  if (x->mtime.tv_sec != y->mtime.tv_sec) return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
  if (x->mtime.tv_nsec != y->mtime.tv_nsec) return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
  return strcmp(x->name, y->name);
}

/* Sums the sizes of the cache files in the directory and, when files is
 * not NULL, lists them. Temp files older than NX_STALE_TEMP_S belong to a
 * writer that died before its rename; they are removed on the way. Names
 * that are neither are not ours and are left alone. */
static int scan_dir(int dirfd, nx_file_t **files, size_t *nfiles, uint64_t *total) {
  nx_file_t *list = NULL;
  size_t n = 0, cap = 0;
  struct timespec now;
  struct dirent *de;
  DIR *d = NULL;
  int fd, rc = -1;

  *total = 0;
  clock_gettime(CLOCK_REALTIME, &now);
  /* fdopendir owns the fd it is given; the cache keeps its own. */
  fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) goto fail;
  d = fdopendir(fd);
  if (d == NULL) {
    close(fd);
    goto fail;
  }
  for (;;) {
    struct stat st;
    errno = 0;
    de = readdir(d);
    if (de == NULL) {
      if (errno != 0) goto fail;
      break;
    }
    if (strncmp(de->d_name, NX_TMP_PREFIX, strlen(NX_TMP_PREFIX)) == 0) {
      if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
          now.tv_sec - st.st_mtim.tv_sec > NX_STALE_TEMP_S)
        (void)unlinkat(dirfd, de->d_name, 0);
      continue;
    }
    /* A file removed since readdir listed it is simply not counted. */
    if (!is_cache_name(de->d_name) || fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode))
      continue;
    *total += (uint64_t)st.st_size;
    if (files == NULL) continue;
    if (n == cap) {
      size_t ncap = cap ? cap * 2 : 64;
      nx_file_t *grown = ncap > SIZE_MAX / sizeof *list ? NULL : realloc(list, ncap * sizeof *list);
      if (grown == NULL) goto fail;
      list = grown;
      cap = ncap;
    }
    memcpy(list[n].name, de->d_name, NX_NAME_LEN + 1);
    list[n].size = (uint64_t)st.st_size;
    list[n].mtime = st.st_mtim;
    n++;
  }
  if (files != NULL) {
    *files = list;
    *nfiles = n;
    list = NULL;
  }
  rc = 0;

fail:
  if (d != NULL) closedir(d);
  free(list);
  return rc;
}

/* Removes the least recently used files (oldest mtime; hits refresh it)
 * until the directory is under 90% of the bound, so a cache at its limit
 * does not rescan on every write. Another process may be trimming the
 * same files: one already gone counts as removed. */
static int trim_dir(nx_cache_t *c, uint64_t *total) {
  uint64_t target = c->max_disk - c->max_disk / 10;
  nx_file_t *files = NULL;
  size_t n = 0, i;

  if (scan_dir(c->dirfd, &files, &n, total) != 0) return -1;
  if (*total > c->max_disk && n > 0) {
    qsort(files, n, sizeof *files, older_first);
    for (i = 0; i < n && *total > target; i++)
      if (unlinkat(c->dirfd, files[i].name, 0) == 0 || errno == ENOENT) *total -= files[i].size;
  }
  free(files);
  return 0;
}

/* Writes key's file and keeps the size estimate; the put that takes the
 * estimate over the bound runs the trim itself, without the lock. The
 * estimate is the last scan plus this cache's writes: processes sharing a
 * directory each trim when their own view passes the bound, so the
 * directory can exceed it by what the others wrote since. One trim at a
 * time per cache; writes that land meanwhile are added to its result
 * (counting some twice errs towards trimming early, never late). */
static void disk_store(nx_cache_t *c, const uint8_t key[32], const uint8_t *data, size_t len) {
  uint64_t replaced, added = NX_CACHE_HEADER_LEN + (uint64_t)len, total = 0;
  int ok = disk_write(c, key, data, len, &replaced) == 0, trim = 0;

  pthread_mutex_lock(&c->lock);
  if (ok) {
    c->stats.disk_writes++;
    c->stats.disk_bytes -= replaced < c->stats.disk_bytes ? replaced : c->stats.disk_bytes;
    c->stats.disk_bytes += added;
    if (c->trimming) c->written_during_trim += added;
    else if (c->max_disk != 0 && c->stats.disk_bytes > c->max_disk) {
      c->trimming = 1;
      c->written_during_trim = 0;
      trim = 1;
    }
  } else {
    c->stats.disk_write_errors++;
  }
  pthread_mutex_unlock(&c->lock);
  if (!trim) return;

  ok = trim_dir(c, &total) == 0;
  pthread_mutex_lock(&c->lock);
  if (ok) {
    c->stats.disk_bytes = total + c->written_during_trim;
    c->stats.disk_trims++;
  }
  c->trimming = 0;
  pthread_mutex_unlock(&c->lock);
}

/* ---- public ------------------------------------------------------------- */

/* mkdir -p. Components that exist are fine whatever their mode: the
 * writability probe in open_dir is what decides. */
static int make_dirs(const char *dir, char *err, size_t errlen) {
  char *path = strdup(dir), *p;
  int rc = -1;

  if (path == NULL) {
    set_err(err, errlen, "out of memory");
    goto fail;
  }
  for (p = path + 1; ; p++) {
    char saved = *p;
    if (saved != '/' && saved != '\0') continue;
    *p = '\0';
    if (mkdir(path, 0700) != 0 && errno != EEXIST) {
      set_err(err, errlen, "cannot create cache directory %s: %s", path, strerror(errno));
      goto fail;
    }
    *p = saved;
    if (saved == '\0') break;
  }
  rc = 0;

fail:
  free(path);
  return rc;
}

static int open_dir(nx_cache_t *c, const char *dir, char *err, size_t errlen) {
  char tmp[NX_TMP_NAME_LEN];
  int fd;

  if (dir[0] == '\0') {
    set_err(err, errlen, "cache directory is an empty string");
    return -1;
  }
  if (make_dirs(dir, err, errlen) != 0) return -1;
  c->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (c->dirfd < 0) {
    set_err(err, errlen, "cannot open cache directory %s: %s", dir, strerror(errno));
    return -1;
  }
  /* Permission bits do not tell (root, read-only mounts, ACLs): try it. */
  fd = open_temp(c->dirfd, tmp);
  if (fd < 0) {
    set_err(err, errlen, "cache directory %s is not writable: %s", dir, strerror(errno));
    return -1;
  }
  close(fd);
  (void)unlinkat(c->dirfd, tmp, 0);
  if (scan_dir(c->dirfd, NULL, NULL, &c->stats.disk_bytes) != 0) {
    set_err(err, errlen, "cannot list cache directory %s: %s", dir, strerror(errno));
    return -1;
  }
  return 0;
}

nx_cache_t *nx_cache_new(uint64_t max_memory_bytes, const char *dir, uint64_t max_disk_bytes,
                         char *err, size_t errlen) {
  nx_cache_t *c = calloc(1, sizeof *c);
  int mutex_ready = 0;

  if (c == NULL) goto oom;
  c->dirfd = -1;
  c->max_memory = max_memory_bytes;
  c->max_disk = max_disk_bytes;
  c->nbuckets = NX_INITIAL_BUCKETS;
  c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
  if (c->buckets == NULL) goto oom;
  if (pthread_mutex_init(&c->lock, NULL) != 0) goto oom;
  mutex_ready = 1;
  if (dir != NULL && open_dir(c, dir, err, errlen) != 0) goto fail;
  return c;

oom:
  set_err(err, errlen, "out of memory");
fail:
  if (c != NULL) {
    if (c->dirfd >= 0) close(c->dirfd);
    if (mutex_ready) pthread_mutex_destroy(&c->lock);
    free(c->buckets);
    free(c);
  }
  return NULL;
}

void nx_cache_free(nx_cache_t *c) {
  nx_entry_t *e, *older;
  if (c == NULL) return;
  for (e = c->newest; e != NULL; e = older) {
    older = e->older;
    nx_blob_release(e->blob);
    free(e);
  }
  free(c->buckets);
  if (c->dirfd >= 0) close(c->dirfd);
  pthread_mutex_destroy(&c->lock);
  free(c);
}

nx_blob_t *nx_cache_get(nx_cache_t *c, const uint8_t key[32], nx_cache_where_t *where) {
  nx_cache_where_t found = NX_CACHE_MISS;
  nx_entry_t *e, *dead = NULL, *fresh = NULL;
  nx_disk_status_t status;
  nx_blob_t *b = NULL;
  uint64_t size;

  pthread_mutex_lock(&c->lock);
  e = *find_slot(c, key);
  if (e != NULL) {
    lru_unlink(c, e);
    lru_push(c, e);
    b = nx_blob_retain(e->blob);
    found = NX_CACHE_HIT_MEMORY;
    c->stats.hits_memory++;
  } else if (c->dirfd < 0) {
    c->stats.misses++;
  }
  pthread_mutex_unlock(&c->lock);
  if (b != NULL || c->dirfd < 0) goto done;

  status = disk_read(c, key, &b, &size);
  /* Allocated before locking; without it the hit is served unpromoted. */
  if (b != NULL && fits_in_memory(c, b->len)) fresh = entry_new(key, b);
  pthread_mutex_lock(&c->lock);
  if (b != NULL) {
    found = NX_CACHE_HIT_DISK;
    c->stats.hits_disk++;
    /* A put that raced us holds the same bytes, and is newer: keep it. */
    if (fresh != NULL && *find_slot(c, key) == NULL) {
      insert_locked(c, fresh, &dead);
      fresh = NULL;
    }
  } else {
    c->stats.misses++;
    if (status == NX_DISK_REJECTED) {
      c->stats.disk_rejected++;
      c->stats.disk_bytes -= size < c->stats.disk_bytes ? size : c->stats.disk_bytes;
    }
  }
  pthread_mutex_unlock(&c->lock);
  free_entries(dead);
  free_entries(fresh);

done:
  if (where != NULL) *where = found;
  return b;
}

nx_blob_t *nx_cache_put(nx_cache_t *c, const uint8_t key[32], const uint8_t *data, size_t len) {
  nx_blob_t *b = blob_alloc(len);
  nx_entry_t *e = NULL, *dead = NULL;

  if (b == NULL) goto fail;
  if (len > 0) memcpy(blob_bytes(b), data, len);
  if (fits_in_memory(c, len)) {
    e = entry_new(key, b);
    if (e == NULL) goto fail;
    pthread_mutex_lock(&c->lock);
    insert_locked(c, e, &dead);
    pthread_mutex_unlock(&c->lock);
    free_entries(dead);
  }
  if (c->dirfd >= 0) disk_store(c, key, b->data, b->len);
  return b;

fail:
  nx_blob_release(b);
  return NULL;
}

void nx_cache_stats(nx_cache_t *c, nx_cache_stats_t *out) {
  pthread_mutex_lock(&c->lock);
  *out = c->stats;
  pthread_mutex_unlock(&c->lock);
}

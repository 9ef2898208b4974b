/* The compile cache's directory (see cache_disk.h): the file format,
 * atomic writes by rename, verified reads, and trimming by size. Its mutex
 * guards the stats and the trimming state only; file I/O always runs with
 * it released. */
#include "cache_disk.h"

#include "blob.h"

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
#include "util.h"

#define NX_NAME_LEN 68u /* 64 hex digits + ".nxc" */
#define NX_TMP_PREFIX ".tmp-"
#define NX_TMP_NAME_LEN 48u /* ".tmp-" pid "-" 16 hex, with room to spare */
#define NX_STALE_TEMP_S 60  /* a writer holds its temp file far less */

struct nx_cache_disk_s {
  pthread_mutex_t lock;
  int dirfd;
  uint64_t max_bytes; /* 0: unbounded */
  int trimming;       /* a thread of this cache is trimming the directory */
  uint64_t written_during_trim;
  nx_cache_stats_t stats; /* the disk_* fields */
};

typedef struct {
  char name[NX_NAME_LEN + 1];
  uint64_t size;
  struct timespec mtime;
} nx_file_t;

__attribute__((format(printf, 3, 4))) static void set_err(char *err, size_t errlen, const char *fmt,
                                                          ...) {
  va_list ap;
  if (err == NULL || errlen == 0) return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* ---- helpers -------------------------------------------------------------- */

static void key_name(const uint8_t key[32], char name[NX_NAME_LEN + 1]) {
  nx_util_hex_encode(key, 32, name);
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

/* ---- read --------------------------------------------------------- */

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
static nx_cache_disk_status_t disk_read(nx_cache_disk_t *d, const uint8_t key[32], nx_blob_t **out,
                                        uint64_t *size) {
  char name[NX_NAME_LEN + 1];
  uint8_t hdr[NX_CACHE_HEADER_LEN], sum[32];
  nx_cache_disk_status_t rc = NX_CACHE_DISK_REJECTED;
  nx_blob_t *b = NULL;
  struct stat st;
  uint64_t len;
  int fd;

  *out = NULL;
  *size = 0;
  key_name(key, name);
  /* O_NOFOLLOW: a planted symlink is foreign. O_NONBLOCK: a planted FIFO
   * must not hang the worker in open(); fstat then rejects it. */
  fd = openat(d->dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    rc = errno == ELOOP ? NX_CACHE_DISK_REJECTED : NX_CACHE_DISK_ABSENT;
    goto done;
  }
  if (fstat(fd, &st) != 0) {
    rc = NX_CACHE_DISK_ABSENT;
    goto done;
  }
  if (!S_ISREG(st.st_mode)) goto done;
  *size = (uint64_t)st.st_size;
  if (*size < NX_CACHE_HEADER_LEN || *size - NX_CACHE_HEADER_LEN > NX_CACHE_MAX_DISK_BLOB ||
      nx_util_read_full(fd, hdr, sizeof hdr) != 0)
    goto done;
  len = nx_util_le64_get(hdr + 8);
  if (memcmp(hdr, NX_CACHE_MAGIC, 4) != 0 || nx_util_le32_get(hdr + 4) != NX_CACHE_FORMAT ||
      len != *size - NX_CACHE_HEADER_LEN)
    goto done;
  b = nx_blob_new((size_t)len);
  if (b == NULL) {
    rc = NX_CACHE_DISK_ABSENT;
    goto done;
  }
  if (nx_util_read_full(fd, nx_blob_bytes(b), b->len) != 0) goto done;
  checksum(key, b->data, b->len, sum);
  if (memcmp(sum, hdr + 16, 32) != 0) goto done;
  /* Trimming drops the files with the oldest mtime; refreshing it on a hit
   * makes that least-recently-used rather than least-recently-written.
   * mtime rather than atime because relatime/noatime mounts make atime
   * unreliable. Best effort: a file we may read but not touch still works. */
  (void)futimens(fd, NULL);
  *out = b;
  b = NULL;
  rc = NX_CACHE_DISK_OK;

done:
  if (rc == NX_CACHE_DISK_REJECTED) forget_file(d->dirfd, name, fd);
  nx_blob_release(b);
  if (fd >= 0) close(fd);
  return rc;
}

/* ---- write -------------------------------------------------------- */

/* Writes a temp file and renames it over the final name, so a reader in
 * any process sees the old file, the new one, or none, never a torn one.
 * No fsync: after a crash the worst left behind is a short or empty file,
 * which the size and checksum checks reject and the next put replaces; a
 * cache does not need the durability an fsync would buy at its price.
 * *replaced gets the size of the file renamed over, for the estimate. */
static int disk_write(nx_cache_disk_t *d, const uint8_t key[32], const uint8_t *data, size_t len,
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
  nx_util_le32_put(hdr + 4, NX_CACHE_FORMAT);
  nx_util_le64_put(hdr + 8, len);
  checksum(key, data, len, hdr + 16);
  fd = open_temp(d->dirfd, tmp);
  if (fd < 0 || nx_util_write_full(fd, hdr, sizeof hdr) != 0 ||
      nx_util_write_full(fd, data, len) != 0)
    goto fail;
  if (close(fd) != 0) { /* NFS reports write errors here */
    fd = -1;
    goto fail;
  }
  fd = -1;
  if (fstatat(d->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
    *replaced = (uint64_t)st.st_size;
  if (renameat(d->dirfd, tmp, d->dirfd, name) != 0) goto fail;
  tmp[0] = '\0';
  rc = 0;

fail:
  if (fd >= 0) close(fd);
  if (tmp[0] != '\0') (void)unlinkat(d->dirfd, tmp, 0);
  return rc;
}

/* ---- scanning and trimming ------------------------------------- */

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
static int trim_dir(nx_cache_disk_t *d, uint64_t *total) {
  uint64_t target = d->max_bytes - d->max_bytes / 10;
  nx_file_t *files = NULL;
  size_t n = 0, i;

  if (scan_dir(d->dirfd, &files, &n, total) != 0) return -1;
  if (*total > d->max_bytes && n > 0) {
    qsort(files, n, sizeof *files, older_first);
    for (i = 0; i<n && * total> target; i++)
      if (unlinkat(d->dirfd, files[i].name, 0) == 0 || errno == ENOENT) *total -= files[i].size;
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
void nx_cache_disk_store(nx_cache_disk_t *d, const uint8_t key[32], const uint8_t *data,
                         size_t len) {
  uint64_t replaced, added = NX_CACHE_HEADER_LEN + (uint64_t)len, total = 0;
  int ok = disk_write(d, key, data, len, &replaced) == 0, trim = 0;

  pthread_mutex_lock(&d->lock);
  if (ok) {
    d->stats.disk_writes++;
    d->stats.disk_bytes -= replaced < d->stats.disk_bytes ? replaced : d->stats.disk_bytes;
    d->stats.disk_bytes += added;
    if (d->trimming)
      d->written_during_trim += added;
    else if (d->max_bytes != 0 && d->stats.disk_bytes > d->max_bytes) {
      d->trimming = 1;
      d->written_during_trim = 0;
      trim = 1;
    }
  } else {
    d->stats.disk_write_errors++;
  }
  pthread_mutex_unlock(&d->lock);
  if (!trim) return;

  ok = trim_dir(d, &total) == 0;
  pthread_mutex_lock(&d->lock);
  if (ok) {
    d->stats.disk_bytes = total + d->written_during_trim;
    d->stats.disk_trims++;
  }
  d->trimming = 0;
  pthread_mutex_unlock(&d->lock);
}

/* mkdir -p. Components that exist are fine whatever their mode: the
 * writability probe in open_dir is what decides. */
static int make_dirs(const char *dir, char *err, size_t errlen) {
  char *path = strdup(dir), *p;
  int rc = -1;

  if (path == NULL) {
    set_err(err, errlen, "out of memory");
    goto fail;
  }
  for (p = path + 1;; p++) {
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

static int open_dir(nx_cache_disk_t *d, const char *dir, char *err, size_t errlen) {
  char tmp[NX_TMP_NAME_LEN];
  int fd;

  if (dir[0] == '\0') {
    set_err(err, errlen, "cache directory is an empty string");
    return -1;
  }
  if (make_dirs(dir, err, errlen) != 0) return -1;
  d->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d->dirfd < 0) {
    set_err(err, errlen, "cannot open cache directory %s: %s", dir, strerror(errno));
    return -1;
  }
  /* Permission bits do not tell (root, read-only mounts, ACLs): try it. */
  fd = open_temp(d->dirfd, tmp);
  if (fd < 0) {
    set_err(err, errlen, "cache directory %s is not writable: %s", dir, strerror(errno));
    return -1;
  }
  close(fd);
  (void)unlinkat(d->dirfd, tmp, 0);
  if (scan_dir(d->dirfd, NULL, NULL, &d->stats.disk_bytes) != 0) {
    set_err(err, errlen, "cannot list cache directory %s: %s", dir, strerror(errno));
    return -1;
  }
  return 0;
}

/* ---- public ------------------------------------------------------------- */

nx_cache_disk_t *nx_cache_disk_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen) {
  nx_cache_disk_t *d = calloc(1, sizeof *d);
  if (d == NULL) {
    set_err(err, errlen, "out of memory");
    return NULL;
  }
  d->dirfd = -1;
  d->max_bytes = max_bytes;
  pthread_mutex_init(&d->lock, NULL);
  if (open_dir(d, dir, err, errlen) != 0) {
    nx_cache_disk_close(d);
    return NULL;
  }
  return d;
}

void nx_cache_disk_close(nx_cache_disk_t *d) {
  if (d == NULL) return;
  if (d->dirfd >= 0) close(d->dirfd);
  pthread_mutex_destroy(&d->lock);
  free(d);
}

nx_cache_disk_status_t nx_cache_disk_read(nx_cache_disk_t *d, const uint8_t key[32],
                                          nx_blob_t **out) {
  uint64_t size;
  nx_cache_disk_status_t status = disk_read(d, key, out, &size);
  if (status == NX_CACHE_DISK_REJECTED) {
    pthread_mutex_lock(&d->lock);
    d->stats.disk_rejected++;
    d->stats.disk_bytes -= size < d->stats.disk_bytes ? size : d->stats.disk_bytes;
    pthread_mutex_unlock(&d->lock);
  }
  return status;
}

void nx_cache_disk_stats(nx_cache_disk_t *d, nx_cache_stats_t *out) {
  pthread_mutex_lock(&d->lock);
  out->disk_writes = d->stats.disk_writes;
  out->disk_rejected = d->stats.disk_rejected;
  out->disk_bytes = d->stats.disk_bytes;
  out->disk_write_errors = d->stats.disk_write_errors;
  out->disk_trims = d->stats.disk_trims;
  pthread_mutex_unlock(&d->lock);
}

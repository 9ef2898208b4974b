/* Standalone tests for src/sha256.c and src/cache.c: digest vectors, the
 * memory LRU, the disk format and its rejections, trimming, and several
 * processes and threads sharing one cache directory. Usage: cache_test
 * [scratch-dir]; the last line says "N passed, M failed". */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "sha256.h"

typedef struct {
  int failed; /* atomically incremented: worker threads check too */
  char base[PATH_MAX - 128];
} tctx_t;

#define CHECK(t, cond)                                                           \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "  %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      __atomic_add_fetch(&(t)->failed, 1, __ATOMIC_RELAXED);                     \
    }                                                                            \
  } while (0)

#define MIB (1024u * 1024u)

/* ---- helpers ------------------------------------------------------------ */

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static void fill(uint8_t *p, size_t n, uint64_t seed) {
  for (size_t i = 0; i < n; i++) {
    if (i % 8 == 0) splitmix(&seed);
    p[i] = (uint8_t)(seed >> (8 * (i % 8)));
  }
}

static void make_key(uint8_t key[32], const char *label, uint64_t n) {
  char s[96];
  int len = snprintf(s, sizeof s, "%s-%llu", label, (unsigned long long)n);
  nx_sha256(s, (size_t)len, key);
}

static void hex(const uint8_t *p, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", p[i]);
}

/* Scratch paths are short; running out of PATH_MAX is a broken setup. */
static void path_join(char *out, const char *dir, const char *name) {
  int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
  if (n < 0 || n >= PATH_MAX) abort();
}

static void subdir(tctx_t *t, const char *name, char *out) { path_join(out, t->base, name); }

static void key_path(const char *dir, const uint8_t key[32], char *out) {
  char h[70];
  hex(key, 32, h);
  memcpy(h + 64, ".nxc", 5);
  path_join(out, dir, h);
}

static int exists(const char *path) {
  struct stat st;
  return lstat(path, &st) == 0;
}

static long long file_size(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static int write_file(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  int ok;
  if (f == NULL) return -1;
  ok = fwrite(p, 1, n, f) == n;
  return fclose(f) == 0 && ok ? 0 : -1;
}

static uint8_t *read_file(const char *path, size_t *n) {
  long long size = file_size(path);
  uint8_t *p;
  FILE *f;
  if (size < 0 || (p = malloc((size_t)size + 1)) == NULL) return NULL;
  f = fopen(path, "rb");
  if (f == NULL || fread(p, 1, (size_t)size, f) != (size_t)size) {
    if (f) fclose(f);
    free(p);
    return NULL;
  }
  fclose(f);
  *n = (size_t)size;
  return p;
}

static int set_mtime(const char *path, time_t when) {
  struct timespec ts[2] = {{when, 0}, {when, 0}};
  return utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW);
}

static int blob_is(const nx_blob_t *b, const uint8_t *p, size_t n) {
  return b != NULL && b->len == n && (n == 0 || memcmp(b->data, p, n) == 0);
}

static nx_cache_t *open_cache(tctx_t *t, uint64_t mem, const char *dir, uint64_t disk) {
  char err[256] = "";
  nx_cache_t *c = nx_cache_new(mem, dir, disk, err, sizeof err);
  if (c == NULL) fprintf(stderr, "  nx_cache_new: %s\n", err);
  CHECK(t, c != NULL);
  return c;
}

static nx_cache_stats_t stats_of(nx_cache_t *c) {
  nx_cache_stats_t s;
  nx_cache_stats(c, &s);
  return s;
}

/* Puts and drops the returned reference. */
static int put(nx_cache_t *c, const uint8_t key[32], const uint8_t *p, size_t n) {
  nx_blob_t *b = nx_cache_put(c, key, p, n);
  int ok = blob_is(b, p, n);
  nx_blob_release(b);
  return ok;
}

/* Gets and compares; returns where it was found (MISS if the content was
 * wrong, which the caller's expectation then reports). */
static nx_cache_where_t get_is(nx_cache_t *c, const uint8_t key[32], const uint8_t *p, size_t n) {
  nx_cache_where_t where = (nx_cache_where_t)-1;
  nx_blob_t *b = nx_cache_get(c, key, &where);
  int ok = b == NULL ? where == NX_CACHE_MISS : blob_is(b, p, n) && where != NX_CACHE_MISS;
  nx_blob_release(b);
  return ok ? where : (nx_cache_where_t)-1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

/* ---- sha256 ------------------------------------------------------------- */

static int digest_is(const uint8_t d[32], const char *want) {
  char h[65];
  hex(d, 32, h);
  return strcmp(h, want) == 0;
}

static void test_sha256_vectors(tctx_t *t) {
  static const struct {
    const char *msg, *digest;
  } v[] = {
      {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
      {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
      {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
      {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmn"
       "opqrsmnopqrstnopqrstu",
       "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
  };
  static const char *million_a = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
  uint8_t d[32], ref[32], msg[300];
  char *a = malloc(1000000);
  nx_sha256_t s;
  size_t i, off, step;

  for (i = 0; i < sizeof v / sizeof v[0]; i++) {
    nx_sha256(v[i].msg, strlen(v[i].msg), d);
    CHECK(t, digest_is(d, v[i].digest));
  }
  CHECK(t, a != NULL);
  if (a == NULL) return;
  memset(a, 'a', 1000000);
  nx_sha256(a, 1000000, d);
  CHECK(t, digest_is(d, million_a));
  /* Odd chunk sizes cross the block boundary at every offset. */
  nx_sha256_init(&s);
  for (off = 0, step = 1; off < 1000000; off += step, step = step % 131 + 1) {
    size_t n = step < 1000000 - off ? step : 1000000 - off;
    nx_sha256_update(&s, a + off, n);
  }
  nx_sha256_final(&s, d);
  CHECK(t, digest_is(d, million_a));
  free(a);

  fill(msg, sizeof msg, 7);
  for (size_t len = 0; len <= sizeof msg; len += 13) {
    nx_sha256(msg, len, ref);
    for (size_t cut = 0; cut <= len; cut++) {
      nx_sha256_init(&s);
      nx_sha256_update(&s, msg, cut);
      nx_sha256_update(&s, msg + cut, len - cut);
      nx_sha256_final(&s, d);
      if (memcmp(d, ref, 32) != 0) {
        CHECK(t, !"split digest differs");
        return;
      }
    }
  }
}

static void test_sha256_vs_sha256sum(tctx_t *t) {
  static const size_t big[] = {1 * MIB, 3 * MIB + 5};
  enum { NSMALL = 201, NFILES = NSMALL + 2 };
  char dir[PATH_MAX], path[PATH_MAX], cmd[PATH_MAX + 64], line[PATH_MAX + 80];
  char want[NFILES][65];
  int seen = 0;
  uint8_t *buf = malloc(3 * MIB + 5);
  FILE *p;

  CHECK(t, buf != NULL);
  if (buf == NULL) return;
  if (system("command -v sha256sum >/dev/null 2>&1") != 0) {
    printf("  (sha256sum not found: compared against vectors only)\n");
    free(buf);
    return;
  }
  subdir(t, "sha256sum", dir);
  CHECK(t, mkdir(dir, 0700) == 0);
  for (int i = 0; i < NFILES; i++) {
    size_t n = i < NSMALL ? (size_t)i : big[i - NSMALL];
    uint8_t d[32];
    fill(buf, n, 1000 + (uint64_t)i);
    char name[16];
    snprintf(name, sizeof name, "f%03d", i);
    path_join(path, dir, name);
    CHECK(t, write_file(path, buf, n) == 0);
    nx_sha256(buf, n, d);
    hex(d, 32, want[i]);
  }
  snprintf(cmd, sizeof cmd, "cd '%s' && sha256sum f*", dir);
  p = popen(cmd, "r");
  CHECK(t, p != NULL);
  while (p != NULL && fgets(line, sizeof line, p) != NULL) {
    int i;
    char *name = strstr(line, "  f");
    if (name == NULL || sscanf(name + 3, "%d", &i) != 1 || i < 0 || i >= NFILES) continue;
    CHECK(t, strncmp(line, want[i], 64) == 0);
    seen++;
  }
  if (p != NULL) CHECK(t, pclose(p) == 0);
  CHECK(t, seen == NFILES);
  free(buf);
}

/* ---- memory LRU ----------------------------------------------------------- */

#define COST(n) ((uint64_t)(n) + NX_CACHE_ENTRY_OVERHEAD)

static void test_memory_hit_and_miss(tctx_t *t) {
  nx_cache_t *c = open_cache(t, 1 * MIB, NULL, 0);
  uint8_t k[32], k2[32], data[500];
  nx_cache_where_t where = NX_CACHE_HIT_DISK;
  nx_cache_stats_t s;
  nx_blob_t *b;

  if (c == NULL) return;
  make_key(k, "mem", 1);
  make_key(k2, "mem", 2);
  fill(data, sizeof data, 1);
  CHECK(t, nx_cache_get(c, k, &where) == NULL && where == NX_CACHE_MISS);
  b = nx_cache_put(c, k, data, sizeof data);
  CHECK(t, blob_is(b, data, sizeof data));
  data[0] ^= 1; /* the cache keeps a copy */
  CHECK(t, b != NULL && b->data[0] != data[0]);
  data[0] ^= 1;
  nx_blob_release(b);
  CHECK(t, get_is(c, k, data, sizeof data) == NX_CACHE_HIT_MEMORY);
  CHECK(t, get_is(c, k2, NULL, 0) == NX_CACHE_MISS);
  CHECK(t, nx_cache_get(c, k2, NULL) == NULL);
  CHECK(t, put(c, k2, NULL, 0)); /* empty blobs are blobs too */
  CHECK(t, get_is(c, k2, NULL, 0) == NX_CACHE_HIT_MEMORY);
  s = stats_of(c);
  CHECK(t, s.entries == 2 && s.bytes == COST(500) + COST(0));
  CHECK(t, s.hits_memory == 2 && s.misses == 3 && s.hits_disk == 0);
  CHECK(t, s.disk_writes == 0 && s.disk_bytes == 0);
  nx_cache_free(c);
}

static void test_lru_eviction_by_bytes(tctx_t *t) {
  nx_cache_t *c = open_cache(t, 3 * COST(100), NULL, 0);
  uint8_t k[8][32], d[8][700];
  nx_cache_stats_t s;

  if (c == NULL) return;
  for (int i = 0; i < 8; i++) {
    make_key(k[i], "lru", (uint64_t)i);
    fill(d[i], sizeof d[i], (uint64_t)i);
  }
  CHECK(t, put(c, k[0], d[0], 100)); /* A */
  CHECK(t, put(c, k[1], d[1], 100)); /* B */
  CHECK(t, put(c, k[2], d[2], 100)); /* C */
  s = stats_of(c);
  CHECK(t, s.entries == 3 && s.bytes == 3 * COST(100) && s.evictions == 0);
  CHECK(t, get_is(c, k[0], d[0], 100) == NX_CACHE_HIT_MEMORY); /* A is now newest */
  CHECK(t, put(c, k[3], d[3], 100));                           /* D evicts B */
  CHECK(t, get_is(c, k[1], NULL, 0) == NX_CACHE_MISS);
  /* Oldest to newest is now C, A, D. E costs two small entries' worth:
   * it pushes out C and A, never D nor itself. */
  CHECK(t, put(c, k[4], d[4], (size_t)(2 * COST(100) - NX_CACHE_ENTRY_OVERHEAD)));
  CHECK(t, get_is(c, k[2], NULL, 0) == NX_CACHE_MISS);
  CHECK(t, get_is(c, k[0], NULL, 0) == NX_CACHE_MISS);
  CHECK(t, get_is(c, k[3], d[3], 100) == NX_CACHE_HIT_MEMORY);
  CHECK(t, get_is(c, k[4], d[4], (size_t)(2 * COST(100) - NX_CACHE_ENTRY_OVERHEAD)) ==
               NX_CACHE_HIT_MEMORY);
  s = stats_of(c);
  CHECK(t, s.entries == 2 && s.bytes == 3 * COST(100) && s.evictions == 3);

  /* Exactly the budget: kept, alone. One byte more: not kept at all, and
   * nothing else is evicted for it. */
  {
    size_t whole = (size_t)(3 * COST(100) - NX_CACHE_ENTRY_OVERHEAD);
    nx_blob_t *b;
    CHECK(t, put(c, k[5], d[5], whole));
    s = stats_of(c);
    CHECK(t, s.entries == 1 && s.bytes == 3 * COST(100));
    b = nx_cache_put(c, k[6], d[6], whole + 1);
    CHECK(t, blob_is(b, d[6], whole + 1)); /* the caller still gets it */
    nx_blob_release(b);
    s = stats_of(c);
    CHECK(t, s.entries == 1 && s.bytes == 3 * COST(100));
    CHECK(t, get_is(c, k[6], NULL, 0) == NX_CACHE_MISS);
    CHECK(t, get_is(c, k[5], d[5], whole) == NX_CACHE_HIT_MEMORY);
  }
  nx_cache_free(c);

  /* A zero budget keeps nothing in memory. */
  c = open_cache(t, 0, NULL, 0);
  if (c == NULL) return;
  CHECK(t, put(c, k[0], d[0], 0));
  CHECK(t, get_is(c, k[0], NULL, 0) == NX_CACHE_MISS);
  CHECK(t, stats_of(c).entries == 0);
  nx_cache_free(c);
}

static void test_refcount_outlives_eviction(tctx_t *t) {
  nx_cache_t *c = open_cache(t, 2 * COST(256), NULL, 0);
  uint8_t k[4][32], d[4][256], v2[256];
  nx_blob_t *held, *again, *old;

  if (c == NULL) return;
  for (int i = 0; i < 4; i++) {
    make_key(k[i], "ref", (uint64_t)i);
    fill(d[i], sizeof d[i], 100 + (uint64_t)i);
  }
  held = nx_cache_put(c, k[0], d[0], 256);
  again = nx_cache_get(c, k[0], NULL);
  CHECK(t, held != NULL && held == again);
  CHECK(t, put(c, k[1], d[1], 256));
  CHECK(t, put(c, k[2], d[2], 256)); /* evicts k[0] */
  CHECK(t, get_is(c, k[0], NULL, 0) == NX_CACHE_MISS);
  CHECK(t, blob_is(held, d[0], 256)); /* ASan would flag a use after free */
  nx_blob_release(held);
  CHECK(t, blob_is(again, d[0], 256));
  CHECK(t, nx_blob_retain(again) == again);
  nx_blob_release(again);
  nx_blob_release(again);
  nx_blob_release(NULL);

  /* Replacing a key: readers of the old blob keep the old bytes. */
  fill(v2, sizeof v2, 999);
  old = nx_cache_get(c, k[1], NULL);
  CHECK(t, put(c, k[1], v2, 200));
  CHECK(t, get_is(c, k[1], v2, 200) == NX_CACHE_HIT_MEMORY);
  CHECK(t, blob_is(old, d[1], 256));
  CHECK(t, stats_of(c).entries == 2 && stats_of(c).bytes == COST(256) + COST(200));

  /* Blobs outlive the cache itself. */
  held = nx_cache_get(c, k[2], NULL);
  nx_cache_free(c);
  CHECK(t, blob_is(held, d[2], 256));
  CHECK(t, blob_is(old, d[1], 256));
  nx_blob_release(held);
  nx_blob_release(old);
}

/* Many keys: the table grows past its first size and finds them all. */
static void test_many_keys(tctx_t *t) {
  nx_cache_t *c = open_cache(t, 64 * MIB, NULL, 0);
  uint8_t k[32], d[64];
  int bad = 0;

  if (c == NULL) return;
  for (uint64_t i = 0; i < 5000; i++) {
    make_key(k, "many", i);
    fill(d, (size_t)(i % 64), i);
    bad += !put(c, k, d, (size_t)(i % 64));
  }
  for (uint64_t i = 0; i < 5000; i++) {
    make_key(k, "many", i);
    fill(d, (size_t)(i % 64), i);
    bad += get_is(c, k, d, (size_t)(i % 64)) != NX_CACHE_HIT_MEMORY;
  }
  CHECK(t, bad == 0);
  CHECK(t, stats_of(c).entries == 5000);
  nx_cache_free(c);
}

/* ---- disk --------------------------------------------------------------- */

static void test_disk_roundtrip(tctx_t *t) {
  char dir[PATH_MAX], path[PATH_MAX];
  uint8_t k[32], k2[32], d[3000], *raw;
  nx_cache_stats_t s;
  struct stat st;
  nx_cache_t *c;
  size_t n;

  subdir(t, "roundtrip/nested/dir", dir);
  make_key(k, "disk", 1);
  make_key(k2, "disk", 2);
  fill(d, sizeof d, 5);
  c = open_cache(t, 1 * MIB, dir, 0);
  if (c == NULL) return;
  CHECK(t, stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 077) == 0);
  CHECK(t, put(c, k, d, sizeof d));
  CHECK(t, put(c, k2, d, 10));
  s = stats_of(c);
  CHECK(t, s.disk_writes == 2 && s.disk_bytes == 2 * NX_CACHE_HEADER_LEN + sizeof d + 10);
  nx_cache_free(c);

  key_path(dir, k, path);
  CHECK(t, stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
  raw = read_file(path, &n);
  CHECK(t, raw != NULL && n == NX_CACHE_HEADER_LEN + sizeof d);
  if (raw != NULL) {
    uint8_t sum[32];
    nx_sha256_t h;
    nx_sha256_init(&h);
    nx_sha256_update(&h, k, 32);
    nx_sha256_update(&h, d, sizeof d);
    nx_sha256_final(&h, sum);
    CHECK(t, memcmp(raw, "NXBC\1\0\0\0", 8) == 0);
    CHECK(t, raw[8] == (sizeof d & 0xff) && raw[9] == (sizeof d >> 8) && raw[10] == 0);
    CHECK(t, memcmp(raw + 16, sum, 32) == 0);
    CHECK(t, memcmp(raw + 48, d, sizeof d) == 0);
    free(raw);
  }

  /* A new cache object (another process, a restart) finds it. */
  c = open_cache(t, 1 * MIB, dir, 0);
  if (c == NULL) return;
  s = stats_of(c);
  CHECK(t, s.disk_bytes == 2 * NX_CACHE_HEADER_LEN + sizeof d + 10);
  CHECK(t, get_is(c, k, d, sizeof d) == NX_CACHE_HIT_DISK);
  CHECK(t, get_is(c, k, d, sizeof d) == NX_CACHE_HIT_MEMORY);
  CHECK(t, get_is(c, k2, d, 10) == NX_CACHE_HIT_DISK);
  s = stats_of(c);
  CHECK(t, s.hits_disk == 2 && s.hits_memory == 1 && s.misses == 0 && s.entries == 2);
  nx_cache_free(c);

  /* Oversize for memory: served from disk every time, never promoted. */
  c = open_cache(t, COST(100), dir, 0);
  if (c == NULL) return;
  CHECK(t, get_is(c, k, d, sizeof d) == NX_CACHE_HIT_DISK);
  CHECK(t, get_is(c, k, d, sizeof d) == NX_CACHE_HIT_DISK);
  CHECK(t, stats_of(c).entries == 0);
  nx_cache_free(c);
}

enum {
  BAD_PAYLOAD_BYTE,
  BAD_MAGIC,
  BAD_VERSION,
  BAD_CHECKSUM,
  BAD_LENGTH_FIELD,
  TRUNCATED,
  TRUNCATED_HEADER,
  EMPTY,
  EXTENDED,
  FOREIGN,
  RENAMED,
  HUGE,
  SYMLINK,
  FIFO,
  BAD__COUNT
};
static const char *const bad_names[] = {
    "flipped payload byte",
    "flipped magic",
    "version 2",
    "flipped checksum byte",
    "length field off by one",
    "truncated by one byte",
    "truncated inside the header",
    "empty",
    "one byte appended",
    "foreign random bytes",
    "another key's file",
    "huge sparse file",
    "symlink",
    "fifo",
};

static int flip(const char *path, long off) {
  size_t n;
  uint8_t *p = read_file(path, &n);
  int rc = -1;
  if (p != NULL && (size_t)off < n) {
    p[off] ^= 0x40;
    rc = write_file(path, p, n);
  }
  free(p);
  return rc;
}

static int spoil(const char *dir, const uint8_t victim[32], const uint8_t other[32], int how) {
  char path[PATH_MAX], opath[PATH_MAX];
  long long size;
  key_path(dir, victim, path);
  key_path(dir, other, opath);
  size = file_size(path);
  switch (how) {
    case BAD_PAYLOAD_BYTE: return flip(path, NX_CACHE_HEADER_LEN + 500);
    case BAD_MAGIC: return flip(path, 1);
    case BAD_VERSION: return flip(path, 5);
    case BAD_CHECKSUM: return flip(path, 31);
    case BAD_LENGTH_FIELD: return flip(path, 8);
    case TRUNCATED: return truncate(path, size - 1);
    case TRUNCATED_HEADER: return truncate(path, 20);
    case EMPTY: return truncate(path, 0);
    case EXTENDED: return truncate(path, size + 1);
    case FOREIGN: {
      uint8_t junk[2000];
      fill(junk, sizeof junk, 77);
      return write_file(path, junk, sizeof junk);
    }
    case RENAMED: {
      size_t n;
      uint8_t *p = read_file(opath, &n);
      int rc = p != NULL ? write_file(path, p, n) : -1;
      free(p);
      return rc;
    }
    case HUGE: { /* a well-formed header promising 100 MiB */
      uint8_t hdr[NX_CACHE_HEADER_LEN] = "NXBC\1\0\0\0";
      uint64_t len = 100ull * MIB;
      for (int i = 0; i < 8; i++) hdr[8 + i] = (uint8_t)(len >> (8 * i));
      if (write_file(path, hdr, sizeof hdr) != 0) return -1;
      return truncate(path, (off_t)(sizeof hdr + len));
    }
    case SYMLINK: return unlink(path) == 0 ? symlink(opath, path) : -1;
    case FIFO: return unlink(path) == 0 ? mkfifo(path, 0600) : -1;
  }
  return -1;
}

static void test_disk_rejects_bad_files(tctx_t *t) {
  uint8_t victim[32], other[32], dv[1000], dother[700];
  make_key(victim, "victim", 0);
  make_key(other, "other", 0);
  fill(dv, sizeof dv, 11);
  fill(dother, sizeof dother, 12);

  for (int how = 0; how < BAD__COUNT; how++) {
    char dir[PATH_MAX], path[PATH_MAX], name[64];
    int before = __atomic_load_n(&t->failed, __ATOMIC_RELAXED);
    nx_cache_stats_t s;
    nx_cache_t *c;

    snprintf(name, sizeof name, "reject-%d", how);
    subdir(t, name, dir);
    key_path(dir, victim, path);
    c = open_cache(t, 1 * MIB, dir, 0);
    if (c == NULL) return;
    CHECK(t, put(c, victim, dv, sizeof dv) && put(c, other, dother, sizeof dother));
    nx_cache_free(c);
    CHECK(t, spoil(dir, victim, other, how) == 0);

    c = open_cache(t, 1 * MIB, dir, 0);
    if (c == NULL) return;
    CHECK(t, get_is(c, victim, NULL, 0) == NX_CACHE_MISS);
    s = stats_of(c);
    CHECK(t, s.disk_rejected == 1 && s.misses == 1 && s.hits_disk == 0);
    CHECK(t, !exists(path)); /* unlinked, so the next reader need not re-check */
    CHECK(t, s.disk_bytes == NX_CACHE_HEADER_LEN + sizeof dother);
    CHECK(t, get_is(c, other, dother, sizeof dother) == NX_CACHE_HIT_DISK);
    CHECK(t, put(c, victim, dv, sizeof dv)); /* the caller recompiles */
    CHECK(t, file_size(path) == (long long)(NX_CACHE_HEADER_LEN + sizeof dv));
    nx_cache_free(c);

    c = open_cache(t, 1 * MIB, dir, 0);
    if (c == NULL) return;
    CHECK(t, get_is(c, victim, dv, sizeof dv) == NX_CACHE_HIT_DISK);
    CHECK(t, stats_of(c).disk_rejected == 0);
    nx_cache_free(c);
    if (__atomic_load_n(&t->failed, __ATOMIC_RELAXED) != before)
      fprintf(stderr, "  ... with a %s\n", bad_names[how]);
  }
}

/* A put whose file cannot be written still returns a good blob. */
static void test_disk_write_failure(tctx_t *t) {
  char dir[PATH_MAX], path[PATH_MAX];
  uint8_t k[32], d[100];
  nx_cache_stats_t s;
  nx_cache_t *c;

  subdir(t, "write-failure", dir);
  make_key(k, "blocked", 0);
  fill(d, sizeof d, 3);
  c = open_cache(t, 1 * MIB, dir, 0);
  if (c == NULL) return;
  key_path(dir, k, path);
  CHECK(t, mkdir(path, 0700) == 0); /* rename cannot replace a directory */
  CHECK(t, put(c, k, d, sizeof d));
  s = stats_of(c);
  CHECK(t, s.disk_writes == 0 && s.disk_write_errors == 1 && s.disk_bytes == 0);
  CHECK(t, get_is(c, k, d, sizeof d) == NX_CACHE_HIT_MEMORY);
  nx_cache_free(c);
  CHECK(t, rmdir(path) == 0);
  /* No temp file is left behind. */
  CHECK(t, rmdir(dir) == 0);
}

static void test_new_errors(tctx_t *t) {
  char dir[PATH_MAX], file[PATH_MAX], err[256];
  nx_cache_t *c;

  subdir(t, "plain-file", file);
  CHECK(t, write_file(file, "x", 1) == 0);
  path_join(dir, file, "sub");
  err[0] = '\0';
  c = nx_cache_new(1 * MIB, dir, 0, err, sizeof err);
  CHECK(t, c == NULL && strstr(err, "cannot create") != NULL && strstr(err, file) != NULL);
  nx_cache_free(c);
  err[0] = '\0';
  CHECK(t, nx_cache_new(1 * MIB, "", 0, err, sizeof err) == NULL && err[0] != '\0');
  CHECK(t, nx_cache_new(1 * MIB, file, 0, NULL, 0) == NULL); /* not a directory; no err buffer */
  if (geteuid() != 0) { /* root writes through permission bits */
    subdir(t, "read-only", dir);
    CHECK(t, mkdir(dir, 0500) == 0);
    err[0] = '\0';
    c = nx_cache_new(1 * MIB, dir, 0, err, sizeof err);
    CHECK(t, c == NULL && strstr(err, "not writable") != NULL);
    nx_cache_free(c);
  }
}

#define TRIM_FILE 1000u /* bytes per file, header included */

static int trim_put(nx_cache_t *c, const char *dir, uint64_t i, time_t mtime) {
  char path[PATH_MAX];
  uint8_t k[32], d[TRIM_FILE];
  make_key(k, "trim", i);
  fill(d, sizeof d, i);
  if (!put(c, k, d, TRIM_FILE - NX_CACHE_HEADER_LEN)) return 0;
  key_path(dir, k, path);
  return mtime == 0 || set_mtime(path, mtime) == 0;
}

static int trim_has(const char *dir, uint64_t i) {
  char path[PATH_MAX];
  uint8_t k[32];
  make_key(k, "trim", i);
  key_path(dir, k, path);
  return exists(path);
}

static void test_disk_trim(tctx_t *t) {
  char dir[PATH_MAX], path[PATH_MAX], stale[PATH_MAX], fresh[PATH_MAX], other[PATH_MAX];
  time_t t0 = time(NULL) - 100000;
  uint8_t k[32], d[TRIM_FILE];
  nx_cache_stats_t s;
  struct stat st;
  nx_cache_t *c;
  uint64_t i;

  subdir(t, "trim", dir);
  c = open_cache(t, 0, dir, 10 * TRIM_FILE); /* memory 0: every get reads the disk */
  if (c == NULL) return;
  for (i = 0; i < 10; i++) CHECK(t, trim_put(c, dir, i, t0 + (time_t)i));
  s = stats_of(c);
  CHECK(t, s.disk_bytes == 10 * TRIM_FILE && s.disk_trims == 0); /* at the bound, not over */

  /* Over the bound: the oldest go until the directory is at 90%. */
  CHECK(t, trim_put(c, dir, 10, t0 + 10));
  s = stats_of(c);
  CHECK(t, s.disk_trims == 1 && s.disk_bytes == 9 * TRIM_FILE);
  CHECK(t, !trim_has(dir, 0) && !trim_has(dir, 1));
  for (i = 2; i <= 10; i++) CHECK(t, trim_has(dir, i));

  /* A hit refreshes the file's mtime, so the next trim spares it. */
  make_key(k, "trim", 2);
  fill(d, sizeof d, 2);
  CHECK(t, get_is(c, k, d, TRIM_FILE - NX_CACHE_HEADER_LEN) == NX_CACHE_HIT_DISK);
  key_path(dir, k, path);
  CHECK(t, stat(path, &st) == 0 && st.st_mtime > t0 + 1000);
  CHECK(t, trim_put(c, dir, 11, t0 + 11));
  CHECK(t, trim_put(c, dir, 12, t0 + 12));
  s = stats_of(c);
  CHECK(t, s.disk_trims == 2 && s.disk_bytes == 9 * TRIM_FILE);
  CHECK(t, trim_has(dir, 2) && !trim_has(dir, 3) && !trim_has(dir, 4));
  for (i = 5; i <= 12; i++) CHECK(t, trim_has(dir, i));

  /* Temp files of dead writers go; a live writer's and foreign files stay. */
  path_join(stale, dir, ".tmp-1-00000000000000aa");
  path_join(fresh, dir, ".tmp-1-00000000000000bb");
  path_join(other, dir, "README");
  CHECK(t, write_file(stale, "x", 1) == 0 && set_mtime(stale, time(NULL) - 120) == 0);
  CHECK(t, write_file(fresh, "y", 1) == 0);
  CHECK(t, write_file(other, "zzzz", 4) == 0);
  CHECK(t, trim_put(c, dir, 13, t0 + 13));
  CHECK(t, trim_put(c, dir, 14, t0 + 14));
  CHECK(t, stats_of(c).disk_trims == 3);
  CHECK(t, !exists(stale) && exists(fresh) && exists(other));
  nx_cache_free(c);

  /* The startup scan counts cache files only. */
  c = open_cache(t, 0, dir, 0);
  if (c == NULL) return;
  CHECK(t, stats_of(c).disk_bytes == 9 * TRIM_FILE);
  nx_cache_free(c);
}

/* ---- several processes ------------------------------------------------ */

/* A payload describes itself (key, writer, iteration, length) and the rest
 * follows from that, so a reader can check any version it gets whole. */
#define MP_HDR 48u
#define MP_MAX (MP_HDR + 40000u)
#define MP_SHARED 6
#define MP_WRITERS 3
#define MP_ITER 150

static size_t mp_payload(uint8_t *p, const uint8_t key[32], uint32_t writer, uint32_t iter) {
  uint64_t s = (uint64_t)writer << 32 | iter, len = MP_HDR + splitmix(&s) % (MP_MAX - MP_HDR);
  uint64_t seed;
  memcpy(p, key, 32);
  memcpy(p + 32, &writer, 4);
  memcpy(p + 36, &iter, 4);
  memcpy(p + 40, &len, 8);
  memcpy(&seed, key, 8);
  fill(p + MP_HDR, (size_t)len - MP_HDR, seed ^ s);
  return (size_t)len;
}

static int mp_valid(const nx_blob_t *b, const uint8_t key[32], uint8_t *scratch) {
  uint32_t writer, iter;
  if (b->len < MP_HDR || memcmp(b->data, key, 32) != 0) return 0;
  memcpy(&writer, b->data + 32, 4);
  memcpy(&iter, b->data + 36, 4);
  return mp_payload(scratch, key, writer, iter) == b->len && memcmp(scratch, b->data, b->len) == 0;
}

static int mp_child(const char *dir, uint32_t writer) {
  uint8_t key[32], *buf = malloc(MP_MAX), *scratch = malloc(MP_MAX);
  nx_cache_t *c = nx_cache_new(256 * 1024, dir, 4 * MIB, NULL, 0);
  int bad = 0;

  if (buf == NULL || scratch == NULL || c == NULL) bad = 1;
  for (uint32_t i = 0; !bad && i < MP_ITER; i++) {
    nx_blob_t *b;
    size_t n;
    make_key(key, "shared", i % MP_SHARED);
    n = mp_payload(buf, key, writer, i);
    bad |= !put(c, key, buf, n);
    make_key(key, "private", (uint64_t)writer * 100000 + i);
    n = mp_payload(buf, key, writer, i);
    bad |= !put(c, key, buf, n);
    make_key(key, "shared", (i + 1) % MP_SHARED);
    b = nx_cache_get(c, key, NULL);
    if (b != NULL) bad |= !mp_valid(b, key, scratch);
    nx_blob_release(b);
  }
  if (c != NULL && stats_of(c).disk_rejected != 0) bad = 1;
  nx_cache_free(c);
  free(buf);
  free(scratch);
  return bad;
}

static void test_processes_share_a_dir(tctx_t *t) {
  char dir[PATH_MAX];
  pid_t pids[MP_WRITERS];
  uint8_t key[32], *scratch = malloc(MP_MAX);
  uint64_t reads = 0, hits = 0, bad = 0, rng = 42;
  int running = MP_WRITERS, i;
  nx_cache_stats_t s;
  nx_cache_t *c;

  subdir(t, "processes", dir);
  c = open_cache(t, 0, dir, 0); /* memory 0: every read is a file read */
  CHECK(t, scratch != NULL);
  if (c == NULL || scratch == NULL) goto out;
  fflush(NULL);
  for (i = 0; i < MP_WRITERS; i++) {
    pids[i] = fork();
    CHECK(t, pids[i] >= 0);
    if (pids[i] == 0) _exit(mp_child(dir, (uint32_t)i + 1));
    if (pids[i] < 0) running--;
  }
  while (running > 0) {
    for (int k = 0; k < MP_SHARED + 2; k++) {
      nx_blob_t *b;
      if (k < MP_SHARED)
        make_key(key, "shared", (uint64_t)k);
      else
        make_key(key, "private",
                 (splitmix(&rng) % MP_WRITERS + 1) * 100000 + splitmix(&rng) % MP_ITER);
      b = nx_cache_get(c, key, NULL);
      reads++;
      if (b != NULL) {
        hits++;
        bad += !mp_valid(b, key, scratch);
      }
      nx_blob_release(b);
    }
    for (i = 0; i < MP_WRITERS; i++) {
      int status;
      if (pids[i] > 0 && waitpid(pids[i], &status, WNOHANG) == pids[i]) {
        CHECK(t, WIFEXITED(status) && WEXITSTATUS(status) == 0);
        pids[i] = 0;
        running--;
      }
    }
  }
  s = stats_of(c);
  printf("  (%llu reads while writing, %llu hits)\n", (unsigned long long)reads,
         (unsigned long long)hits);
  CHECK(t, bad == 0);
  CHECK(t, hits > 0);
  CHECK(t, s.disk_rejected == 0); /* no reader ever saw a torn file */
  for (int k = 0; k < MP_SHARED; k++) {
    nx_blob_t *b;
    make_key(key, "shared", (uint64_t)k);
    b = nx_cache_get(c, key, NULL);
    CHECK(t, b != NULL && mp_valid(b, key, scratch));
    nx_blob_release(b);
  }
out:
  nx_cache_free(c);
  free(scratch);
}

/* ---- several threads --------------------------------------------------- */

#define TH_THREADS 6
#define TH_KEYS 64
#define TH_ITER 3000
/* Payloads average 2.6 KB: memory holds about a third of the keys and the
 * disk bound half of them, so evictions, disk hits, promotions and trims
 * all race. */
#define TH_MEMORY (20 * COST(2600))
#define TH_DISK (TH_KEYS * 2600 / 2)

typedef struct {
  tctx_t *t;
  nx_cache_t *c;
  const uint8_t (*keys)[32];
  uint32_t id;
  uint64_t gets;
  int *stop;
} th_arg_t;

/* Each key has one content, so any hit can be checked. */
static size_t th_payload(uint8_t *p, uint32_t k) {
  size_t n = 64 + (size_t)k * 97 % 5000;
  fill(p, n, 7000 + k);
  return n;
}

static void *th_worker(void *arg) {
  th_arg_t *a = arg;
  uint64_t rng = a->id;
  nx_blob_t *held = NULL;
  uint8_t buf[5100];
  uint32_t held_key = 0;

  for (int i = 0; i < TH_ITER; i++) {
    uint32_t k = (uint32_t)(splitmix(&rng) % TH_KEYS);
    size_t n = th_payload(buf, k);
    nx_blob_t *b = nx_cache_get(a->c, a->keys[k], NULL);
    a->gets++;
    if (b == NULL) b = nx_cache_put(a->c, a->keys[k], buf, n);
    CHECK(a->t, blob_is(b, buf, n));
    /* Sometimes keep a blob across later operations, as an executing
     * worker does while others evict it. */
    if (splitmix(&rng) % 8 == 0) {
      if (held != NULL) CHECK(a->t, blob_is(held, buf, th_payload(buf, held_key)));
      nx_blob_release(held);
      held = b;
      held_key = k;
    } else {
      nx_blob_release(b);
    }
  }
  if (held != NULL) CHECK(a->t, blob_is(held, buf, th_payload(buf, held_key)));
  nx_blob_release(held);
  return NULL;
}

static void *th_stats(void *arg) {
  th_arg_t *a = arg;
  while (!__atomic_load_n(a->stop, __ATOMIC_ACQUIRE)) {
    nx_cache_stats_t s = stats_of(a->c);
    CHECK(a->t, s.bytes <= TH_MEMORY && s.bytes >= s.entries * NX_CACHE_ENTRY_OVERHEAD);
    sched_yield();
  }
  return NULL;
}

static void test_threads_share_a_cache(tctx_t *t) {
  char dir[PATH_MAX];
  uint8_t keys[TH_KEYS][32];
  th_arg_t args[TH_THREADS + 1];
  pthread_t th[TH_THREADS + 1];
  int started = 0, stop = 0;
  uint64_t gets = 0;
  nx_cache_stats_t s;
  nx_cache_t *c;

  subdir(t, "threads", dir);
  for (int k = 0; k < TH_KEYS; k++) make_key(keys[k], "thread", (uint64_t)k);
  c = open_cache(t, TH_MEMORY, dir, TH_DISK);
  if (c == NULL) return;
  for (int i = 0; i <= TH_THREADS; i++) {
    args[i] = (th_arg_t){t, c, (const uint8_t(*)[32])keys, (uint32_t)i + 1, 0, &stop};
    if (pthread_create(&th[i], NULL, i < TH_THREADS ? th_worker : th_stats, &args[i]) != 0) break;
    started++;
  }
  CHECK(t, started == TH_THREADS + 1);
  for (int i = 0; i < started; i++) {
    if (i == TH_THREADS) __atomic_store_n(&stop, 1, __ATOMIC_RELEASE); /* the stats thread */
    pthread_join(th[i], NULL);
    gets += args[i].gets;
  }
  s = stats_of(c);
  printf("  (%llu gets: %llu memory, %llu disk, %llu misses; %llu evictions, %llu trims)\n",
         (unsigned long long)gets, (unsigned long long)s.hits_memory,
         (unsigned long long)s.hits_disk, (unsigned long long)s.misses,
         (unsigned long long)s.evictions, (unsigned long long)s.disk_trims);
  CHECK(t, s.hits_memory + s.hits_disk + s.misses == gets);
  CHECK(t, s.hits_memory > 0 && s.hits_disk > 0 && s.misses > 0);
  CHECK(t, s.disk_rejected == 0 && s.disk_write_errors == 0);
  nx_cache_free(c);
}

/* ---- runner --------------------------------------------------------------- */

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    void (*fn)(tctx_t *);
  } tests[] = {
      {"sha256: FIPS 180-4 vectors and split updates", test_sha256_vectors},
      {"sha256: agrees with sha256sum on 0..200 bytes and a few MiB", test_sha256_vs_sha256sum},
      {"memory: hit, miss, copy semantics, empty blob", test_memory_hit_and_miss},
      {"memory: LRU evicts oldest by bytes; oversize entries are not kept",
       test_lru_eviction_by_bytes},
      {"memory: a held blob outlives eviction, replacement and the cache",
       test_refcount_outlives_eviction},
      {"memory: 5000 keys through a growing table", test_many_keys},
      {"disk: file format, reload by a new cache, promotion", test_disk_roundtrip},
      {"disk: bad files are rejected, counted, unlinked and replaced", test_disk_rejects_bad_files},
      {"disk: a failed write is counted and leaves no temp file", test_disk_write_failure},
      {"disk: nx_cache_new reports unusable directories", test_new_errors},
      {"disk: trimming by mtime to 90% of the bound", test_disk_trim},
      {"disk: forked writers never expose a torn file", test_processes_share_a_dir},
      {"threads: concurrent get/put with eviction and trimming", test_threads_share_a_cache},
  };
  const char *tmp = argc > 1 ? argv[1] : getenv("TMPDIR");
  int passed = 0, failed = 0;
  tctx_t t;

  memset(&t, 0, sizeof t);
  snprintf(t.base, sizeof t.base, "%s/nx-cache-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(t.base) == NULL) {
    fprintf(stderr, "mkdtemp %s: %s\n", t.base, strerror(errno));
    printf("0 passed, 1 failed\n");
    return 1;
  }
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    int before = t.failed;
    tests[i].fn(&t);
    if (__atomic_load_n(&t.failed, __ATOMIC_RELAXED) == before) {
      printf("ok   %s\n", tests[i].name);
      passed++;
    } else {
      printf("FAIL %s\n", tests[i].name);
      failed++;
    }
    fflush(stdout);
  }
  if (nftw(t.base, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
    fprintf(stderr, "could not remove %s\n", t.base);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}

/* Helpers with no home of their own (see util.h). */
#include "util.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

uint64_t nx_util_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int nx_util_random(void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = getrandom((uint8_t *)buf + got, n - got, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

/* One getrandom(2) per NX_SEED_POOL / n draws instead of one per draw
 * (a syscall per execution showed in profiles). Safe because every byte
 * the kernel gives is handed out once, to one caller, and wiped from the
 * pool as it leaves: draws stay as unpredictable and as independent of
 * each other as separate getrandom calls. The pool is host memory, which
 * no guest can read, and thread-local, so no lock. A fork would copy the
 * forking thread's pool into the child, where the same bytes could be
 * drawn twice (once per process): the child empties it (the other threads
 * do not exist there). */
#define NX_SEED_POOL 512u

static __thread struct {
  uint8_t bytes[NX_SEED_POOL];
  size_t left; /* unread bytes, at the end of `bytes` */
} seed_pool;

static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void seed_pool_forget(void) {
  memset(seed_pool.bytes, 0, sizeof seed_pool.bytes);
  seed_pool.left = 0;
}

static void seed_pool_init(void) { pthread_atfork(NULL, NULL, seed_pool_forget); }

int nx_util_random_pooled(void *buf, size_t n) {
  uint8_t *at;
  if (n > NX_SEED_POOL / 4) return nx_util_random(buf, n);
  pthread_once(&seed_once, seed_pool_init);
  if (seed_pool.left < n) {
    if (nx_util_random(seed_pool.bytes, sizeof seed_pool.bytes) != 0) {
      seed_pool_forget();
      return -1;
    }
    seed_pool.left = sizeof seed_pool.bytes;
  }
  at = seed_pool.bytes + sizeof seed_pool.bytes - seed_pool.left;
  memcpy(buf, at, n);
  memset(at, 0, n);
  seed_pool.left -= n;
  return 0;
}

void nx_util_hex_encode(const uint8_t *bytes, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  size_t i;
  for (i = 0; i < n; i++) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  out[2 * n] = 0;
}

static int hex_digit(char c) {
  return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int nx_util_hex_decode(const char *hex, size_t len, uint8_t *out, size_t n) {
  size_t i;
  if (len != 2 * n) return -1;
  for (i = 0; i < n; i++) {
    int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
  }
  return 0;
}

uint32_t nx_util_fnv1a(const void *bytes, size_t len) {
  const uint8_t *p = bytes;
  uint32_t h = 2166136261u;
  size_t i;
  for (i = 0; i < len; i++) h = (h ^ p[i]) * 16777619u;
  return h;
}

int nx_util_read_full(int fd, void *buf, size_t n) {
  uint8_t *p = buf;
  while (n > 0) {
    ssize_t r = read(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

int nx_util_write_full(int fd, const void *buf, size_t n) {
  const uint8_t *p = buf;
  while (n > 0) {
    ssize_t r = write(fd, p, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

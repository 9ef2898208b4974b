/* Support for the libFuzzer harnesses (see runner.h). The result checks
 * read MessagePack with a reader of their own rather than the project's
 * nx_mp_validate or cursor: a checker must not share the code it checks,
 * and results may nest deeper than the validator allows. Inputs (contexts,
 * answers) are written with the project's writer, whose mistakes the
 * runtime would refuse and the checks would report. */
#include "runner.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "errors.h"
#include "mem.h"
#include "mpack.h"
#include "suspend.h"

unsigned fz_pick(fz_bytes_t *in, unsigned n) {
  if (n == 0 || in->at >= in->len) return 0;
  return in->p[in->at++] % n;
}

/* ---- failures and notes ----------------------------------------------------- */

void fz_fail(const char *fmt, ...) {
  va_list ap;
  fputs("fuzz: FAIL: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}

#define NOTE_SLOTS 512
#define NOTE_PRINT_MAX 100

/* Notes are printed once per key (hashed), and only so many: they are for
 * a human reading the log, not for libFuzzer. */
void fz_note(const char *key, const char *fmt, ...) {
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  static uint64_t seen[NOTE_SLOTS];
  static unsigned printed;
  uint64_t h = 1469598103934665603ull;
  size_t i;
  va_list ap;

  for (i = 0; key[i]; i++) h = (h ^ (uint8_t)key[i]) * 1099511628211ull;
  h |= 1;
  pthread_mutex_lock(&lock);
  for (i = h % NOTE_SLOTS; seen[i] && seen[i] != h; i = (i + 1) % NOTE_SLOTS) {
  }
  if (seen[i] == 0 && printed < NOTE_PRINT_MAX) {
    seen[i] = h;
    printed++;
    fputs("fuzz: note: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
  }
  pthread_mutex_unlock(&lock);
}

/* ---- a small MessagePack reader ------------------------------------------- */

enum { MP_NIL, MP_BOOL, MP_INT, MP_FLOAT, MP_STR, MP_BIN, MP_EXT, MP_ARRAY, MP_MAP };

typedef struct {
  const uint8_t *p;
  size_t len, at;
} rd_t;

typedef struct {
  int kind;
  uint64_t count;      /* array items or map pairs */
  const uint8_t *data; /* str / bin / ext payload */
  size_t size;
} item_t;

static uint64_t be_read(const uint8_t *p, unsigned n) {
  uint64_t v = 0;
  unsigned i;
  for (i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

/* Advances past n bytes; NULL when fewer are left. */
static const uint8_t *rd_take(rd_t *r, uint64_t n) {
  const uint8_t *at = r->p + r->at;
  if (n > r->len - r->at) return NULL;
  r->at += (size_t)n;
  return at;
}

/* Reads a length of `width` bytes, then that many payload bytes. */
static int rd_payload(rd_t *r, item_t *it, unsigned width, int has_type) {
  const uint8_t *w = rd_take(r, width);
  if (w == NULL) return -1;
  it->size = (size_t)be_read(w, width);
  if (has_type && rd_take(r, 1) == NULL) return -1;
  it->data = rd_take(r, it->size);
  return it->data ? 0 : -1;
}

static int rd_count(rd_t *r, item_t *it, int kind, unsigned width) {
  const uint8_t *w = rd_take(r, width);
  if (w == NULL) return -1;
  it->kind = kind;
  it->count = be_read(w, width);
  return 0;
}

/* The payload-less kinds, by first byte (0xc0 .. 0xdf), and the bytes
 * that follow it: nil, bool, float and int widths. */
static int rd_fixed(rd_t *r, item_t *it, uint8_t b) {
  static const uint8_t width[32] = {[0x0a] = 4, [0x0b] = 8, [0x0c] = 1, [0x0d] = 2, [0x0e] = 4,
                                    [0x0f] = 8, [0x10] = 1, [0x11] = 2, [0x12] = 4, [0x13] = 8};
  if (b == 0xc0)
    it->kind = MP_NIL;
  else if (b == 0xc2 || b == 0xc3)
    it->kind = MP_BOOL;
  else if (b == 0xca || b == 0xcb)
    it->kind = MP_FLOAT;
  else if (b >= 0xcc && b <= 0xd3)
    it->kind = MP_INT;
  else
    return -1;
  return rd_take(r, width[b - 0xc0]) ? 0 : -1;
}

/* One item: a scalar or str/bin/ext whole, a container's header only. */
static int rd_item(rd_t *r, item_t *it) {
  const uint8_t *bp = rd_take(r, 1);
  uint8_t b;

  memset(it, 0, sizeof *it);
  if (bp == NULL) return -1;
  b = *bp;
  it->kind = MP_INT;
  if (b <= 0x7f || b >= 0xe0) return 0; /* fixint */
  if (b <= 0x9f) {                      /* fixmap, fixarray */
    it->kind = b <= 0x8f ? MP_MAP : MP_ARRAY;
    it->count = b & 0x0f;
    return 0;
  }
  if (b <= 0xbf) { /* fixstr */
    it->kind = MP_STR;
    it->size = b & 0x1f;
    it->data = rd_take(r, it->size);
    return it->data ? 0 : -1;
  }
  if (b >= 0xc4 && b <= 0xc6) {
    it->kind = MP_BIN;
    return rd_payload(r, it, 1u << (b - 0xc4), 0);
  }
  if (b >= 0xc7 && b <= 0xc9) {
    it->kind = MP_EXT;
    return rd_payload(r, it, 1u << (b - 0xc7), 1);
  }
  if (b >= 0xd4 && b <= 0xd8) { /* fixext: type byte, 1 << n bytes */
    it->kind = MP_EXT;
    it->size = 1u << (b - 0xd4);
    if (rd_take(r, 1) == NULL) return -1;
    it->data = rd_take(r, it->size);
    return it->data ? 0 : -1;
  }
  if (b >= 0xd9 && b <= 0xdb) {
    it->kind = MP_STR;
    return rd_payload(r, it, 1u << (b - 0xd9), 0);
  }
  if (b >= 0xdc) /* array16/32, map16/32 */
    return rd_count(r, it, b <= 0xdd ? MP_ARRAY : MP_MAP, b & 1 ? 4 : 2);
  return rd_fixed(r, it, b);
}

/* Skips one whole value. Depth needs no stack: counting the items still
 * owed is enough, and every item takes a byte, so this ends. */
static int rd_skip(rd_t *r) {
  uint64_t owed = 1;
  while (owed > 0) {
    item_t it;
    owed--;
    if (rd_item(r, &it) != 0) return -1;
    if (it.kind == MP_ARRAY)
      owed += it.count;
    else if (it.kind == MP_MAP)
      owed += 2 * it.count;
  }
  return 0;
}

int fz_mp_wellformed(const uint8_t *buf, size_t len) {
  rd_t r = {buf, len, 0};
  return rd_skip(&r) == 0 && r.at == len;
}

_Static_assert(FZ_MP_NIL == (int)MP_NIL && FZ_MP_MAP == (int)MP_MAP, "fz_mp_kind_t is MP_*");

size_t fz_mp_item(const uint8_t *buf, size_t len, fz_mp_item_t *it) {
  rd_t r = {buf, len, 0};
  item_t i;
  if (rd_item(&r, &i) != 0) return 0;
  it->kind = (fz_mp_kind_t)i.kind;
  it->count = i.count;
  it->data = i.data;
  it->size = i.size;
  return r.at;
}

/* ---- result checks ---------------------------------------------------------- */

static int str_is(const item_t *it, const char *s) {
  return it->kind == MP_STR && it->size == strlen(s) && memcmp(it->data, s, it->size) == 0;
}

static void str_copy(const item_t *it, char *out, size_t cap) {
  size_t n = it->size < cap - 1 ? it->size : cap - 1;
  memcpy(out, it->data, n);
  out[n] = 0;
}

static void expect_item(rd_t *r, item_t *it, int kind, const char *what) {
  if (rd_item(r, it) != 0 || it->kind != kind) fz_fail("result: %s has the wrong type", what);
}

/* A pending call: { suspensionId, extensionName, method, args }. */
static void check_call(rd_t *r, uint8_t id[NX_SUSPENSION_ID_BYTES]) {
  item_t m, k, v;
  uint64_t i;
  int has_id = 0, has_ext = 0, has_method = 0;

  expect_item(r, &m, MP_MAP, "a pending call");
  for (i = 0; i < m.count; i++) {
    expect_item(r, &k, MP_STR, "a pending call's key");
    if (str_is(&k, "suspensionId")) {
      uint8_t tmp[NX_SUSPENSION_ID_BYTES];
      size_t j;
      expect_item(r, &v, MP_STR, "suspensionId");
      for (j = 0; j < v.size; j++)
        if (!((v.data[j] >= '0' && v.data[j] <= '9') || (v.data[j] >= 'a' && v.data[j] <= 'f')))
          fz_fail("result: suspensionId is not lowercase hex");
      if (nx_susp_parse_id((const char *)v.data, v.size, id ? id : tmp) != 0)
        fz_fail("result: suspensionId is not 32 hex digits");
      has_id = 1;
    } else if (str_is(&k, "extensionName") || str_is(&k, "method")) {
      expect_item(r, &v, MP_STR, "a pending call's name");
      if (str_is(&k, "method"))
        has_method = 1;
      else
        has_ext = 1;
    } else if (str_is(&k, "args")) {
      expect_item(r, &v, MP_ARRAY, "a pending call's args");
      for (; v.count > 0; v.count--)
        if (rd_skip(r) != 0) fz_fail("result: malformed args");
    } else if (rd_skip(r) != 0) {
      fz_fail("result: malformed pending call");
    }
  }
  if (!has_id || !has_ext || !has_method) fz_fail("result: a pending call lacks its id or names");
}

static int known_code(const item_t *code) {
  int c;
  for (c = NX_OK + 1; c < NX_E__COUNT; c++)
    if (str_is(code, nx_error_name((nx_error_code_t)c))) return 1;
  return 0;
}

/* error: { code, message, stack, location, snippet } */
static void check_error(rd_t *r, fz_result_t *out) {
  item_t m, k, v;
  uint64_t i;
  int has_code = 0, has_message = 0;

  expect_item(r, &m, MP_MAP, "error");
  for (i = 0; i < m.count; i++) {
    expect_item(r, &k, MP_STR, "an error key");
    if (str_is(&k, "code")) {
      expect_item(r, &v, MP_STR, "error.code");
      if (!known_code(&v)) fz_fail("result: unknown error code %.*s", (int)v.size, v.data);
      str_copy(&v, out->code, sizeof out->code);
      has_code = 1;
    } else if (str_is(&k, "message")) {
      expect_item(r, &v, MP_STR, "error.message");
      str_copy(&v, out->message, sizeof out->message);
      has_message = 1;
    } else if (rd_skip(r) != 0) {
      fz_fail("result: malformed error");
    }
  }
  if (!has_code || !has_message) fz_fail("result: error without code or message");
}

static void check_pending(rd_t *r, fz_result_t *out) {
  item_t v;
  uint64_t i;
  expect_item(r, &v, MP_ARRAY, "pendingCalls");
  if (v.count == 0) fz_fail("result: suspended with no pending call");
  for (i = 0; i < v.count; i++) {
    check_call(r, i < FZ_MAX_PENDING ? out->ids[i] : NULL);
    if (i < FZ_MAX_PENDING) out->npending++;
  }
}

/* The result's fields, by bit; F_LIST0 << i for lists[i] of check_field(). */
enum { F_STATUS = 1, F_RETURN = 2, F_ERROR = 4, F_SUSPENSION = 8, F_PENDING = 16, F_LIST0 = 32 };
#define F_LISTS (31u * F_LIST0) /* every result has all five */

static unsigned check_field(rd_t *r, const item_t *k, fz_result_t *out) {
  static const char *const lists[] = {"stateMutations", "events", "viewCommands", "logs",
                                      "metrics"};
  item_t v;
  uint64_t items;
  size_t i;

  if (str_is(k, "status")) {
    expect_item(r, &v, MP_STR, "status");
    str_copy(&v, out->status, sizeof out->status);
    return F_STATUS;
  }
  if (str_is(k, "returnValue")) {
    rd_t peek = *r;
    if (rd_item(&peek, &v) == 0 && v.kind == MP_BIN) {
      out->retval = v.data;
      out->retval_len = v.size;
    }
    if (rd_skip(r) != 0) fz_fail("result: malformed returnValue");
    return F_RETURN;
  }
  if (str_is(k, "error")) {
    check_error(r, out);
    return F_ERROR;
  }
  if (str_is(k, "suspension")) {
    check_call(r, NULL);
    return F_SUSPENSION;
  }
  if (str_is(k, "pendingCalls")) {
    check_pending(r, out);
    return F_PENDING;
  }
  for (i = 0; i < sizeof lists / sizeof lists[0]; i++) {
    if (!str_is(k, lists[i])) continue;
    expect_item(r, &v, i == 4 ? MP_MAP : MP_ARRAY, lists[i]); /* metrics is a map */
    for (items = v.kind == MP_MAP ? 2 * v.count : v.count; items > 0; items--)
      if (rd_skip(r) != 0) fz_fail("result: malformed %s", lists[i]);
    return F_LIST0 << i;
  }
  if (rd_skip(r) != 0) fz_fail("result: malformed value");
  return 0; /* a key added later: not this checker's business */
}

void fz_result_check(const char *buf, size_t len, fz_result_t *out) {
  rd_t r = {(const uint8_t *)buf, len, 0};
  item_t m, k;
  unsigned seen = 0, need;
  uint64_t i;

  memset(out, 0, sizeof *out);
  if (!fz_mp_wellformed((const uint8_t *)buf, len))
    fz_fail("result of %zu bytes is not one well-formed MessagePack value", len);
  expect_item(&r, &m, MP_MAP, "the result");
  for (i = 0; i < m.count; i++) {
    expect_item(&r, &k, MP_STR, "a result key");
    seen |= check_field(&r, &k, out);
  }
  if (strcmp(out->status, "success") == 0)
    need = F_RETURN;
  else if (strcmp(out->status, "error") == 0)
    need = F_ERROR;
  else if (strcmp(out->status, "suspended") == 0)
    need = F_SUSPENSION | F_PENDING;
  else
    fz_fail("result: status \"%s\" is none of success, error, suspended", out->status);
  need |= F_STATUS | F_LISTS;
  if ((seen & need) != need) fz_fail("result (%s) lacks a field it must have", out->status);
}

/* ---- the runtime ------------------------------------------------------------ */

static nx_runtime_t *runtime;
static uint64_t result_limit; /* config.maxResultBytes */
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;

/* job->data points at one of these while the job is out. */
typedef struct {
  int done;
} waiter_t;

/* Runs on the worker, under the runtime's lock: only signal here. */
static void on_done(nx_job_t *job, void *arg) {
  waiter_t *w = job->data;
  (void)arg;
  pthread_mutex_lock(&done_lock);
  w->done = 1;
  pthread_cond_broadcast(&done_cond);
  pthread_mutex_unlock(&done_lock);
}

static void wait_done(waiter_t *w) {
  pthread_mutex_lock(&done_lock);
  while (!w->done) pthread_cond_wait(&done_cond, &done_lock);
  pthread_mutex_unlock(&done_lock);
}

/* Host answers to $ext calls: MessagePack as lib/index.js would send it,
 * plus a few the guest cannot take (the call then rejects). */
typedef struct {
  int ok;
  char *bytes;
  size_t len;
} answer_t;

#define NANSWERS 12
static answer_t answers[NANSWERS];

static void pack_ext(nx_buf_t *b, int8_t type, const void *data, size_t len) {
  nx_mp_pack_ext_header(b, len, type);
  nx_buf_write(b, data, len);
}

/* b's bytes in a malloc'd copy (nx_mem_t blocks are not plain malloc). */
static uint8_t *take_bytes(nx_buf_t *b, size_t *len) {
  uint8_t *copy = malloc(b->size ? b->size : 1);
  if (b->refused || copy == NULL) fz_fail("out of memory writing a fuzz input");
  memcpy(copy, b->data, b->size);
  *len = b->size;
  return copy;
}

static void pack_answer(int i, nx_buf_t *b) {
  static const uint8_t ts[4] = {0x5f, 0x00, 0x00, 0x00};
  static const uint8_t typed[9] = {9, 1, 0, 0, 0, 0, 0, 0, 0}; /* code 9: BigInt64Array */
  int d;
  switch (i) {
    case 0:
      nx_mp_pack_map(b, 2);
      nx_mp_pack_str(b, "ok", 2);
      nx_mp_pack_bool(b, 1);
      nx_mp_pack_str(b, "items", 5);
      nx_mp_pack_array(b, 3);
      nx_mp_pack_int(b, 1);
      nx_mp_pack_str(b, "two", 3);
      nx_mp_pack_double(b, 3.5);
      break;
    case 1: nx_mp_pack_str(b, "boom", 4); break; /* an error message */
    case 2: nx_mp_pack_nil(b); break;
    case 3: nx_mp_pack_uint(b, 1ull << 40); break;
    case 4: nx_mp_pack_bin(b, "\1\2\3\4", 4); break;
    case 5: pack_ext(b, -1, ts, 4); break;
    case 6:
      for (d = 0; d < 31; d++) nx_mp_pack_array(b, 1);
      nx_mp_pack_int(b, 7);
      break;
    case 7: /* a map key that is not a string: undecodable */
      nx_mp_pack_map(b, 1);
      nx_mp_pack_array(b, 0);
      nx_mp_pack_int(b, 1);
      break;
    case 8: pack_ext(b, 5, "x", 1); break; /* unknown extension */
    case 9: {
      static char big[70000];
      memset(big, 'x', sizeof big);
      nx_mp_pack_str(b, big, sizeof big);
      break;
    }
    case 10: nx_mp_pack_int(b, INT64_MIN); break;
    default: pack_ext(b, 0x74, typed, sizeof typed); break;
  }
}

static void build_answers(void) {
  int i;
  for (i = 0; i < NANSWERS; i++) {
    nx_mem_t mem;
    nx_buf_t b;
    nx_mem_init(&mem);
    nx_buf_init(&b, &mem, NULL);
    pack_answer(i, &b);
    answers[i].ok = i != 1;
    answers[i].bytes = (char *)take_bytes(&b, &answers[i].len);
    nx_mem_release(&mem);
    /* The addon refuses anything else before it reaches the runtime. */
    if (nx_mp_validate((const uint8_t *)answers[i].bytes, answers[i].len, 32) != 0)
      fz_fail("answer %d is not valid MessagePack", i);
  }
}

void fz_runtime_start(const nx_config_t *cfg) {
  char err[256];
  build_answers();
  result_limit = cfg->max_result_bytes;
  runtime = nx_runtime_start(cfg, on_done, NULL, err, sizeof err);
  if (runtime == NULL) fz_fail("nx_runtime_start: %s", err);
}

nx_runtime_t *fz_runtime(void) { return runtime; }

void fz_config(nx_config_t *cfg) {
  nx_config_defaults(cfg);
  cfg->memory_check = NX_MEMORY_CHECK_BOUNDS;
  cfg->workers = 1;
  cfg->max_instances = 2;
  cfg->max_result_bytes = 256u << 10;
  cfg->memory_limit = 16u << 20;
  cfg->default_timeout_ms = 50;
  cfg->max_host_calls = 1000;
}

static void *copy_bytes(const void *p, size_t n) {
  void *out = malloc(n ? n : 1);
  if (out == NULL) fz_fail("out of memory");
  if (n) memcpy(out, p, n);
  return out;
}

nx_job_t *fz_execute(nx_exec_mode_t mode, const void *code, size_t code_len, const uint8_t *context,
                     size_t context_len) {
  nx_job_t *job = calloc(1, sizeof *job);
  waiter_t w = {0};
  if (job == NULL) fz_fail("out of memory");
  job->mode = mode;
  job->code = copy_bytes(code, code_len);
  job->code_len = code_len;
  job->context = copy_bytes(context, context_len);
  job->context_len = context_len;
  job->data = &w;
  if (nx_runtime_submit(runtime, job) != 0) fz_fail("the runtime refused a job");
  wait_done(&w);
  job->data = NULL;
  return job;
}

nx_job_t *fz_import(const uint8_t *bytes, size_t len) {
  nx_job_t *job = calloc(1, sizeof *job);
  waiter_t w = {0};
  const char *reject = NULL;
  char why[160];
  int rc;
  if (job == NULL) fz_fail("out of memory");
  job->outcome.status = NX_STATUS_SUSPENDED;
  rc = nx_runtime_import_now(runtime, bytes, len, &job->result, &job->result_len, &reject, why,
                             sizeof why);
  if (rc == NX_RC_OK) return job;
  if (rc != NX_RC_NOTFOUND && rc != NX_RC_STOPPING) {
    job->reject_code = reject;
    snprintf(job->reject_message, sizeof job->reject_message, "%s", why);
    return job;
  }
  if (rc != NX_RC_NOTFOUND) fz_fail("nx_runtime_import_now: %d", rc);
  job->context = copy_bytes(bytes, len);
  job->context_len = len;
  job->data = &w;
  if (nx_runtime_import(runtime, job) != 0) fz_fail("the runtime refused an import job");
  wait_done(&w);
  job->data = NULL;
  return job;
}

/* Answers the first n pending calls of `res`, with answers chosen by `in`. */
static nx_job_t *resume(const fz_result_t *res, uint32_t n, fz_bytes_t *in) {
  nx_job_t *job = calloc(1, sizeof *job);
  size_t total = 0, at = 0;
  unsigned pick[FZ_MAX_PENDING];
  waiter_t w = {0};
  int st;
  uint32_t i;

  if (job == NULL) fz_fail("out of memory");
  for (i = 0; i < n; i++) {
    pick[i] = fz_pick(in, NANSWERS);
    total += answers[pick[i]].len;
  }
  job->answers = calloc(n, sizeof *job->answers);
  job->answer_bytes = malloc(total);
  if (job->answers == NULL || job->answer_bytes == NULL) fz_fail("out of memory");
  job->nanswers = n;
  for (i = 0; i < n; i++) {
    const answer_t *a = &answers[pick[i]];
    memcpy(job->answer_bytes + at, a->bytes, a->len);
    job->answers[i].ok = a->ok;
    job->answers[i].bytes = job->answer_bytes + at;
    job->answers[i].len = a->len;
    at += a->len;
  }
  job->data = &w;
  st = nx_runtime_resume(runtime, job, (const uint8_t(*)[NX_SUSPENSION_ID_BYTES])res->ids);
  if (st != NX_RC_OK) fz_fail("resume of ids just reported as pending failed: %d", (int)st);
  wait_done(&w);
  job->data = NULL;
  return job;
}

/* Discards the execution; every other id it had must be gone with it. */
static void cancel(const fz_result_t *res) {
  if (nx_runtime_cancel_suspended(runtime, res->ids[0]) != 1)
    fz_fail("cancelSuspended did not find an id just reported as pending");
  if (nx_runtime_cancel_suspended(runtime, res->ids[res->npending - 1]) != 0)
    fz_fail("an id outlived the cancellation of its execution");
}

#define RESULT_SLACK (16u << 10)

static void check_job(const nx_job_t *job, fz_result_t *res) {
  static const char *const names[NX_STATUS__COUNT] = {"success", "error", "suspended"};
  if (job->reject_code) fz_fail("job rejected: %s: %s", job->reject_code, job->reject_message);
  if (job->result == NULL) fz_fail("job completed without a result");
  fz_result_check(job->result, job->result_len, res);
  if (strcmp(res->status, names[job->outcome.status]) != 0)
    fz_fail("result status %s, outcome says %s", res->status, names[job->outcome.status]);
  if (strcmp(res->code, "INTERNAL_ERROR") == 0)
    fz_note(res->message, "INTERNAL_ERROR: %s", res->message);
  /* The budget covers what a handler writes; the rest of a result (an error
   * message, metrics) should be small next to it. */
  if (job->result_len > result_limit + RESULT_SLACK)
    fz_note(res->status, "a %s result of %zu bytes, over maxResultBytes (%llu) + %u", res->status,
            job->result_len, (unsigned long long)result_limit, RESULT_SLACK);
  if (getenv("FUZZ_PRINT"))
    fprintf(stderr, "---- result: %s %s %s (%zu bytes)\n", res->status, res->code, res->message,
            job->result_len);
}

#define MAX_ROUNDS 6

void fz_finish(nx_job_t *job, fz_bytes_t *in) {
  int round;
  for (round = 0;; round++) {
    fz_result_t res;
    unsigned how;
    check_job(job, &res);
    if (strcmp(res.status, "suspended") != 0) break;
    how = round >= MAX_ROUNDS ? 3 : fz_pick(in, 4);
    nx_job_free(job);
    job = NULL;
    if (how == 3) {
      cancel(&res);
      break;
    }
    job = resume(&res, how == 2 ? 1 : res.npending, in);
  }
  nx_job_free(job);
}

void fz_engine_tag(char *out, size_t outlen) {
  static const char code[] = "return 1";
  nx_job_t *job = fz_execute(NX_MODE_COMPILE, code, sizeof code - 1, NULL, 0);
  fz_result_t res;
  size_t elen;

  check_job(job, &res);
  /* Header: magic, version, engine tag length at 6 (u16 LE), tag at 76. */
  if (strcmp(res.status, "success") != 0 || res.retval == NULL || res.retval_len < 76)
    fz_fail("precompiling a trivial handler failed: %s", res.message);
  elen = (size_t)res.retval[6] | (size_t)res.retval[7] << 8;
  if (76 + elen > res.retval_len || elen >= outlen) fz_fail("bad precompiled header");
  memcpy(out, res.retval + 76, elen);
  out[elen] = 0;
  nx_job_free(job);
}

/* ---- contexts ---------------------------------------------------------------- */

static void pack_str(nx_buf_t *b, const char *s) { nx_mp_pack_str(b, s, strlen(s)); }

static void pack_state(nx_buf_t *b) {
  uint32_t i;
  nx_mp_pack_map(b, 6);
  pack_str(b, "count");
  nx_mp_pack_int(b, 41);
  pack_str(b, "obj");
  nx_mp_pack_map(b, 2);
  pack_str(b, "a");
  nx_mp_pack_array(b, 2);
  nx_mp_pack_int(b, 1);
  nx_mp_pack_int(b, 2);
  pack_str(b, "d");
  nx_mp_pack_map(b, 1);
  pack_str(b, "deep");
  nx_mp_pack_bool(b, 1);
  pack_str(b, "s");
  pack_str(b, "hello");
  pack_str(b, "list");
  nx_mp_pack_array(b, 3);
  nx_mp_pack_int(b, 1);
  nx_mp_pack_int(b, 2);
  nx_mp_pack_int(b, 3);
  pack_str(b, "big");
  nx_mp_pack_double(b, 1099511627776.0); /* msgpackr's 2^40 */
  /* Large enough to reach the guest as a lazy container (lazy.h). */
  pack_str(b, "many");
  nx_mp_pack_array(b, 100);
  for (i = 0; i < 100; i++) {
    nx_mp_pack_map(b, 1);
    pack_str(b, "i");
    nx_mp_pack_int(b, i);
  }
}

void fz_context(const char *const *caps, size_t ncaps, uint8_t **out, size_t *out_len) {
  nx_mem_t mem;
  nx_buf_t b;
  size_t i;

  nx_mem_init(&mem);
  nx_buf_init(&b, &mem, NULL);
  nx_mp_pack_map(&b, 7);
  pack_str(&b, "panelId");
  pack_str(&b, "fuzz-panel");
  pack_str(&b, "handlerName");
  pack_str(&b, "onFuzz");
  pack_str(&b, "stateSnapshot");
  pack_state(&b);
  pack_str(&b, "args");
  nx_mp_pack_map(&b, 2);
  pack_str(&b, "step");
  nx_mp_pack_int(&b, 1);
  pack_str(&b, "nested");
  nx_mp_pack_array(&b, 2);
  nx_mp_pack_int(&b, 1);
  pack_str(&b, "a");
  pack_str(&b, "scope");
  nx_mp_pack_map(&b, 1);
  pack_str(&b, "user");
  pack_str(&b, "u");
  pack_str(&b, "capabilities");
  nx_mp_pack_array(&b, ncaps);
  for (i = 0; i < ncaps; i++) pack_str(&b, caps[i]);
  pack_str(&b, "extensionRegistry");
  nx_mp_pack_map(&b, 2);
  pack_str(&b, "svc");
  nx_mp_pack_array(&b, 2);
  pack_str(&b, "get");
  pack_str(&b, "put");
  pack_str(&b, "other");
  nx_mp_pack_array(&b, 1);
  pack_str(&b, "call");
  *out = take_bytes(&b, out_len);
  nx_mem_release(&mem);
}

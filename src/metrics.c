/* Counters behind getPrometheusMetrics() and getStats() (see metrics.h).
 * Results and cache outcomes are atomic counters, so recording one takes no
 * lock (workers record them while they hold the runtime's); the host-call
 * series, whose names must be copied, sit behind a private mutex, and a
 * render copies a snapshot and formats with it released. */
#include "metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Bounds in whole microseconds: a duration finds its bucket by an exact
 * integer comparison, so 10 µs is always in le="1e-05" whatever the float
 * rounding. The le strings are spelled as the Go and Python clients spell
 * them, so queries matching le="..." work across exporters. */
static const uint64_t bucket_us[] = {
    10,    25,    50,     100,    250,    500,     1000,    2500,    5000,     10000,
    25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};
static const char *const bucket_le[] = {
    "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
    "0.025", "0.05",    "0.1",   "0.25",   "0.5",     "1",      "2.5",   "5",      "10",
};
#define NBUCKETS (sizeof bucket_us / sizeof bucket_us[0])
#define STR_(x) #x
#define STR(x) STR_(x)
_Static_assert(sizeof bucket_le / sizeof bucket_le[0] == NBUCKETS, "one le label per bucket bound");

/* Open addressing at a load of at most one half keeps probes short; slots
 * hold a series position plus one so that zero means empty. */
#define INDEX_SLOTS (2 * NX_METRICS_HOSTCALL_CAP)
_Static_assert(NX_METRICS_HOSTCALL_CAP < UINT16_MAX, "index slots are uint16_t");
_Static_assert((INDEX_SLOTS & (INDEX_SLOTS - 1)) == 0, "index size is a power of two");

/* The counters, and the plain copy a render or a totals call reads. Each
 * counter is exact; a copy taken while workers record may see one result
 * in by_status before it shows in a bucket, which Prometheus tolerates. */
typedef struct {
  _Atomic uint64_t by_status[NX_STATUS__COUNT];
  _Atomic uint64_t by_code[NX_E__COUNT];
  _Atomic uint64_t cache_hits, cache_misses;
  _Atomic uint64_t buckets[NBUCKETS + 1]; /* per bucket, not cumulative; last is +Inf */
  _Atomic uint64_t duration_us_sum;
} atomic_counts_t;

typedef struct {
  uint64_t by_status[NX_STATUS__COUNT];
  uint64_t by_code[NX_E__COUNT];
  uint64_t cache_hits, cache_misses;
  uint64_t buckets[NBUCKETS + 1];
  uint64_t duration_us_sum;
  uint64_t hostcalls_other;
} counts_t;

/* A name is written once, before its series is published under the lock,
 * and freed only with the metrics: a snapshot may read it unlocked. */
typedef struct {
  char *name;
  uint32_t len, hash;
  uint64_t count;
} series_t;

struct nx_metrics_s {
  atomic_counts_t c;
  pthread_mutex_t lock; /* the series below */
  uint64_t hostcalls_other;
  uint32_t nseries;
  series_t series[NX_METRICS_HOSTCALL_CAP];
  uint16_t index[INDEX_SLOTS];
};

nx_metrics_t *nx_metrics_new(void) {
  nx_metrics_t *m = calloc(1, sizeof *m);

  if (m == NULL) goto fail;
  if (pthread_mutex_init(&m->lock, NULL) != 0) goto fail;
  return m;
fail:
  free(m);
  return NULL;
}

void nx_metrics_free(nx_metrics_t *m) {
  uint32_t i;

  if (m == NULL) return;
  for (i = 0; i < m->nseries; i++) free(m->series[i].name);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

void nx_metrics_record_result(nx_metrics_t *m, nx_status_t status, nx_error_code_t code,
                              uint64_t duration_us) {
  size_t b = 0;

  /* Coerce contract violations instead of dropping them, so every result
   * still shows up and the error series add up to status="error". */
  if ((unsigned)status >= NX_STATUS__COUNT) status = NX_STATUS_ERROR;
  if (status != NX_STATUS_ERROR)
    code = NX_OK;
  else if (code <= NX_OK || code >= NX_E__COUNT)
    code = NX_E_INTERNAL_ERROR;
  while (b < NBUCKETS && duration_us > bucket_us[b]) b++;

  atomic_fetch_add_explicit(&m->c.by_status[status], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->c.by_code[code], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->c.buckets[b], 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&m->c.duration_us_sum, duration_us, memory_order_relaxed);
}

void nx_metrics_record_cache(nx_metrics_t *m, int hit) {
  atomic_fetch_add_explicit(hit ? &m->c.cache_hits : &m->c.cache_misses, 1, memory_order_relaxed);
}

/* A plain copy of the counters. */
static void read_counts(nx_metrics_t *m, counts_t *c) {
  size_t i;
  for (i = 0; i < NX_STATUS__COUNT; i++) c->by_status[i] = atomic_load(&m->c.by_status[i]);
  for (i = 0; i < NX_E__COUNT; i++) c->by_code[i] = atomic_load(&m->c.by_code[i]);
  for (i = 0; i < NBUCKETS + 1; i++) c->buckets[i] = atomic_load(&m->c.buckets[i]);
  c->cache_hits = atomic_load(&m->c.cache_hits);
  c->cache_misses = atomic_load(&m->c.cache_misses);
  c->duration_us_sum = atomic_load(&m->c.duration_us_sum);
  pthread_mutex_lock(&m->lock);
  c->hostcalls_other = m->hostcalls_other;
  pthread_mutex_unlock(&m->lock);
}

/* Label values must be UTF-8 (a scraper rejects the whole page otherwise),
 * and NUL would cut the rendered text short. */
static int valid_label_utf8(const unsigned char *s, size_t len) {
  size_t i = 0;

  while (i < len) {
    unsigned c = s[i], n, cp, k;
    if (c == 0) return 0;
    if (c < 0x80) {
      i++;
      continue;
    }
    if (c >= 0xc2 && c <= 0xdf)
      n = 1, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
      n = 2, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
      n = 3, cp = c & 0x07;
    else
      return 0;
    if (len - i <= n) return 0;
    for (k = 1; k <= n; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
      return 0;
    i += n + 1;
  }
  return 1;
}

/* Returns the index slot holding name, or the empty slot where it belongs.
 * Never loops forever: the table is at most half full. Lock held. */
static uint32_t find_slot(const nx_metrics_t *m, const char *name, uint32_t len, uint32_t hash) {
  uint32_t slot = hash & (INDEX_SLOTS - 1);

  for (;;) {
    const series_t *s;
    if (m->index[slot] == 0) return slot;
    s = &m->series[m->index[slot] - 1];
    if (s->hash == hash && s->len == len && memcmp(s->name, name, len) == 0) return slot;
    slot = (slot + 1) & (INDEX_SLOTS - 1);
  }
}

/* The common case (a name already seen) is one probe under the lock. The
 * first sighting copies the name with the lock released and looks again,
 * since another worker may have added it meanwhile. */
void nx_metrics_record_hostcall(nx_metrics_t *m, const char *name, size_t name_len,
                                uint64_t count) {
  char *copy = NULL;
  uint32_t hash, slot, len;
  int own;

  /* A zero would spend one of the capped series on a function never called. */
  if (count == 0) return;
  if (name == NULL) name_len = 0;
  own = name_len > 0 && name_len <= NX_METRICS_HOSTCALL_NAME_MAX &&
        valid_label_utf8((const unsigned char *)name, name_len) &&
        !(name_len == sizeof NX_METRICS_HOSTCALL_OTHER - 1 &&
          memcmp(name, NX_METRICS_HOSTCALL_OTHER, name_len) == 0);
  hash = own ? nx_util_fnv1a(name, name_len) : 0;
  len = (uint32_t)name_len; /* own names are at most NAME_MAX bytes */

  pthread_mutex_lock(&m->lock);
  if (!own) goto other;
  slot = find_slot(m, name, len, hash);
  if (m->index[slot]) goto found;
  if (m->nseries == NX_METRICS_HOSTCALL_CAP) goto other;
  pthread_mutex_unlock(&m->lock);

  copy = malloc(name_len + 1);
  if (copy) {
    memcpy(copy, name, name_len);
    copy[name_len] = '\0';
  }

  pthread_mutex_lock(&m->lock);
  slot = find_slot(m, name, len, hash);
  if (m->index[slot]) goto found;
  /* Out of memory for the name: the calls still count, under "other". */
  if (copy == NULL || m->nseries == NX_METRICS_HOSTCALL_CAP) goto other;
  m->series[m->nseries] = (series_t){copy, len, hash, 0};
  m->index[slot] = (uint16_t)++m->nseries;
  copy = NULL;
found:
  m->series[m->index[slot] - 1].count += count;
  goto done;
other:
  m->hostcalls_other += count;
done:
  pthread_mutex_unlock(&m->lock);
  free(copy);
}

void nx_metrics_totals(nx_metrics_t *m, nx_metrics_totals_t *out) {
  counts_t c;
  int i;

  read_counts(m, &c);
  memset(out, 0, sizeof *out);
  memcpy(out->by_status, c.by_status, sizeof out->by_status);
  memcpy(out->by_code, c.by_code, sizeof out->by_code);
  out->cache_hits = c.cache_hits;
  out->cache_misses = c.cache_misses;
  out->duration_us_sum = c.duration_us_sum;
  for (i = 0; i < NX_STATUS__COUNT; i++) out->count += c.by_status[i];
}

/* Rendering ---------------------------------------------------------------- */

typedef struct {
  char *data;
  size_t len, cap;
  int oom;
} buf_t;

static int buf_reserve(buf_t *b, size_t more) {
  size_t cap = b->cap ? b->cap : 4096;
  char *p;

  if (b->oom) return -1;
  if (b->len + more < b->cap) return 0;
  while (cap <= b->len + more) cap *= 2;
  p = realloc(b->data, cap);
  if (p == NULL) {
    b->oom = 1;
    return -1;
  }
  b->data = p;
  b->cap = cap;
  return 0;
}

/* Keeps data NUL-terminated after every append. */
static void buf_printf(buf_t *b, const char *fmt, ...) {
  va_list ap;
  int n;

  if (buf_reserve(b, 128) != 0) return;
  va_start(ap, fmt);
  n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->oom = 1;
    return;
  }
  if ((size_t)n >= b->cap - b->len) {
    if (buf_reserve(b, (size_t)n + 1) != 0) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
  }
  b->len += (size_t)n;
}

/* Label value escaping of the text format: backslash, double quote and
 * line feed; everything else is passed through as UTF-8. */
static void buf_label(buf_t *b, const char *s, size_t len) {
  size_t i;

  if (buf_reserve(b, 2 * len + 1) != 0) return;
  for (i = 0; i < len; i++) {
    char c = s[i];
    if (c == '\\' || c == '"') b->data[b->len++] = '\\';
    if (c == '\n') {
      b->data[b->len++] = '\\';
      c = 'n';
    }
    b->data[b->len++] = c;
  }
  b->data[b->len] = '\0';
}

static void family(buf_t *b, const char *name, const char *type, const char *help) {
  buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A gauge family with its one unlabelled sample. */
static void gauge(buf_t *b, const char *name, const char *help, uint64_t value) {
  family(b, name, "gauge", help);
  buf_printf(b, "%s %" PRIu64 "\n", name, value);
}

static int by_name(const void *a, const void *b) {
  const series_t *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int d = memcmp(x->name, y->name, n);

  return d ? d : (x->len > y->len) - (x->len < y->len);
}

char *nx_metrics_render(nx_metrics_t *m, const nx_metrics_gauges_t *g, size_t *len) {
  static const nx_metrics_gauges_t no_gauges;
  series_t *snap = malloc(sizeof m->series);
  buf_t b = {NULL, 0, 0, 0};
  counts_t c;
  uint64_t cumulative = 0, count = 0;
  uint32_t n, i;

  if (snap == NULL) goto fail;
  if (g == NULL) g = &no_gauges;
  read_counts(m, &c);
  pthread_mutex_lock(&m->lock);
  n = m->nseries;
  memcpy(snap, m->series, n * sizeof *snap);
  pthread_mutex_unlock(&m->lock);
  /* Sorted so that consecutive scrapes list series in the same order
   * whichever worker saw a name first. */
  qsort(snap, n, sizeof *snap, by_name);

  family(&b, "nexus_executions_total", "counter",
         "Execution segments (a start or a resume) that produced a result, by status.");
  for (i = 0; i < NX_STATUS__COUNT; i++) {
    buf_printf(&b, "nexus_executions_total{status=\"%s\"} %" PRIu64 "\n",
               nx_status_name((nx_status_t)i), c.by_status[i]);
    count += c.by_status[i];
  }

  family(&b, "nexus_execution_errors_total", "counter",
         "Execution segments that ended in an error, by error code.");
  for (i = NX_OK + 1; i < NX_E__COUNT; i++)
    buf_printf(&b, "nexus_execution_errors_total{code=\"%s\"} %" PRIu64 "\n",
               nx_error_name((nx_error_code_t)i), c.by_code[i]);

  family(&b, "nexus_execution_duration_seconds", "histogram",
         "Wall time of execution segments (a start or a resume).");
  for (i = 0; i < NBUCKETS; i++) {
    cumulative += c.buckets[i];
    buf_printf(&b, "nexus_execution_duration_seconds_bucket{le=\"%s\"} %" PRIu64 "\n", bucket_le[i],
               cumulative);
  }
  /* Exact decimal from whole microseconds, where a double would round. */
  buf_printf(&b,
             "nexus_execution_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64
             "\n"
             "nexus_execution_duration_seconds_sum %" PRIu64 ".%06" PRIu64
             "\n"
             "nexus_execution_duration_seconds_count %" PRIu64 "\n",
             count, c.duration_us_sum / 1000000, c.duration_us_sum % 1000000, count);

  family(&b, "nexus_compile_cache_hits_total", "counter",
         "Handler compilations served from the compile cache.");
  buf_printf(&b, "nexus_compile_cache_hits_total %" PRIu64 "\n", c.cache_hits);
  family(&b, "nexus_compile_cache_misses_total", "counter",
         "Handler compilations that missed the compile cache.");
  buf_printf(&b, "nexus_compile_cache_misses_total %" PRIu64 "\n", c.cache_misses);

  family(&b, "nexus_host_calls_total", "counter",
         "Calls from handlers into host functions, by function. Only the first "
         STR(NX_METRICS_HOSTCALL_CAP) " distinct names get a series; later ones "
         "count as function=\"" NX_METRICS_HOSTCALL_OTHER "\".");
  for (i = 0; i < n; i++) {
    buf_printf(&b, "nexus_host_calls_total{function=\"");
    buf_label(&b, snap[i].name, snap[i].len);
    buf_printf(&b, "\"} %" PRIu64 "\n", snap[i].count);
  }
  buf_printf(&b, "nexus_host_calls_total{function=\"%s\"} %" PRIu64 "\n", NX_METRICS_HOSTCALL_OTHER,
             c.hostcalls_other);

  family(&b, "nexus_instances", "gauge",
         "Sandbox instances by state: active (running an execution) or idle (pooled).");
  buf_printf(&b,
             "nexus_instances{state=\"active\"} %" PRIu32
             "\n"
             "nexus_instances{state=\"idle\"} %" PRIu32 "\n",
             g->instances_active, g->instances_idle);
  gauge(&b, "nexus_suspended_executions",
        "Executions suspended on an extension call, waiting to be resumed.",
        g->executions_suspended);
  gauge(&b, "nexus_queued_executions", "Executions waiting for a worker or an instance.",
        g->executions_queued);
  gauge(&b, "nexus_memory_bytes", "Linear memory of the live sandboxes.", g->memory_bytes);
  gauge(&b, "nexus_compile_cache_entries", "Compiled handlers held in the compile cache.",
        g->cache_entries);
  gauge(&b, "nexus_compile_cache_bytes", "Size of the compiled handlers held in the compile cache.",
        g->cache_bytes);

  if (b.oom) goto fail;
  free(snap);
  if (len) *len = b.len;
  return b.data;
fail:
  free(snap);
  free(b.data);
  return NULL;
}

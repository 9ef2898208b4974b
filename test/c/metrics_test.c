/* Standalone test of src/metrics.c: records a known mix and checks the
 * rendered exposition line by line, then renders while threads record.
 * Usage: metrics_test [out.prom] (writes the known mix's text there). */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

typedef struct {
  int passed, failed;
} tally_t;

static void check(tally_t *t, int ok, const char *fmt, ...) {
  va_list ap;

  if (ok) {
    t->passed++;
    return;
  }
  t->failed++;
  fputs("FAIL: ", stdout);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fputc('\n', stdout);
}

/* 1 if text holds exactly this line. */
static int has_line(const char *text, const char *line) {
  size_t n = strlen(line);
  const char *p = text;

  while ((p = strstr(p, line)) != NULL) {
    if ((p == text || p[-1] == '\n') && p[n] == '\n') return 1;
    p += 1;
  }
  return 0;
}

static void expect_line(tally_t *t, const char *text, const char *fmt, ...) {
  char line[512];
  va_list ap;

  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  check(t, has_line(text, line), "missing line: %s", line);
}

/* Value of the sample whose series (everything before the value) is
 * exactly `series`, or -1 when absent. */
static long long sample(const char *text, const char *series) {
  size_t n = strlen(series);
  const char *p = text;

  while (*p) {
    const char *eol = strchr(p, '\n');
    if (eol == NULL) eol = p + strlen(p);
    if ((size_t)(eol - p) > n && strncmp(p, series, n) == 0 && p[n] == ' ')
      return strtoll(p + n + 1, NULL, 10);
    p = *eol ? eol + 1 : eol;
  }
  return -1;
}

/* Sums the values of every sample line starting with prefix; *lines gets
 * how many there were. */
static uint64_t sum_samples(const char *text, const char *prefix, int *lines) {
  size_t n = strlen(prefix);
  const char *p = text;
  uint64_t sum = 0;

  *lines = 0;
  while (*p) {
    const char *eol = strchr(p, '\n');
    if (eol == NULL) eol = p + strlen(p);
    if (strncmp(p, prefix, n) == 0) {
      const char *sp = eol;
      while (sp > p && sp[-1] != ' ') sp--;
      sum += strtoull(sp, NULL, 10);
      (*lines)++;
    }
    p = *eol ? eol + 1 : eol;
  }
  return sum;
}

/* Format rules a scraper enforces: HELP then TYPE per family, samples only
 * of the family just declared, counters named *_total, no duplicate series,
 * no timestamps (exactly one space outside the labels), trailing newline. */
static void check_structure(tally_t *t, const char *text, size_t len) {
  char family[128] = "", type[16] = "", help_of[128] = "";
  const char *p = text;
  int lineno = 0, bad = 0;
  char **seen = NULL;
  size_t nseen = 0, i;

  check(t, strlen(text) == len, "length %zu matches strlen %zu", len, strlen(text));
  check(t, len > 0 && text[len - 1] == '\n', "text ends with a newline");
  while (*p && !bad) {
    const char *eol = strchr(p, '\n');
    size_t n = eol ? (size_t)(eol - p) : strlen(p);
    char line[1024];
    lineno++;
    if (n >= sizeof line) {
      check(t, 0, "line %d too long", lineno);
      break;
    }
    memcpy(line, p, n);
    line[n] = '\0';
    p += n + (eol != NULL);
    if (strncmp(line, "# HELP ", 7) == 0) {
      sscanf(line + 7, "%127s", help_of);
    } else if (strncmp(line, "# TYPE ", 7) == 0) {
      if (sscanf(line + 7, "%127s %15s", family, type) != 2)
        bad = 1;
      else if (strcmp(family, help_of) != 0)
        bad = 1;
      else if (strcmp(type, "counter") == 0 &&
               (strlen(family) < 6 || strcmp(family + strlen(family) - 6, "_total") != 0))
        bad = 1;
      if (bad) check(t, 0, "line %d: bad TYPE line: %s", lineno, line);
    } else {
      const char *brace = strchr(line, '{');
      const char *close = strrchr(line, '}');
      const char *after = close ? close + 1 : line;
      size_t nlen = brace ? (size_t)(brace - line) : strcspn(line, " ");
      size_t flen = strlen(family);
      int ok = nlen == flen && strncmp(line, family, flen) == 0;
      if (!ok && strcmp(type, "histogram") == 0 && strncmp(line, family, flen) == 0) {
        const char *suffix = line + flen;
        size_t slen = nlen - flen;
        ok = (slen == 7 && strncmp(suffix, "_bucket", 7) == 0) ||
             (slen == 4 && strncmp(suffix, "_sum", 4) == 0) ||
             (slen == 6 && strncmp(suffix, "_count", 6) == 0);
      }
      if (!ok) {
        check(t, 0, "line %d: sample outside its family %s: %s", lineno, family, line);
        bad = 1;
        break;
      }
      if (strchr(after, ' ') != strrchr(after, ' ') || strchr(after, ' ') == NULL) {
        check(t, 0, "line %d: expected one value and no timestamp: %s", lineno, line);
        bad = 1;
        break;
      }
      for (i = 0; i < nseen; i++)
        if (strncmp(seen[i], line, (size_t)(strrchr(line, ' ') - line) + 1) == 0) break;
      if (i < nseen) {
        check(t, 0, "line %d: duplicate series: %s", lineno, line);
        bad = 1;
        break;
      }
      {
        char **grown = realloc(seen, (nseen + 1) * sizeof *seen);
        if (grown == NULL || (grown[nseen] = strdup(line)) == NULL) {
          seen = grown ? grown : seen;
          check(t, 0, "out of memory in the test");
          bad = 1;
          break;
        }
        seen = grown;
        nseen++;
      }
    }
  }
  check(t, !bad, "exposition is well formed");
  for (i = 0; i < nseen; i++) free(seen[i]);
  free(seen);
}

static const char *const codes[] = {
    "TIMEOUT",           "MEMORY_LIMIT",    "PERMISSION_DENIED", "EXECUTION_ERROR",
    "COMPILATION_ERROR", "INVALID_HANDLER", "INTERNAL_ERROR",    "RESOURCE_LIMIT",
};

static void test_empty(tally_t *t) {
  nx_metrics_t *m = nx_metrics_new();
  size_t len = 0, i;
  char *text;

  check(t, m != NULL, "nx_metrics_new");
  if (m == NULL) return;
  text = nx_metrics_render(m, NULL, &len);
  check(t, text != NULL, "render of empty metrics");
  if (text) {
    check_structure(t, text, len);
    expect_line(t, text, "nexus_executions_total{status=\"success\"} 0");
    expect_line(t, text, "nexus_executions_total{status=\"error\"} 0");
    expect_line(t, text, "nexus_executions_total{status=\"suspended\"} 0");
    for (i = 0; i < sizeof codes / sizeof codes[0]; i++)
      expect_line(t, text, "nexus_execution_errors_total{code=\"%s\"} 0", codes[i]);
    check(t, strstr(text, "code=\"OK\"") == NULL, "no series for NX_OK");
    expect_line(t, text, "nexus_execution_duration_seconds_bucket{le=\"+Inf\"} 0");
    expect_line(t, text, "nexus_execution_duration_seconds_sum 0.000000");
    expect_line(t, text, "nexus_host_calls_total{function=\"other\"} 0");
    expect_line(t, text, "nexus_instances{state=\"idle\"} 0");
    expect_line(t, text, "nexus_compile_cache_bytes 0");
  }
  free(text);
  nx_metrics_free(m);
}

static void test_known_mix(tally_t *t, const char *out_path) {
  static const struct {
    const char *le;
    int count;
  } buckets[] = {
      {"1e-05", 2},  {"2.5e-05", 4}, {"5e-05", 4},  {"0.0001", 5}, {"0.00025", 6},
      {"0.0005", 6}, {"0.001", 7},   {"0.0025", 8}, {"0.005", 8},  {"0.01", 8},
      {"0.025", 8},  {"0.05", 8},    {"0.1", 8},    {"0.25", 8},   {"0.5", 8},
      {"1", 8},      {"2.5", 8},     {"5", 9},      {"10", 9},     {"+Inf", 10},
  };
  static const int code_counts[] = {2, 0, 1, 0, 0, 0, 2, 0};
  nx_metrics_gauges_t g = {3, 5, 2, 7, 123456789, 4, 4096};
  nx_metrics_totals_t tot;
  nx_metrics_t *m = nx_metrics_new();
  char name128[129], name129[130], fill[64];
  char *text = NULL;
  size_t len = 0, i;
  int lines;

  check(t, m != NULL, "nx_metrics_new");
  if (m == NULL) return;

  nx_metrics_record_result(m, NX_STATUS_SUCCESS, NX_OK, 10); /* on a bound */
  nx_metrics_record_result(m, NX_STATUS_SUCCESS, NX_OK, 11);
  nx_metrics_record_result(m, NX_STATUS_SUCCESS, NX_OK, 0);
  nx_metrics_record_result(m, NX_STATUS_SUSPENDED, NX_OK, 1000);
  nx_metrics_record_result(m, NX_STATUS_SUSPENDED, NX_E_TIMEOUT, 1001); /* not an error */
  nx_metrics_record_result(m, NX_STATUS_ERROR, NX_E_TIMEOUT, 5000000);
  nx_metrics_record_result(m, NX_STATUS_ERROR, NX_E_TIMEOUT, 10000001); /* +Inf */
  nx_metrics_record_result(m, NX_STATUS_ERROR, NX_E_PERMISSION_DENIED, 250);
  nx_metrics_record_result(m, NX_STATUS_ERROR, NX_OK, 100); /* -> INTERNAL_ERROR */
  nx_metrics_record_result(m, (nx_status_t)7, (nx_error_code_t)99, 20);

  nx_metrics_record_cache(m, 1);
  nx_metrics_record_cache(m, 1);
  nx_metrics_record_cache(m, 2);
  nx_metrics_record_cache(m, 0);

  memset(name128, 'n', 128);
  name128[128] = '\0';
  memset(name129, 'n', 129);
  name129[129] = '\0';
  nx_metrics_record_hostcall(m, "state.get", 9, 5);
  nx_metrics_record_hostcall(m, "state.get!", 9, 3); /* length, not NUL, ends it */
  nx_metrics_record_hostcall(m, "emit", 4, 1);
  nx_metrics_record_hostcall(m, "we\"ird\na\\me", 11, 2);
  nx_metrics_record_hostcall(m, "ext.\xc3\xbc.get", 10, 1);
  nx_metrics_record_hostcall(m, name128, 128, 1);
  nx_metrics_record_hostcall(m, "other", 5, 1);        /* folded */
  nx_metrics_record_hostcall(m, "", 0, 1);             /* folded */
  nx_metrics_record_hostcall(m, NULL, 3, 1);           /* folded */
  nx_metrics_record_hostcall(m, "\xff\xfe", 2, 1);     /* folded: not UTF-8 */
  nx_metrics_record_hostcall(m, "\xed\xa0\x80", 3, 1); /* folded: surrogate */
  nx_metrics_record_hostcall(m, "\xc3", 1, 1);         /* folded: truncated */
  nx_metrics_record_hostcall(m, "a\0b", 3, 1);         /* folded: NUL */
  nx_metrics_record_hostcall(m, name129, 129, 1);      /* folded: too long */
  nx_metrics_record_hostcall(m, "log", 3, 0);          /* nothing recorded */
  /* 5 series so far; 251 more fill the cap, the next 49 fold. */
  for (i = 0; i < 300; i++) {
    snprintf(fill, sizeof fill, "ext.fill%03zu.call", i);
    nx_metrics_record_hostcall(m, fill, strlen(fill), 1);
  }
  nx_metrics_record_hostcall(m, "state.get", 9, 2); /* existing series past the cap */
  nx_metrics_record_hostcall(m, "ext.fill299.call", 16, 1);
  nx_metrics_record_hostcall(m, "ext.new.call", 12, 1);

  text = nx_metrics_render(m, &g, &len);
  check(t, text != NULL, "render of the known mix");
  if (text == NULL) goto done;
  check_structure(t, text, len);

  expect_line(t, text, "# TYPE nexus_executions_total counter");
  expect_line(t, text, "nexus_executions_total{status=\"success\"} 3");
  expect_line(t, text, "nexus_executions_total{status=\"error\"} 5");
  expect_line(t, text, "nexus_executions_total{status=\"suspended\"} 2");
  expect_line(t, text, "# TYPE nexus_execution_errors_total counter");
  for (i = 0; i < sizeof codes / sizeof codes[0]; i++)
    expect_line(t, text, "nexus_execution_errors_total{code=\"%s\"} %d", codes[i], code_counts[i]);

  expect_line(t, text, "# TYPE nexus_execution_duration_seconds histogram");
  for (i = 0; i < sizeof buckets / sizeof buckets[0]; i++)
    expect_line(t, text, "nexus_execution_duration_seconds_bucket{le=\"%s\"} %d", buckets[i].le,
                buckets[i].count);
  /* 10+11+0+1000+1001+5000000+10000001+250+100+20 µs */
  expect_line(t, text, "nexus_execution_duration_seconds_sum 15.002393");
  expect_line(t, text, "nexus_execution_duration_seconds_count 10");

  expect_line(t, text, "nexus_compile_cache_hits_total 3");
  expect_line(t, text, "nexus_compile_cache_misses_total 1");

  expect_line(t, text, "# TYPE nexus_host_calls_total counter");
  expect_line(t, text, "nexus_host_calls_total{function=\"state.get\"} 10");
  expect_line(t, text, "nexus_host_calls_total{function=\"emit\"} 1");
  expect_line(t, text, "nexus_host_calls_total{function=\"we\\\"ird\\na\\\\me\"} 2");
  expect_line(t, text, "nexus_host_calls_total{function=\"ext.\xc3\xbc.get\"} 1");
  expect_line(t, text, "nexus_host_calls_total{function=\"%s\"} 1", name128);
  expect_line(t, text, "nexus_host_calls_total{function=\"ext.fill000.call\"} 1");
  expect_line(t, text, "nexus_host_calls_total{function=\"ext.fill250.call\"} 1");
  check(t, sample(text, "nexus_host_calls_total{function=\"ext.fill251.call\"}") == -1,
        "the 257th name has no series of its own");
  check(t, sample(text, "nexus_host_calls_total{function=\"ext.new.call\"}") == -1,
        "a new name past the cap has no series of its own");
  check(t, sample(text, "nexus_host_calls_total{function=\"log\"}") == -1,
        "a zero count creates no series");
  /* 8 folded singles + 49 fill names + ext.fill299.call again + ext.new.call */
  expect_line(t, text, "nexus_host_calls_total{function=\"other\"} 59");
  check(t, sum_samples(text, "nexus_host_calls_total{", &lines) == 10 + 1 + 2 + 1 + 1 + 251 + 59,
        "host calls add up");
  check(t, lines == NX_METRICS_HOSTCALL_CAP + 1, "%d host-call series, want cap + other", lines);

  expect_line(t, text, "# TYPE nexus_instances gauge");
  expect_line(t, text, "nexus_instances{state=\"active\"} 3");
  expect_line(t, text, "nexus_instances{state=\"idle\"} 5");
  expect_line(t, text, "nexus_suspended_executions 2");
  expect_line(t, text, "nexus_queued_executions 7");
  expect_line(t, text, "nexus_memory_bytes 123456789");
  expect_line(t, text, "nexus_compile_cache_entries 4");
  expect_line(t, text, "nexus_compile_cache_bytes 4096");
  check(t, strstr(text, "# TYPE nexus_memory_bytes gauge\n") != NULL, "memory is a gauge");

  nx_metrics_totals(m, &tot);
  check(t,
        tot.by_status[NX_STATUS_SUCCESS] == 3 && tot.by_status[NX_STATUS_ERROR] == 5 &&
            tot.by_status[NX_STATUS_SUSPENDED] == 2,
        "totals by status");
  check(t,
        tot.by_code[NX_OK] == 5 && tot.by_code[NX_E_TIMEOUT] == 2 &&
            tot.by_code[NX_E_PERMISSION_DENIED] == 1 && tot.by_code[NX_E_INTERNAL_ERROR] == 2,
        "totals by code");
  check(t, tot.cache_hits == 3 && tot.cache_misses == 1, "totals of the cache");
  check(t, tot.count == 10 && tot.duration_us_sum == 15002393, "totals of durations");

  if (out_path) {
    FILE *f = fopen(out_path, "w");
    check(t, f != NULL && fwrite(text, 1, len, f) == len && fclose(f) == 0, "write %s", out_path);
  }
done:
  free(text);
  nx_metrics_free(m);
}

/* Concurrency ---------------------------------------------------------------- */

#define THREADS 4
#define ITERATIONS 19800 /* a multiple of NAMES: every name gets the same count */
#define NAMES 300        /* more than the cap, so insertion races the cap too */

typedef struct {
  nx_metrics_t *m;
  atomic_int recording;
  int renders, bad_renders;
} shared_t;

static void *recorder(void *arg) {
  shared_t *s = arg;
  char name[32];
  int i;

  for (i = 0; i < ITERATIONS; i++) {
    int n;
    nx_metrics_record_result(s->m, (nx_status_t)(i % 3),
                             i % 3 == NX_STATUS_ERROR ? NX_E_TIMEOUT : NX_OK,
                             (uint64_t)(i % 7) * 1000);
    nx_metrics_record_cache(s->m, i & 1);
    n = snprintf(name, sizeof name, "ext.t%d.m", i % NAMES);
    nx_metrics_record_hostcall(s->m, name, (size_t)n, 1);
  }
  atomic_fetch_sub(&s->recording, 1);
  return NULL;
}

/* Every render must be a consistent snapshot: the histogram count, its
 * +Inf bucket and the statuses agree, and nothing goes backwards. */
static void *renderer(void *arg) {
  shared_t *s = arg;
  long long last = 0;

  do {
    size_t len;
    char *text = nx_metrics_render(s->m, NULL, &len);
    long long count, inf, st;
    int lines;
    if (text == NULL) {
      s->bad_renders++;
      continue;
    }
    count = sample(text, "nexus_execution_duration_seconds_count");
    inf = sample(text, "nexus_execution_duration_seconds_bucket{le=\"+Inf\"}");
    st = (long long)sum_samples(text, "nexus_executions_total{", &lines);
    if (count != inf || count != st || count < last || strlen(text) != len) s->bad_renders++;
    last = count;
    s->renders++;
    free(text);
  } while (atomic_load(&s->recording) > 0);
  return NULL;
}

static void test_concurrent(tally_t *t) {
  shared_t s;
  pthread_t rec[THREADS], ren;
  nx_metrics_totals_t tot;
  char *text;
  size_t len;
  int i, started = 0, lines;
  uint64_t per_status = 0;

  s.m = nx_metrics_new();
  atomic_init(&s.recording, THREADS);
  s.renders = s.bad_renders = 0;
  check(t, s.m != NULL, "nx_metrics_new");
  if (s.m == NULL) return;
  if (pthread_create(&ren, NULL, renderer, &s) != 0) {
    check(t, 0, "start the render thread");
    nx_metrics_free(s.m);
    return;
  }
  for (i = 0; i < THREADS; i++) {
    if (pthread_create(&rec[i], NULL, recorder, &s) != 0) {
      atomic_fetch_sub(&s.recording, 1);
      continue;
    }
    started++;
  }
  for (i = 0; i < THREADS; i++)
    if (i < started) pthread_join(rec[i], NULL);
  pthread_join(ren, NULL);
  check(t, started == THREADS, "started %d recorder threads", started);
  check(t, s.renders > 0 && s.bad_renders == 0, "%d renders, %d inconsistent", s.renders,
        s.bad_renders);

  for (i = 0; i < ITERATIONS; i++) per_status += i % 3 == 0;
  nx_metrics_totals(s.m, &tot);
  check(t, tot.count == (uint64_t)THREADS * ITERATIONS, "count %" PRIu64, tot.count);
  check(t, tot.by_status[NX_STATUS_SUCCESS] == THREADS * per_status, "successes");
  check(t, tot.by_code[NX_E_TIMEOUT] == tot.by_status[NX_STATUS_ERROR], "errors");
  check(t,
        tot.cache_hits + tot.cache_misses == (uint64_t)THREADS * ITERATIONS &&
            tot.cache_hits == tot.cache_misses,
        "cache hits and misses");

  text = nx_metrics_render(s.m, NULL, &len);
  check(t, text != NULL, "final render");
  if (text) {
    check_structure(t, text, len);
    check(t, sum_samples(text, "nexus_host_calls_total{", &lines) == (uint64_t)THREADS * ITERATIONS,
          "no host call lost");
    check(t, lines == NX_METRICS_HOSTCALL_CAP + 1, "%d host-call series under contention", lines);
    check(t,
          sample(text, "nexus_host_calls_total{function=\"other\"}") ==
              (long long)(NAMES - NX_METRICS_HOSTCALL_CAP) * (THREADS * ITERATIONS / NAMES),
          "other holds exactly the names past the cap");
    expect_line(t, text, "nexus_execution_duration_seconds_count %d", THREADS * ITERATIONS);
  }
  free(text);
  nx_metrics_free(s.m);
}

int main(int argc, char **argv) {
  tally_t t = {0, 0};

  test_empty(&t);
  test_known_mix(&t, argc > 1 ? argv[1] : NULL);
  test_concurrent(&t);
  printf("%d passed, %d failed\n", t.passed, t.failed);
  return t.failed ? 1 : 0;
}

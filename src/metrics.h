/* Runtime counters recorded by the worker threads and their rendering as
 * Prometheus text exposition format 0.0.4 for getPrometheusMetrics(). Gauges
 * are not stored here: the caller reads them from the pool at render time. */
#ifndef NX_METRICS_H
#define NX_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

/* Host-call series get their own label value for the first
 * NX_METRICS_HOSTCALL_CAP distinct names. Extension names come from users,
 * so an unbounded label set would let one panel blow up every scrape and
 * the TSDB behind it: later names, empty names, names longer than
 * NX_METRICS_HOSTCALL_NAME_MAX bytes, names that are not valid UTF-8 or
 * contain NUL, and the name "other" itself all count towards the single
 * series function="other", which is always rendered. The first names seen keep their series for the
 * life of the runtime. */
#define NX_METRICS_HOSTCALL_CAP 256
#define NX_METRICS_HOSTCALL_NAME_MAX 128
#define NX_METRICS_HOSTCALL_OTHER "other"

typedef struct nx_metrics_s nx_metrics_t;

/* NULL on OOM or when the mutex cannot be created. */
nx_metrics_t *nx_metrics_new(void);
void nx_metrics_free(nx_metrics_t *m);

/* One finished segment of an execution (a start or a resume) that produced
 * a result; takes no lock. code is NX_OK unless status is ERROR; an ERROR given NX_OK
 * counts as INTERNAL_ERROR so the error series add up to the error status.
 * duration in microseconds. */
void nx_metrics_record_result(nx_metrics_t *m, nx_status_t status, nx_error_code_t code,
                              uint64_t duration_us);
void nx_metrics_record_cache(nx_metrics_t *m, int hit);
/* Adds count calls of the host function name ("state.get", "emit",
 * "ext.http.get", ...); name need not be NUL-terminated. See the cap above. */
void nx_metrics_record_hostcall(nx_metrics_t *m, const char *name, size_t name_len, uint64_t count);

typedef struct {
  uint32_t instances_active, instances_idle;
  uint32_t executions_suspended, executions_queued;
  uint64_t memory_bytes; /* linear memory of live sandboxes */
  uint64_t cache_entries, cache_bytes;
} nx_metrics_gauges_t;

/* Renders Prometheus text exposition format 0.0.4; returns malloc'd
 * NUL-terminated text (length in *len, which may be NULL) or NULL on OOM.
 * g may be NULL: the gauges then read 0. */
char *nx_metrics_render(nx_metrics_t *m, const nx_metrics_gauges_t *g, size_t *len);

/* Snapshot for getStats(): totals by status and by error code. by_code[NX_OK]
 * counts the results that were not errors. */
typedef struct {
  uint64_t by_status[NX_STATUS__COUNT];
  uint64_t by_code[NX_E__COUNT];
  uint64_t cache_hits, cache_misses;
  uint64_t duration_us_sum, count;
} nx_metrics_totals_t;
void nx_metrics_totals(nx_metrics_t *m, nx_metrics_totals_t *out);

#endif

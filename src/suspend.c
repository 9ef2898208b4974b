/* Suspended executions (see suspend.h). Ids are 128 random bits, so their
 * first eight bytes are a uniform hash already. The table uses linear
 * probing with backward-shift deletion, so lookups never wade through the
 * tombstones every resume would otherwise leave. */
#include "suspend.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static uint32_t home(uint32_t cap, const uint8_t *id) {
  uint64_t h;
  memcpy(&h, id, sizeof h);
  return (uint32_t)h & (cap - 1);
}

int nx_susp_init(nx_susp_t *s) {
  s->cap = 64;
  s->count = 0;
  s->entries = calloc(s->cap, sizeof *s->entries);
  nx_list_init(&s->parked);
  s->nparked = 0;
  return s->entries ? NX_RC_OK : NX_RC_NOMEM;
}

void nx_susp_destroy(nx_susp_t *s) {
  free(s->entries);
  s->entries = NULL;
  s->cap = s->count = 0;
}

static void put(nx_susp_entry_t *entries, uint32_t cap, const nx_susp_entry_t *e) {
  uint32_t at = home(cap, e->id);
  while (entries[at].task) at = (at + 1) & (cap - 1);
  entries[at] = *e;
}

static int add(nx_susp_t *s, const uint8_t *id, nx_task_t *task, uint32_t call) {
  nx_susp_entry_t e;
  if (2 * (s->count + 1) > s->cap) { /* keep the load under one half */
    uint32_t cap = s->cap * 2, i;
    nx_susp_entry_t *entries = calloc(cap, sizeof *entries);
    if (entries == NULL) return NX_RC_NOMEM;
    for (i = 0; i < s->cap; i++)
      if (s->entries[i].task) put(entries, cap, &s->entries[i]);
    free(s->entries);
    s->entries = entries;
    s->cap = cap;
  }
  memcpy(e.id, id, sizeof e.id);
  e.task = task;
  e.call = call;
  put(s->entries, s->cap, &e);
  s->count++;
  return NX_RC_OK;
}

nx_susp_entry_t *nx_susp_find(nx_susp_t *s, const uint8_t *id) {
  uint32_t at = home(s->cap, id);
  while (s->entries[at].task) {
    if (memcmp(s->entries[at].id, id, NX_SUSPENSION_ID_BYTES) == 0) return &s->entries[at];
    at = (at + 1) & (s->cap - 1);
  }
  return NULL;
}

void nx_susp_remove(nx_susp_t *s, nx_susp_entry_t *entry) {
  uint32_t hole = (uint32_t)(entry - s->entries), at = hole;
  /* Shift later members of the probe run back into the hole, so every
   * entry stays reachable from its home without tombstones. */
  for (;;) {
    uint32_t h;
    at = (at + 1) & (s->cap - 1);
    if (s->entries[at].task == NULL) break;
    h = home(s->cap, s->entries[at].id);
    if (((at - h) & (s->cap - 1)) >= ((at - hole) & (s->cap - 1))) {
      s->entries[hole] = s->entries[at];
      hole = at;
    }
  }
  memset(&s->entries[hole], 0, sizeof s->entries[hole]);
  s->count--;
}

/* Calls are only ever appended, so `published` is a watermark: a call
 * answered before it was published never needs to be. An id already in the
 * table is refused: random 128-bit ids do not collide, so it can only be an
 * imported execution parked here already (or bytes that repeat an id). */
int nx_susp_publish(nx_susp_t *s, nx_task_t *task) {
  uint32_t n = nx_engine_calls(task->exec);
  for (; task->published < n; task->published++) {
    uint32_t i = task->published;
    if (!nx_engine_call_pending(task->exec, i)) continue;
    if (nx_susp_find(s, nx_engine_call_id(task->exec, i))) return NX_RC_INVALID;
    if (add(s, nx_engine_call_id(task->exec, i), task, i) != 0) return NX_RC_NOMEM;
  }
  return NX_RC_OK;
}

void nx_susp_unpublish(nx_susp_t *s, nx_task_t *task) {
  uint32_t i;
  for (i = 0; i < task->published; i++) {
    nx_susp_entry_t *e = nx_susp_find(s, nx_engine_call_id(task->exec, i));
    if (e && e->task == task) nx_susp_remove(s, e);
  }
}

/* From the back: a task parked after running a segment expires last, so
 * only an imported one (which brings its own deadline) walks. */
void nx_susp_park(nx_susp_t *s, nx_task_t *task, uint64_t deadline_ns) {
  nx_link_t *at = s->parked.prev;
  while (at != &s->parked && NX_LIST_ENTRY(at, nx_task_t, link)->deadline_ns > deadline_ns)
    at = at->prev;
  task->deadline_ns = deadline_ns;
  task->parked = 1;
  nx_list_insert_after(at, &task->link);
  s->nparked++;
}

void nx_susp_unpark(nx_susp_t *s, nx_task_t *task) {
  nx_list_remove(&task->link);
  task->parked = 0;
  s->nparked--;
}

nx_task_t *nx_susp_oldest(const nx_susp_t *s) {
  nx_link_t *l = nx_list_first(&s->parked);
  return l ? NX_LIST_ENTRY(l, nx_task_t, link) : NULL;
}

int nx_susp_parse_id(const char *s, size_t len, uint8_t id[NX_SUSPENSION_ID_BYTES]) {
  return nx_util_hex_decode(s, len, id, NX_SUSPENSION_ID_BYTES) == 0 ? NX_RC_OK : NX_RC_INVALID;
}

/* Suspension table (see suspend.h): open addressing with linear probing and
 * backward-shift deletion, so lookups never wade through tombstones left by
 * the ids that every resume retires. */
#include "suspend.h"

#include <stdlib.h>
#include <string.h>

static uint32_t home(const nx_susp_table_t *t, const uint8_t *id) {
  uint64_t h;
  memcpy(&h, id, sizeof h);
  return (uint32_t)h & (t->cap - 1);
}

int nx_susp_init(nx_susp_table_t *t) {
  t->cap = 64;
  t->count = 0;
  t->slots = calloc(t->cap, sizeof *t->slots);
  return t->slots ? 0 : -1;
}

void nx_susp_destroy(nx_susp_table_t *t) {
  free(t->slots);
  t->slots = NULL;
  t->cap = t->count = 0;
}

static void put(nx_susp_slot_t *slots, uint32_t cap, const nx_susp_slot_t *s) {
  uint64_t h;
  uint32_t at;
  memcpy(&h, s->id, sizeof h);
  at = (uint32_t)h & (cap - 1);
  while (slots[at].exec) at = (at + 1) & (cap - 1);
  slots[at] = *s;
}

int nx_susp_add(nx_susp_table_t *t, const uint8_t *id, nx_exec_t *exec, uint32_t call) {
  nx_susp_slot_t s;
  if (2 * (t->count + 1) > t->cap) { /* keep the load under one half */
    uint32_t cap = t->cap * 2, i;
    nx_susp_slot_t *slots = calloc(cap, sizeof *slots);
    if (slots == NULL) return -1;
    for (i = 0; i < t->cap; i++)
      if (t->slots[i].exec) put(slots, cap, &t->slots[i]);
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
  }
  memcpy(s.id, id, sizeof s.id);
  s.exec = exec;
  s.call = call;
  put(t->slots, t->cap, &s);
  t->count++;
  return 0;
}

nx_susp_slot_t *nx_susp_find(nx_susp_table_t *t, const uint8_t *id) {
  uint32_t at = home(t, id);
  while (t->slots[at].exec) {
    if (memcmp(t->slots[at].id, id, NX_SUSPENSION_ID_BYTES) == 0) return &t->slots[at];
    at = (at + 1) & (t->cap - 1);
  }
  return NULL;
}

void nx_susp_remove(nx_susp_table_t *t, nx_susp_slot_t *slot) {
  uint32_t hole = (uint32_t)(slot - t->slots), at = hole;
  /* Shift later members of the probe run back into the hole, so every
   * entry stays reachable from its home slot without tombstones. */
  for (;;) {
    uint32_t h;
    at = (at + 1) & (t->cap - 1);
    if (t->slots[at].exec == NULL) break;
    h = home(t, t->slots[at].id);
    if (((at - h) & (t->cap - 1)) >= ((at - hole) & (t->cap - 1))) {
      t->slots[hole] = t->slots[at];
      hole = at;
    }
  }
  memset(&t->slots[hole], 0, sizeof t->slots[hole]);
  t->count--;
}

int nx_susp_parse_id(const char *s, size_t len, uint8_t id[NX_SUSPENSION_ID_BYTES]) {
  size_t i;
  if (len != 2 * NX_SUSPENSION_ID_BYTES) return -1;
  for (i = 0; i < len; i++) {
    char c = s[i];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) return -1;
    if (i % 2 == 0) id[i / 2] = (uint8_t)(v << 4);
    else id[i / 2] |= (uint8_t)v;
  }
  return 0;
}

/* The suspension table: which parked execution owns each outstanding
 * suspension id. Ids are 128 random bits, so their first eight bytes are
 * already a uniform hash. Not thread-safe: the runtime holds its lock. */
#ifndef NX_SUSPEND_H
#define NX_SUSPEND_H

#include <stdint.h>

#include "engine.h"

typedef struct {
  uint8_t id[NX_SUSPENSION_ID_BYTES];
  nx_exec_t *exec; /* NULL: free slot */
  uint32_t call;   /* index in exec->calls */
} nx_susp_slot_t;

typedef struct {
  nx_susp_slot_t *slots;
  uint32_t cap; /* power of two */
  uint32_t count;
} nx_susp_table_t;

int nx_susp_init(nx_susp_table_t *t);
void nx_susp_destroy(nx_susp_table_t *t);
/* -1 on allocation failure. */
int nx_susp_add(nx_susp_table_t *t, const uint8_t *id, nx_exec_t *exec, uint32_t call);
/* The slot holding id, or NULL. */
nx_susp_slot_t *nx_susp_find(nx_susp_table_t *t, const uint8_t *id);
void nx_susp_remove(nx_susp_table_t *t, nx_susp_slot_t *slot);

/* Parses 32 hex digits; -1 when s is not exactly that. */
int nx_susp_parse_id(const char *s, size_t len, uint8_t id[NX_SUSPENSION_ID_BYTES]);

#endif

/* Suspended executions: the runtime's record of each execution (a task),
 * the table from suspension ids to the task and call they name, and the
 * list of parked tasks in deadline order. Not thread-safe: the runtime
 * holds its lock around every call. */
#ifndef NX_SUSPEND_H
#define NX_SUSPEND_H

#include <stdint.h>

#include "engine.h"
#include "list.h"

struct nx_job_s;

/* The runtime's record of one execution, besides the engine's own. */
typedef struct nx_task_s {
  nx_exec_t *exec;
  nx_link_t link;           /* parked: by deadline; cancelled: the retire list */
  uint64_t deadline_ns;     /* parked: discarded when not resumed by then */
  uint64_t parked_bytes;    /* parked: sandbox memory, counted apart from the pool */
  uint32_t published;       /* calls [0, published) have been published */
  struct nx_job_s *waiters; /* resumes that arrived while a segment ran */
  uint8_t parked;           /* waiting for the host, its sandbox out of the pool */
  uint8_t counted;          /* counts against config.maxSuspended */
  uint8_t doomed;           /* cancelled while a segment ran: ends with it */
} nx_task_t;

typedef struct {
  uint8_t id[NX_SUSPENSION_ID_BYTES];
  nx_task_t *task; /* NULL: free entry */
  uint32_t call;   /* index among the execution's calls */
} nx_susp_entry_t;

typedef struct {
  nx_susp_entry_t *entries;
  uint32_t cap; /* power of two */
  uint32_t count;
  nx_link_t parked; /* parked tasks, oldest (first to expire) first */
  uint32_t nparked;
} nx_susp_t;

int nx_susp_init(nx_susp_t *s);
void nx_susp_destroy(nx_susp_t *s);

/* Makes the task's unanswered calls findable by id; NX_RC_NOMEM, or
 * NX_RC_INVALID when an id is in the table already. On failure the ids
 * published so far stay: unpublish them. */
int nx_susp_publish(nx_susp_t *s, nx_task_t *task);
/* Removes every id of the task still in the table. */
void nx_susp_unpublish(nx_susp_t *s, nx_task_t *task);
/* The entry holding id, or NULL; nx_susp_remove takes it out. */
nx_susp_entry_t *nx_susp_find(nx_susp_t *s, const uint8_t *id);
void nx_susp_remove(nx_susp_t *s, nx_susp_entry_t *entry);

/* Parks a task until deadline_ns, in deadline order. */
void nx_susp_park(nx_susp_t *s, nx_task_t *task, uint64_t deadline_ns);
void nx_susp_unpark(nx_susp_t *s, nx_task_t *task);
/* The parked task that expires first, or NULL. */
nx_task_t *nx_susp_oldest(const nx_susp_t *s);

/* Parses a suspension id (32 lowercase hex digits); 0 or NX_RC_INVALID. */
int nx_susp_parse_id(const char *s, size_t len, uint8_t id[NX_SUSPENSION_ID_BYTES]);

#endif

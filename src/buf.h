/* Growable byte buffers whose bytes are charged to a shared budget: the
 * encoded result of a segment may hold config.maxResultBytes in all, and
 * the check happens on every write, so a value that would expand past the
 * budget stops there, in time proportional to the budget. */
#ifndef NX_BUF_H
#define NX_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "mem.h"

typedef struct {
  uint64_t used; /* bytes held by every buffer charged to this budget */
  uint64_t limit;
} nx_budget_t;

typedef struct {
  char *data;
  size_t size, cap;
  nx_mem_t *mem;       /* owner of data */
  nx_budget_t *budget; /* NULL: not charged */
  int refused;         /* why a write was refused (sticky), or 0 */
} nx_buf_t;

enum { NX_BUF_OVER = 1, NX_BUF_NOMEM = 2 };

/* Appends n bytes: -1 (nothing written) when the budget or memory would
 * not allow it. Once refused, every later write is refused until the
 * buffer is truncated, so a writer (mpack.h) checks `refused` once at the
 * end rather than after every write. */
int nx_buf_write(nx_buf_t *b, const void *p, size_t n);

void nx_buf_init(nx_buf_t *b, nx_mem_t *mem, nx_budget_t *budget);
/* Drops the bytes past `size` and gives them back to the budget. */
void nx_buf_truncate(nx_buf_t *b, size_t size);
/* Frees the bytes (refunding the budget); the buffer stays usable. */
void nx_buf_free(nx_buf_t *b);
/* Hands the bytes to the caller (owned by b->mem, no longer charged). */
char *nx_buf_take(nx_buf_t *b, size_t *len);

#endif

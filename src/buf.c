/* Budgeted buffers (see buf.h). */
#include "buf.h"

#include <string.h>

void nx_buf_init(nx_buf_t *b, nx_mem_t *mem, nx_budget_t *budget) {
  b->data = NULL;
  b->size = b->cap = 0;
  b->mem = mem;
  b->budget = budget;
  b->refused = 0;
}

int nx_buf_write(nx_buf_t *b, const void *p, size_t n) {
  if (b->refused) return -1;
  if (n == 0) return 0; /* p may be NULL then */
  if (b->budget && (b->budget->used > b->budget->limit || n > b->budget->limit - b->budget->used)) {
    b->refused = NX_BUF_OVER;
    return -1;
  }
  if (n > b->cap - b->size) {
    size_t cap = b->cap ? b->cap : 256;
    char *grown;
    while (cap - b->size < n) {
      if (cap > SIZE_MAX / 4) {
        b->refused = NX_BUF_NOMEM;
        return -1;
      }
      cap *= 2;
    }
    grown = nx_mem_realloc(b->mem, b->data, cap);
    if (grown == NULL) {
      b->refused = NX_BUF_NOMEM;
      return -1;
    }
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->size, p, n);
  b->size += n;
  if (b->budget) b->budget->used += n;
  return 0;
}

void nx_buf_truncate(nx_buf_t *b, size_t size) {
  b->refused = 0;
  if (size >= b->size) return;
  if (b->budget) b->budget->used -= b->size - size;
  b->size = size;
}

void nx_buf_free(nx_buf_t *b) {
  nx_buf_truncate(b, 0);
  nx_mem_free(b->mem, b->data);
  b->data = NULL;
  b->cap = 0;
  b->refused = 0;
}

char *nx_buf_take(nx_buf_t *b, size_t *len) {
  char *d = b->data;
  *len = b->size;
  if (b->budget) b->budget->used -= b->size;
  b->data = NULL;
  b->size = b->cap = 0;
  return d;
}

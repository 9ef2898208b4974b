/* Execution-owned allocations (see mem.h): each block carries a link in a
 * doubly-linked list rooted in its owner, so freeing one is O(1) and
 * releasing the owner frees whatever a non-local exit left behind. */
#include "mem.h"

#include <stdlib.h>
#include <string.h>

struct nx_mem_block_s {
  nx_mem_block_t *prev, *next;
  size_t size;
  size_t pad_; /* keeps the payload 16-byte aligned, like malloc's */
};

#define HDR sizeof(nx_mem_block_t)
#define BLOCK(p) ((nx_mem_block_t *)((char *)(p)-HDR))

void nx_mem_init(nx_mem_t *m) {
  m->head = NULL;
  m->bytes = 0;
}

static void link_block(nx_mem_t *m, nx_mem_block_t *b) {
  b->prev = NULL;
  b->next = m->head;
  if (m->head) m->head->prev = b;
  m->head = b;
}

static void unlink_block(nx_mem_t *m, nx_mem_block_t *b) {
  if (b->prev)
    b->prev->next = b->next;
  else
    m->head = b->next;
  if (b->next) b->next->prev = b->prev;
}

void *nx_mem_alloc(nx_mem_t *m, size_t n) {
  nx_mem_block_t *b;
  if (n > SIZE_MAX / 2) return NULL;
  b = malloc(HDR + n);
  if (b == NULL) return NULL;
  b->size = n;
  link_block(m, b);
  m->bytes += n;
  return (char *)b + HDR;
}

void *nx_mem_calloc(nx_mem_t *m, size_t count, size_t size) {
  void *p;
  if (size && count > SIZE_MAX / 4 / size) return NULL;
  p = nx_mem_alloc(m, count * size);
  if (p) memset(p, 0, count * size);
  return p;
}

void *nx_mem_realloc(nx_mem_t *m, void *p, size_t n) {
  nx_mem_block_t *b, *grown;
  if (p == NULL) return nx_mem_alloc(m, n);
  if (n > SIZE_MAX / 2) return NULL;
  b = BLOCK(p);
  unlink_block(m, b);
  grown = realloc(b, HDR + n);
  if (grown == NULL) {
    link_block(m, b);
    return NULL;
  }
  m->bytes = m->bytes - grown->size + n;
  grown->size = n;
  link_block(m, grown);
  return (char *)grown + HDR;
}

void nx_mem_free(nx_mem_t *m, void *p) {
  nx_mem_block_t *b;
  if (p == NULL) return;
  b = BLOCK(p);
  unlink_block(m, b);
  m->bytes -= b->size;
  free(b);
}

char *nx_mem_strndup(nx_mem_t *m, const char *s, size_t n) {
  char *d = nx_mem_alloc(m, n + 1);
  if (d) {
    if (n) memcpy(d, s, n);
    d[n] = 0;
  }
  return d;
}

void nx_mem_release(nx_mem_t *m) {
  nx_mem_block_t *b = m->head;
  while (b) {
    nx_mem_block_t *next = b->next;
    free(b);
    b = next;
  }
  m->head = NULL;
  m->bytes = 0;
}

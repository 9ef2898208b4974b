/* Host memory an execution owns. Every host allocation made on behalf of
 * one execution goes through an nx_mem_t, so whatever way a segment ends
 * (a return, a guest trap or a watchdog longjmp that skips every free on the
 * way) one nx_mem_release() gives all of it back. */
#ifndef NX_MEM_H
#define NX_MEM_H

#include <stddef.h>
#include <stdint.h>

typedef struct nx_mem_block_s nx_mem_block_t;

typedef struct {
  nx_mem_block_t *head; /* every live block, most recent first */
  size_t bytes;         /* payload bytes held */
} nx_mem_t;

void nx_mem_init(nx_mem_t *m);
/* NULL when out of memory (or n is absurd). */
void *nx_mem_alloc(nx_mem_t *m, size_t n);
void *nx_mem_calloc(nx_mem_t *m, size_t count, size_t size);
/* p NULL behaves as nx_mem_alloc; on failure p is left as it was. */
void *nx_mem_realloc(nx_mem_t *m, void *p, size_t n);
void nx_mem_free(nx_mem_t *m, void *p);
/* A NUL-terminated copy of n bytes. */
char *nx_mem_strndup(nx_mem_t *m, const char *s, size_t n);
/* Frees every block still held; m is empty and usable afterwards. */
void nx_mem_release(nx_mem_t *m);

#endif

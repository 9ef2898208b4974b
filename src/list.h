/* Intrusive doubly-linked lists: a link lives inside the element, so
 * unlinking is O(1) and needs no allocation. The head is a link of its
 * own whose next is the first element and prev the last (libuv's QUEUE
 * and the kernel's list_head work the same way). */
#ifndef NX_LIST_H
#define NX_LIST_H

#include <stddef.h>

typedef struct nx_link_s {
  struct nx_link_s *next, *prev;
} nx_link_t;

#define NX_LIST_ENTRY(link, type, field) ((type *)((char *)(link)-offsetof(type, field)))

static inline void nx_list_init(nx_link_t *head) { head->next = head->prev = head; }
static inline int nx_list_empty(const nx_link_t *head) { return head->next == head; }
static inline nx_link_t *nx_list_first(const nx_link_t *head) {
  return nx_list_empty(head) ? NULL : head->next;
}
static inline nx_link_t *nx_list_last(const nx_link_t *head) {
  return nx_list_empty(head) ? NULL : head->prev;
}

/* Inserts l after `at` (at == head: at the front). */
static inline void nx_list_insert_after(nx_link_t *at, nx_link_t *l) {
  l->prev = at;
  l->next = at->next;
  at->next->prev = l;
  at->next = l;
}
static inline void nx_list_push_front(nx_link_t *head, nx_link_t *l) {
  nx_list_insert_after(head, l);
}
static inline void nx_list_push_back(nx_link_t *head, nx_link_t *l) {
  nx_list_insert_after(head->prev, l);
}

/* Unlinks l; l links to itself afterwards, so unlinking twice is harmless. */
static inline void nx_list_remove(nx_link_t *l) {
  l->prev->next = l->next;
  l->next->prev = l->prev;
  l->next = l->prev = l;
}

#endif

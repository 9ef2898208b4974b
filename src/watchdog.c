/* The watchdog (see watchdog.h). A segment still running NX_GRACE_NS past
 * its deadline gets its sandbox's memory size set to zero: the next bounds
 * check in the generated code traps and unwinds the worker to its guard
 * (the engine reports TIMEOUT, the reset restores the size). The store
 * races with the generated code's plain reads of the size, on purpose:
 * any later read sees 0 or the old size, and the old size only delays the
 * stop. The guard variant checks no size on loads and stores, so its
 * committed pages are made inaccessible as well: the next access faults,
 * and the fault handler unwinds the worker the same way (the reset gives
 * the access back). Done again every period while the segment runs, which
 * also covers pages a grow committed meanwhile. Under the slot's lock, so it
 * never touches a sandbox after its segment ended; the host reads guest
 * memory only under a guard while it may (engine.c). */
#include "watchdog.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "util.h"

#define NX_GRACE_NS 250000000ull
#define NX_PERIOD_NS 50000000ull

typedef struct {
  pthread_mutex_t lock;
  nx_sandbox_t *running;
} slot_t;

struct nx_watchdog_s {
  pthread_t thread;
  pthread_mutex_t lock;
  pthread_cond_t cond; /* on CLOCK_MONOTONIC */
  int stop;
  uint32_t nslots;
  slot_t slots[];
};

static void check(nx_watchdog_t *wd, uint64_t now) {
  uint32_t i;
  for (i = 0; i < wd->nslots; i++) {
    slot_t *s = &wd->slots[i];
    pthread_mutex_lock(&s->lock);
    if (s->running) {
      uint64_t deadline = atomic_load_explicit(&s->running->deadline_ns, memory_order_relaxed);
      if (deadline && now > deadline + NX_GRACE_NS) {
        wasm_rt_memory_t *mem = &s->running->inst.w2c_memory;
        atomic_store_explicit(&s->running->killed, 1, memory_order_relaxed);
        __atomic_store_n(&mem->size, 0, __ATOMIC_RELAXED);
        /* Fails only for lack of memory to split the mapping: then the
         * segment runs on and this is tried again next period. */
        if (nx_sandbox_guard_pages(s->running))
          (void)mprotect(mem->data, (size_t)__atomic_load_n(&mem->pages, __ATOMIC_RELAXED) * 65536u,
                         PROT_NONE);
      }
    }
    pthread_mutex_unlock(&s->lock);
  }
}

static void *watchdog_main(void *arg) {
  nx_watchdog_t *wd = arg;
  pthread_mutex_lock(&wd->lock);
  while (!wd->stop) {
    uint64_t at = nx_util_now_ns() + NX_PERIOD_NS;
    struct timespec ts;
    ts.tv_sec = (time_t)(at / 1000000000u);
    ts.tv_nsec = (long)(at % 1000000000u);
    pthread_cond_timedwait(&wd->cond, &wd->lock, &ts);
    if (wd->stop) break;
    pthread_mutex_unlock(&wd->lock);
    check(wd, nx_util_now_ns());
    pthread_mutex_lock(&wd->lock);
  }
  pthread_mutex_unlock(&wd->lock);
  return NULL;
}

nx_watchdog_t *nx_watchdog_start(uint32_t slots) {
  nx_watchdog_t *wd = calloc(1, sizeof *wd + slots * sizeof(slot_t));
  pthread_condattr_t attr;
  uint32_t i;
  if (wd == NULL) return NULL;
  wd->nslots = slots;
  for (i = 0; i < slots; i++) pthread_mutex_init(&wd->slots[i].lock, NULL);
  pthread_mutex_init(&wd->lock, NULL);
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&wd->cond, &attr);
  pthread_condattr_destroy(&attr);
  if (pthread_create(&wd->thread, NULL, watchdog_main, wd) != 0) {
    wd->stop = 1; /* never started: nothing to join */
    nx_watchdog_stop(wd);
    return NULL;
  }
  return wd;
}

void nx_watchdog_watch(nx_watchdog_t *wd, uint32_t slot, nx_sandbox_t *sb) {
  if (wd == NULL) return;
  pthread_mutex_lock(&wd->slots[slot].lock);
  wd->slots[slot].running = sb;
  pthread_mutex_unlock(&wd->slots[slot].lock);
}

void nx_watchdog_stop(nx_watchdog_t *wd) {
  uint32_t i;
  if (wd == NULL) return;
  pthread_mutex_lock(&wd->lock);
  if (!wd->stop) {
    wd->stop = 1;
    pthread_cond_signal(&wd->cond);
    pthread_mutex_unlock(&wd->lock);
    pthread_join(wd->thread, NULL);
  } else {
    pthread_mutex_unlock(&wd->lock);
  }
  for (i = 0; i < wd->nslots; i++) pthread_mutex_destroy(&wd->slots[i].lock);
  pthread_mutex_destroy(&wd->lock);
  pthread_cond_destroy(&wd->cond);
  free(wd);
}

/* The watchdog: a thread that stops segments stuck inside the engine past
 * their deadline. QuickJS polls its interrupt handler only from the
 * interpreter, so a loop inside the engine's C code (crafted bytecode can
 * make JS_ReadObject spin) never sees the deadline. */
#ifndef NX_WATCHDOG_H
#define NX_WATCHDOG_H

#include <stdint.h>

#include "sandbox.h"

typedef struct nx_watchdog_s nx_watchdog_t;

/* Watches `slots` workers; NULL when the thread cannot start (then only
 * engine-internal loops go unstopped). */
nx_watchdog_t *nx_watchdog_start(uint32_t slots);
/* Worker `slot` now runs a segment in sb (NULL: none). */
void nx_watchdog_watch(nx_watchdog_t *wd, uint32_t slot, nx_sandbox_t *sb);
/* Joins the thread and frees everything. NULL is fine. */
void nx_watchdog_stop(nx_watchdog_t *wd);

#endif

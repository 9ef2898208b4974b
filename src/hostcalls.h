/* The host functions behind the handler globals ($state, $emit, $view,
 * $log, $ext) and the bootstrap's kind(): each checks the execution's
 * capabilities and either records something or throws inside the guest.
 * The wasm imports (imports.c) call in here. */
#ifndef NX_HOSTCALLS_H
#define NX_HOSTCALLS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "engine.h"
#include "errors.h"
#include "sandbox.h"

typedef enum {
  NX_HOST_STATE_GET,
  NX_HOST_STATE_SET,
  NX_HOST_STATE_DELETE,
  NX_HOST_STATE_HAS,
  NX_HOST_STATE_KEYS,
  NX_HOST_EMIT,
  NX_HOST_VIEW,
  NX_HOST_LOG,
  NX_HOST_EXT_CALL,
  NX_HOST_KIND,
  NX_HOST_LAZY_GET,
  NX_HOST_LAZY_HAS,
  NX_HOST_LAZY_FILL,
  NX_HOST__COUNT
} nx_host_fn_t;

/* By nx_host_fn_t, NULL-terminated: the names the bootstrap receives. */
extern const char *const nx_host_names[];

/* env.host_call: returns a boxed result, or 0 with an exception pending. */
uint32_t nx_host_call(nx_sandbox_t *sb, uint32_t name, uint32_t name_len, uint32_t argc,
                      uint32_t argv);

/* WASI stdout/stderr of the guest, appended to the execution's logs. */
void nx_host_console(nx_sandbox_t *sb, int is_stderr, const char *bytes, size_t len);

/* Host-call state of a new execution, and of each new segment: the counts
 * start again and the calls still pending are charged to the result budget
 * (the result lists them again). */
int nx_host_init(nx_exec_t *ex);
void nx_host_begin_segment(nx_exec_t *ex);

/* Marks a pending call answered: 1 when it was pending, 0 otherwise. */
int nx_host_answer(nx_exec_t *ex, uint32_t call);
/* A parked execution's calls, for portable.h; every field is checked on
 * the way back (the arguments are validated MessagePack arrays). 0, or
 * NX_RC_INVALID / NX_RC_NOMEM. */
struct nx_wire_rd_s;
void nx_host_save(const nx_exec_t *ex, nx_buf_t *out);
int nx_host_restore(nx_exec_t *ex, struct nx_wire_rd_s *in);

#endif

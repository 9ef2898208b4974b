/* The functions the bootstrap calls into the host for: $state access,
 * $emit, $view, $log. Each checks the execution's capabilities and either
 * returns a value or throws inside the guest. */
#ifndef NX_HOSTCALLS_H
#define NX_HOSTCALLS_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "sandbox.h"

/* NULL-terminated: the names the bootstrap receives in its `host` object. */
extern const char *const nx_host_names[];

/* env.host_call: returns a boxed result, or 0 after throwing in the guest. */
uint32_t nx_host_call(nx_sandbox_t *sb, uint32_t name, uint32_t name_len,
                      uint32_t argc, uint32_t argv);

/* WASI stdout/stderr of the guest, appended to the execution's logs. */
void nx_host_console(nx_sandbox_t *sb, int is_stderr, const char *bytes, size_t len);

/* Throws an Error carrying `code` (its .code property) inside the guest and
 * remembers it so an uncaught one ends the execution with that code. */
void nx_host_throw(nx_sandbox_t *sb, nx_error_code_t code, int type_error,
                   const char *message);

/* Ends the execution with `code`: records it, throws an uncatchable error
 * and makes every later interrupt check stop the guest. */
void nx_host_fatal(nx_sandbox_t *sb, nx_error_code_t code, const char *message);

/* nx_host_fatal with RESOURCE_LIMIT for config.maxResultBytes, naming the
 * path being encoded when the budget ran out. */
void nx_host_result_limit(nx_sandbox_t *sb, const char *path);

/* Appends a { level, message } entry to the execution's logs (charged to
 * the result budget). */
void nx_host_log(nx_sandbox_t *sb, const char *level, const char *msg, size_t len);

#endif

/* Failures: how a segment fails and what the result says about it. Errors
 * the host throws into the guest (with a .code), limits that end the
 * execution whatever the handler does next, and the description of a
 * thrown value: code, message, handler-relative stack and location. */
#ifndef NX_FAILURE_H
#define NX_FAILURE_H

#include <stdint.h>

#include "errors.h"
#include "guest.h"

typedef struct nx_sandbox_s nx_sandbox_t;
typedef struct nx_exec_s nx_exec_t;

#define NX_FAILURE_THROWN 8

typedef struct {
  /* This segment's failure; strings in the segment's memory. */
  nx_error_code_t code; /* NX_OK while the segment has not failed */
  char *message;
  char *stack;           /* handler frames only, lines relative to its source */
  uint32_t line, column; /* 1-based; 0 when unknown */
  /* A limit hit: the execution ends with it (message in execution memory). */
  nx_error_code_t fatal;
  char *fatal_message;
  /* Errors the host threw with a code, recognised when they come back. */
  nx_jsval_t thrown[NX_FAILURE_THROWN];
  nx_error_code_t thrown_codes[NX_FAILURE_THROWN];
  uint32_t nthrown;
} nx_failure_t;

/* Sets the segment's failure; nx_failure_clear forgets it (a new segment,
 * or a cached bytecode that turned out unreadable and is compiled afresh). */
void nx_failure_set(nx_exec_t *ex, nx_error_code_t code, const char *message);
void nx_failure_clear(nx_exec_t *ex);
void nx_failure_timeout(nx_exec_t *ex);
/* RESOURCE_LIMIT for config.maxResultBytes, naming the path being encoded. */
void nx_failure_result_limit(nx_exec_t *ex, const char *path);

/* The segment's failure from a thrown or rejected value: the handler is
 * over, so host functions close before any getter of it runs. */
void nx_failure_from_value(nx_exec_t *ex, nx_jsval_t thrown, nx_error_code_t fallback);
void nx_failure_from_exception(nx_exec_t *ex, nx_error_code_t fallback);

/* Throws an Error (TypeError with type_error) carrying `code` as .code
 * inside the guest; EXECUTION_ERROR carries none. */
void nx_failure_throw(nx_sandbox_t *sb, nx_error_code_t code, int type_error, const char *message);
/* Ends the execution with `code`: records it, throws an uncatchable error
 * and makes every later interrupt check stop the guest. */
void nx_failure_fatal(nx_sandbox_t *sb, nx_error_code_t code, const char *message);
/* nx_failure_fatal for config.maxResultBytes, naming the path. */
void nx_failure_fatal_result_limit(nx_sandbox_t *sb, const char *path);

/* At the end of a segment: a limit hit is the outcome whatever the handler
 * did after it, and a location past the source's end is clamped to it. */
void nx_failure_finish(nx_exec_t *ex);

#endif

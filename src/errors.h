/* Error codes, result statuses and handler languages of the contract
 * (src/contract.js), and the return convention every C module follows: 0
 * for success, a negative nx_rc_t for failure. */
#ifndef NX_ERRORS_H
#define NX_ERRORS_H

#include "contract.h"

typedef enum {
  NX_OK = 0,
#define NX_ERROR_ENUM(name) NX_E_##name,
  NX_ERROR_CODES(NX_ERROR_ENUM)
#undef NX_ERROR_ENUM
      NX_E__COUNT
} nx_error_code_t;

/* How one result (a start or a resume) of an execution ended. */
typedef enum {
#define NX_STATUS_ENUM(name, text) NX_STATUS_##name,
  NX_STATUSES(NX_STATUS_ENUM)
#undef NX_STATUS_ENUM
      NX_STATUS__COUNT
} nx_status_t;

/* The language a source handler is written in. */
typedef enum {
#define NX_LANG_ENUM(name, text) NX_LANG_##name,
  NX_LANGUAGES(NX_LANG_ENUM)
#undef NX_LANG_ENUM
      NX_LANG__COUNT
} nx_language_t;

/* Failures of C functions that return an int. */
typedef enum {
  NX_RC_OK = 0,
  NX_RC_NOMEM = -1,    /* host memory ran out */
  NX_RC_INVALID = -2,  /* the input is not acceptable */
  NX_RC_NOTFOUND = -3, /* nothing by that name or id */
  NX_RC_STOPPING = -4, /* the runtime is shutting down */
  NX_RC_GUEST = -5,    /* the guest failed; the reason is recorded where the caller looks */
  NX_RC_SYSTEM = -6,   /* a system call failed; errno says why */
} nx_rc_t;

/* "TIMEOUT", ...; "OK" for NX_OK, "INTERNAL_ERROR" for anything unknown. */
const char *nx_error_name(nx_error_code_t code);
/* "success", "error", "suspended". */
const char *nx_status_name(nx_status_t status);
/* "js", "ts"; "unknown" for anything else. */
const char *nx_language_name(nx_language_t language);

#endif

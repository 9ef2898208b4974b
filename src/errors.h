/* Error codes of the result contract (design brief), shared by every layer
 * that can end an execution. */
#ifndef NX_ERRORS_H
#define NX_ERRORS_H

typedef enum {
  NX_OK = 0,
  NX_E_TIMEOUT,
  NX_E_MEMORY_LIMIT,
  NX_E_PERMISSION_DENIED,
  NX_E_EXECUTION_ERROR,
  NX_E_COMPILATION_ERROR,
  NX_E_INVALID_HANDLER,
  NX_E_INTERNAL_ERROR,
  NX_E_RESOURCE_LIMIT,
  NX_E__COUNT
} nx_error_code_t;

/* How one result (a start or a resume) of an execution ended. */
typedef enum {
  NX_STATUS_SUCCESS,
  NX_STATUS_ERROR,
  NX_STATUS_SUSPENDED,
  NX_STATUS__COUNT
} nx_status_t;

const char *nx_error_name(nx_error_code_t code);

#endif

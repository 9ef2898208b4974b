/* Names of the error codes as they appear in results and metrics. */
#include "errors.h"

static const char *const names[NX_E__COUNT] = {
    [NX_OK] = "OK",
    [NX_E_TIMEOUT] = "TIMEOUT",
    [NX_E_MEMORY_LIMIT] = "MEMORY_LIMIT",
    [NX_E_PERMISSION_DENIED] = "PERMISSION_DENIED",
    [NX_E_EXECUTION_ERROR] = "EXECUTION_ERROR",
    [NX_E_COMPILATION_ERROR] = "COMPILATION_ERROR",
    [NX_E_INVALID_HANDLER] = "INVALID_HANDLER",
    [NX_E_INTERNAL_ERROR] = "INTERNAL_ERROR",
    [NX_E_RESOURCE_LIMIT] = "RESOURCE_LIMIT",
};

const char *nx_error_name(nx_error_code_t code) {
  return code >= 0 && code < NX_E__COUNT ? names[code] : "INTERNAL_ERROR";
}

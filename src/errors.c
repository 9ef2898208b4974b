/* Names of the error codes and statuses as results and metrics show them. */
#include "errors.h"

static const char *const error_names[NX_E__COUNT] = {[NX_OK] = "OK",
#define NX_ERROR_NAME(name) [NX_E_##name] = #name,
                                                     NX_ERROR_CODES(NX_ERROR_NAME)
#undef NX_ERROR_NAME
};

static const char *const status_names[NX_STATUS__COUNT] = {
#define NX_STATUS_NAME(name, text) [NX_STATUS_##name] = text,
    NX_STATUSES(NX_STATUS_NAME)
#undef NX_STATUS_NAME
};

const char *nx_error_name(nx_error_code_t code) {
  return code >= 0 && code < NX_E__COUNT ? error_names[code] : "INTERNAL_ERROR";
}

const char *nx_status_name(nx_status_t status) {
  return status >= 0 && status < NX_STATUS__COUNT ? status_names[status] : "error";
}

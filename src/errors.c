/* Names of the error codes and statuses as results and metrics show them,
 * and of the languages as the compile cache's keys hold them. */
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

static const char *const language_names[NX_LANG__COUNT] = {
#define NX_LANG_NAME(name, text) [NX_LANG_##name] = text,
    NX_LANGUAGES(NX_LANG_NAME)
#undef NX_LANG_NAME
};

const char *nx_error_name(nx_error_code_t code) {
  return code >= 0 && code < NX_E__COUNT ? error_names[code] : "INTERNAL_ERROR";
}

const char *nx_status_name(nx_status_t status) {
  return status >= 0 && status < NX_STATUS__COUNT ? status_names[status] : "error";
}

const char *nx_language_name(nx_language_t language) {
  return language >= 0 && language < NX_LANG__COUNT ? language_names[language] : "unknown";
}

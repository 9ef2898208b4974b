/* Reading the native Runtime's arguments: the config object against the
 * contract's table, byte buffers and strings copied out of JavaScript, and
 * resume()'s answers, whose payloads are untrusted MessagePack. Each
 * function throws the JavaScript error it reports. */
#ifndef NX_ARGS_H
#define NX_ARGS_H

#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "runtime.h"

/* Throws the pending N-API error (or `fallback`) unless an exception is
 * pending already. */
void nx_args_throw_last(napi_env env, const char *fallback);
/* Fills cfg from a config object: 0, or -1 with a TypeError/RangeError
 * naming the field thrown. */
int nx_args_config(napi_env env, napi_value obj, nx_config_t *cfg);
/* Malloc'd copies: 0, -1 not that type, -2 out of memory (nothing thrown). */
int nx_args_bytes(napi_env env, napi_value v, uint8_t **out, size_t *len);
int nx_args_string(napi_env env, napi_value v, char **out, size_t *len);
/* execute()'s language (an index into the contract's languages) and, for
 * TypeScript, `ts`: the stripped source (a string) or why it could not be
 * stripped ({ message, line, column }). 0, or -1 with a TypeError/RangeError
 * thrown, -2 out of memory (nothing thrown). */
int nx_args_lang(napi_env env, napi_value language, napi_value ts, nx_lang_t *out);
/* resume()'s ids, flags and payloads into job->answers (job->nanswers of
 * them): 0, 1 an id that names nothing, -1 thrown, -2 out of memory. */
int nx_args_answers(napi_env env, napi_value *argv, nx_job_t *job,
                    uint8_t (*ids)[NX_SUSPENSION_ID_BYTES]);

#endif

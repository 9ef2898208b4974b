/* Arguments of the native Runtime (see args.h). */
#include "args.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpack.h"
#include "suspend.h"

#define NX_CALL(call)                 \
  do {                                \
    if ((call) != napi_ok) goto fail; \
  } while (0)

void nx_args_throw_last(napi_env env, const char *fallback) {
  const napi_extended_error_info *info = NULL;
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) return;
  if (napi_get_last_error_info(env, &info) != napi_ok) info = NULL;
  napi_throw_error(env, NULL, info && info->error_message ? info->error_message : fallback);
}

/* config[name] as an integer in [min, max]: 1 read, 0 absent, -1 thrown. */
static int config_integer(napi_env env, napi_value obj, const char *name, uint64_t min,
                          uint64_t max, uint64_t *out) {
  napi_value v;
  napi_valuetype t;
  bool has = false;
  double d;
  char msg[200];
  NX_CALL(napi_has_named_property(env, obj, name, &has));
  if (!has) return 0;
  NX_CALL(napi_get_named_property(env, obj, name, &v));
  NX_CALL(napi_typeof(env, v, &t));
  if (t == napi_undefined) return 0;
  if (t != napi_number || napi_get_value_double(env, v, &d) != napi_ok) {
    snprintf(msg, sizeof msg, "config.%s must be a number", name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  if (!(d >= (double)min && d <= (double)max) || d != (double)(uint64_t)d) {
    snprintf(msg, sizeof msg, "config.%s must be an integer in [%llu, %llu]", name,
             (unsigned long long)min, (unsigned long long)max);
    napi_throw_range_error(env, NULL, msg);
    return -1;
  }
  *out = (uint64_t)d;
  return 1;
fail:
  nx_args_throw_last(env, "could not read the config");
  return -1;
}

/* config[name] as the index of one of `count` names: 1 read, 0 absent, -1
 * thrown (TypeError for a non-string, RangeError naming the values). */
static int config_choice(napi_env env, napi_value obj, const char *name, const char *const *names,
                         uint32_t count, uint32_t *out) {
  napi_value v;
  napi_valuetype t;
  bool has = false;
  char value[32], msg[200];
  size_t len = 0, at;
  uint32_t i;
  NX_CALL(napi_has_named_property(env, obj, name, &has));
  if (!has) return 0;
  NX_CALL(napi_get_named_property(env, obj, name, &v));
  NX_CALL(napi_typeof(env, v, &t));
  if (t == napi_undefined) return 0;
  if (t != napi_string) {
    snprintf(msg, sizeof msg, "config.%s must be a string", name);
    napi_throw_type_error(env, NULL, msg);
    return -1;
  }
  NX_CALL(napi_get_value_string_utf8(env, v, value, sizeof value, &len));
  for (i = 0; i < count; i++)
    if (len + 1 < sizeof value && strcmp(value, names[i]) == 0) {
      *out = i;
      return 1;
    }
  at = (size_t)snprintf(msg, sizeof msg, "config.%s must be ", name);
  for (i = 0; i < count && at < sizeof msg; i++)
    at += (size_t)snprintf(msg + at, sizeof msg - at, "%s'%s'",
                           i == 0           ? ""
                           : i + 1 == count ? " or "
                                            : ", ",
                           names[i]);
  napi_throw_range_error(env, NULL, msg);
  return -1;
fail:
  nx_args_throw_last(env, "could not read the config");
  return -1;
}

/* The contract's integer and string-choice options (contract.h), then
 * cacheDir. */
int nx_args_config(napi_env env, napi_value obj, nx_config_t *cfg) {
  napi_value dir;
  napi_valuetype t;
  size_t len = 0;
  bool has = false;
  int max_given;
  nx_config_defaults(cfg);
#define NX_READ_INTEGER(js, member, min, max, def) \
  if (config_integer(env, obj, js, min, max, &cfg->member) < 0) return -1;
  NX_CONFIG_INTEGERS(NX_READ_INTEGER)
#undef NX_READ_INTEGER
#define NX_READ_CHOICE(js, member, names, count, def)                            \
  {                                                                              \
    static const char *const values[] = names;                                   \
    if (config_choice(env, obj, js, values, count, &cfg->member) < 0) return -1; \
  }
  NX_CONFIG_CHOICES(NX_READ_CHOICE)
#undef NX_READ_CHOICE
  NX_CALL(napi_has_named_property(env, obj, "maxInstances", &has));
  max_given = has;
  if (!max_given) cfg->max_instances = cfg->workers * 2;
  NX_CALL(napi_has_named_property(env, obj, "cacheDir", &has));
  if (has) {
    NX_CALL(napi_get_named_property(env, obj, "cacheDir", &dir));
    NX_CALL(napi_typeof(env, dir, &t));
    if (t == napi_string && (napi_get_value_string_utf8(env, dir, cfg->cache_dir,
                                                        sizeof cfg->cache_dir, &len) != napi_ok ||
                             len + 1 >= sizeof cfg->cache_dir)) {
      napi_throw_range_error(env, NULL, "config.cacheDir is too long");
      return -1;
    }
  }
  if (cfg->min_instances > cfg->max_instances) {
    napi_throw_range_error(env, NULL, "config.minInstances must not exceed config.maxInstances");
    return -1;
  }
  return 0;
fail:
  nx_args_throw_last(env, "could not read the config");
  return -1;
}

/* Copies the bytes of a Buffer or Uint8Array: 0, -1 not one, -2 no memory. */
int nx_args_bytes(napi_env env, napi_value v, uint8_t **out, size_t *len) {
  bool is_buf = false, is_ta = false;
  void *data = NULL;
  *out = NULL;
  *len = 0;
  if (napi_is_buffer(env, v, &is_buf) != napi_ok) return -1;
  if (is_buf) {
    if (napi_get_buffer_info(env, v, &data, len) != napi_ok) return -1;
  } else {
    napi_typedarray_type type;
    size_t offset;
    napi_value ab;
    if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
        napi_get_typedarray_info(env, v, &type, len, &data, &ab, &offset) != napi_ok ||
        type != napi_uint8_array)
      return -1;
  }
  *out = malloc(*len ? *len : 1);
  if (*out == NULL) return -2;
  if (*len) memcpy(*out, data, *len);
  return 0;
}

/* A JS string as a malloc'd UTF-8 copy: 0, -1 not a string, -2 no memory. */
int nx_args_string(napi_env env, napi_value v, char **out, size_t *len) {
  size_t got = 0;
  *out = NULL;
  if (napi_get_value_string_utf8(env, v, NULL, 0, len) != napi_ok) return -1;
  *out = malloc(*len + 1);
  if (*out == NULL) return -2;
  if (napi_get_value_string_utf8(env, v, *out, *len + 1, &got) != napi_ok) return -1;
  return 0;
}

/* obj[name] as a uint32; absent or undefined: 0. */
static int lang_u32(napi_env env, napi_value obj, const char *name, uint32_t *out) {
  napi_value v;
  napi_valuetype t;
  *out = 0;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok || napi_typeof(env, v, &t) != napi_ok)
    return -1;
  if (t == napi_undefined) return 0;
  return t == napi_number && napi_get_value_uint32(env, v, out) == napi_ok ? 0 : -1;
}

int nx_args_lang(napi_env env, napi_value language, napi_value ts, nx_lang_t *out) {
  napi_valuetype t = napi_undefined;
  napi_value msg;
  double id = 0;
  size_t len = 0;
  int rc;

  memset(out, 0, sizeof *out);
  if (language != NULL &&
      (napi_typeof(env, language, &t) != napi_ok ||
       (t != napi_undefined && napi_get_value_double(env, language, &id) != napi_ok))) {
    napi_throw_type_error(env, NULL, "execute: language must be a number");
    return -1;
  }
  if (!(id >= 0 && id < NX_LANG__COUNT) || id != (double)(int)id) {
    napi_throw_range_error(env, NULL,
                           "execute: language must be an index into the contract's languages");
    return -1;
  }
  out->id = (nx_language_t)id;
  t = napi_undefined;
  if (ts != NULL && napi_typeof(env, ts, &t) != napi_ok) t = napi_undefined;
  if (out->id == NX_LANG_JS) {
    if (t == napi_undefined) return 0;
    napi_throw_type_error(env, NULL, "execute: JavaScript takes no stripped source");
    return -1;
  }
  if (t == napi_string) {
    rc = nx_args_string(env, ts, &out->js, &out->js_len);
  } else if (t == napi_object && napi_get_named_property(env, ts, "message", &msg) == napi_ok &&
             lang_u32(env, ts, "line", &out->line) == 0 &&
             lang_u32(env, ts, "column", &out->column) == 0) {
    rc = nx_args_string(env, msg, &out->error, &len);
  } else {
    rc = -1;
  }
  if (rc == 0) return 0;
  nx_engine_lang_free(out);
  if (rc == -1)
    napi_throw_type_error(env, NULL,
                          "execute: TypeScript needs its stripped source, or { message, line, "
                          "column } saying why it has none");
  return rc;
}

/* Ids, flags and payload sizes first; the bytes are copied afterwards, into
 * one buffer. */
static int read_answers(napi_env env, napi_value *argv, nx_job_t *job,
                        uint8_t (*ids)[NX_SUSPENSION_ID_BYTES], size_t *total) {
  uint32_t i;
  for (i = 0; i < job->nanswers; i++) {
    napi_value v, ok, buf;
    char hex[2 * NX_SUSPENSION_ID_BYTES + 2];
    size_t len = 0;
    bool flag = false, is_buf = false;
    void *data;
    NX_CALL(napi_get_element(env, argv[0], i, &v));
    if (napi_get_value_string_utf8(env, v, hex, sizeof hex, &len) != napi_ok ||
        nx_susp_parse_id(hex, len, ids[i]) != 0)
      return 1;
    NX_CALL(napi_get_element(env, argv[1], i, &ok));
    NX_CALL(napi_get_element(env, argv[2], i, &buf));
    if (napi_get_value_bool(env, ok, &flag) != napi_ok ||
        napi_is_buffer(env, buf, &is_buf) != napi_ok || !is_buf) {
      napi_throw_type_error(
          env, NULL, "resume(ids, oks, payloads): oks must be booleans and payloads Buffers");
      return -1;
    }
    NX_CALL(napi_get_buffer_info(env, buf, &data, &len));
    /* Untrusted bytes: validated here, before any call is claimed, so a bad
     * answer leaves the suspension resumable. */
    if (nx_mp_validate(data, len, NX_LIMIT_HOST_DEPTH) != 0) {
      napi_throw_type_error(
          env, NULL, "resume: a payload is not one MessagePack value nested at most 32 levels");
      return -1;
    }
    job->answers[i].ok = flag;
    job->answers[i].len = len;
    *total += len;
  }
  return 0;
fail:
  nx_args_throw_last(env, "resume failed");
  return -1;
}

/* Copies the payload bytes read_answers() measured. */
static int copy_answers(napi_env env, napi_value payloads, nx_job_t *job, size_t total) {
  size_t at = 0, len;
  uint32_t i;
  void *data;
  job->answer_bytes = malloc(total ? total : 1);
  if (job->answer_bytes == NULL) return -2;
  for (i = 0; i < job->nanswers; i++) {
    napi_value buf;
    if (napi_get_element(env, payloads, i, &buf) != napi_ok ||
        napi_get_buffer_info(env, buf, &data, &len) != napi_ok ||
        len != job->answers[i].len) /* changed under us: getters */
      return -1;
    memcpy(job->answer_bytes + at, data, len);
    job->answers[i].bytes = job->answer_bytes + at;
    at += len;
  }
  return 0;
}

int nx_args_answers(napi_env env, napi_value *argv, nx_job_t *job,
                    uint8_t (*ids)[NX_SUSPENSION_ID_BYTES]) {
  size_t total = 0;
  int rc = read_answers(env, argv, job, ids, &total);
  if (rc != 0) return rc;
  rc = copy_answers(env, argv[2], job, total);
  if (rc == -1) nx_args_throw_last(env, "resume: a payload changed while it was read");
  return rc;
}

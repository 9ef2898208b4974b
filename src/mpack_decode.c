/* MessagePack into guest values. Only ever reads a msgpack_object tree that
 * msgpack-c built from bytes nx_mp_validate() accepted; creates fresh guest
 * objects and defines (never assigns) their properties, so no guest code
 * runs. docs/marshaling.md lists every mapping. */
#include "mpack.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static uint64_t be(const uint8_t *p, int n) {
  uint64_t v = 0;
  int i;
  for (i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

static nx_mp_status_t decode_ext(nx_sandbox_t *sb, const msgpack_object_ext *x, nx_jsval_t *out,
                                 nx_path_t *path, char *err, size_t errlen) {
  nx_wasm_instance_t *in = &sb->inst;
  const uint8_t *d = (const uint8_t *)x->ptr;

  if (x->type == NX_MP_EXT_UNDEFINED && x->size == 1) {
    *out = NX_UNDEFINED;
    return NX_MP_OK;
  }
  if (x->type == NX_MP_EXT_TIMESTAMP && (x->size == 4 || x->size == 8 || x->size == 12)) {
    double sec, nsec;
    if (x->size == 4) {
      sec = (double)be(d, 4);
      nsec = 0;
    } else if (x->size == 8) {
      uint64_t v = be(d, 8);
      sec = (double)(v & 0x3ffffffffull);
      nsec = (double)(v >> 34);
    } else {
      nsec = (double)be(d, 4);
      sec = (double)(int64_t)be(d + 4, 8);
    }
    *out = Q(JS_NewDate)(in, sb->ctx, sec * 1000.0 + nsec / 1e6);
    return nx_jsval_tag(*out) == NX_TAG_EXCEPTION ? NX_MP_GUEST : NX_MP_OK;
  }
  if (x->type == NX_MP_EXT_TYPED && x->size >= 1) {
    uint32_t len = x->size - 1, ptr, argv;
    nx_jsval_t buf;
    int code = d[0], qtype, width;
    static const int8_t widths[11] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8};

    if (code != NX_MP_TYPED_ARRAYBUFFER && (code > 10)) goto unsupported;
    ptr = nx_sandbox_put(sb, d + 1, len);
    if (ptr == 0) return NX_MP_GUEST;
    buf = Q(JS_NewArrayBufferCopy)(in, sb->ctx, ptr, len);
    if (nx_jsval_tag(buf) == NX_TAG_EXCEPTION) return NX_MP_GUEST;
    if (code == NX_MP_TYPED_ARRAYBUFFER) {
      *out = buf;
      return NX_MP_OK;
    }
    width = widths[code];
    if (len % (uint32_t)width != 0) {
      nx_sandbox_free_value(sb, buf);
      snprintf(err, errlen, "%s: typed array byte length %u is not a multiple of %d", path->buf,
               len, width);
      return NX_MP_UNCROSSABLE;
    }
    qtype = nx_mp_code_to_qjs[code];
    argv = nx_sandbox_outs_push(sb, 1);
    if (argv == 0) {
      nx_sandbox_free_value(sb, buf);
      return NX_MP_GUEST;
    }
    memcpy(in->w2c_memory.data + argv, &buf, 8);
    *out = Q(JS_NewTypedArray)(in, sb->ctx, 1, argv, (uint32_t)qtype);
    nx_sandbox_outs_pop(sb, 1);
    nx_sandbox_free_value(sb, buf);
    return nx_jsval_tag(*out) == NX_TAG_EXCEPTION ? NX_MP_GUEST : NX_MP_OK;
  }
unsupported:
  snprintf(err, errlen, "%s: unsupported MessagePack extension type %d", path->buf, x->type);
  return NX_MP_UNCROSSABLE;
}

nx_mp_status_t nx_mp_decode(nx_sandbox_t *sb, const msgpack_object *o, nx_jsval_t *out,
                            nx_path_t *path, char *err, size_t errlen) {
  nx_wasm_instance_t *in = &sb->inst;
  nx_mp_status_t st;
  uint32_t i, ptr;

  *out = NX_UNDEFINED;
  switch (o->type) {
    case MSGPACK_OBJECT_NIL: *out = NX_NULL; return NX_MP_OK;
    case MSGPACK_OBJECT_BOOLEAN: *out = NX_BOOL(o->via.boolean); return NX_MP_OK;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
      /* msgpackr writes numbers up to 2^32 as integers and larger ones as
       * doubles; 64-bit integers come only from BigInts. */
      if (o->via.u64 <= INT32_MAX)
        *out = NX_INT(o->via.u64);
      else if (o->via.u64 <= UINT32_MAX)
        *out = Q(JS_NewNumber)(in, sb->ctx, (double)o->via.u64);
      else
        *out = Q(JS_NewBigUint64)(in, sb->ctx, o->via.u64);
      break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
      if (o->via.i64 >= INT32_MIN)
        *out = NX_INT(o->via.i64);
      else
        *out = Q(JS_NewBigInt64)(in, sb->ctx, (uint64_t)o->via.i64);
      break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *out = Q(JS_NewNumber)(in, sb->ctx, o->via.f64); break;
    case MSGPACK_OBJECT_STR:
      ptr = nx_sandbox_put(sb, o->via.str.ptr, o->via.str.size);
      if (ptr == 0) return NX_MP_GUEST;
      *out = Q(JS_NewStringLen)(in, sb->ctx, ptr, o->via.str.size);
      break;
    case MSGPACK_OBJECT_BIN:
      ptr = nx_sandbox_put(sb, o->via.bin.ptr, o->via.bin.size);
      if (ptr == 0) return NX_MP_GUEST;
      *out = Q(JS_NewUint8ArrayCopy)(in, sb->ctx, ptr, o->via.bin.size);
      break;
    case MSGPACK_OBJECT_EXT: return decode_ext(sb, &o->via.ext, out, path, err, errlen);
    case MSGPACK_OBJECT_ARRAY:
      *out = Q(JS_NewArray)(in, sb->ctx);
      if (nx_jsval_tag(*out) == NX_TAG_EXCEPTION) return NX_MP_GUEST;
      for (i = 0; i < o->via.array.size; i++) {
        nx_jsval_t item;
        uint32_t mark = nx_path_index(path, i);
        st = nx_mp_decode(sb, &o->via.array.ptr[i], &item, path, err, errlen);
        nx_path_pop(path, mark);
        if (st != NX_MP_OK) goto fail;
        if ((int32_t)Q(JS_DefinePropertyValueUint32)(in, sb->ctx, *out, i, item, NX_PROP_C_W_E) <
            0) {
          st = NX_MP_GUEST;
          goto fail;
        }
      }
      return NX_MP_OK;
    case MSGPACK_OBJECT_MAP:
      *out = Q(JS_NewObject)(in, sb->ctx);
      if (nx_jsval_tag(*out) == NX_TAG_EXCEPTION) return NX_MP_GUEST;
      for (i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        nx_jsval_t item;
        uint32_t atom, mark;
        char num[24];
        const char *key;
        size_t klen;
        int rc;

        if (kv->key.type == MSGPACK_OBJECT_STR) {
          key = kv->key.via.str.ptr;
          klen = kv->key.via.str.size;
        } else if (kv->key.type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
          klen = (size_t)snprintf(num, sizeof num, "%" PRIu64, kv->key.via.u64);
          key = num;
        } else if (kv->key.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
          klen = (size_t)snprintf(num, sizeof num, "%" PRId64, kv->key.via.i64);
          key = num;
        } else {
          snprintf(err, errlen, "%s: map key %u is not a string", path->buf, i);
          st = NX_MP_UNCROSSABLE;
          goto fail;
        }
        mark = nx_path_key(path, key, klen);
        st = nx_mp_decode(sb, &kv->val, &item, path, err, errlen);
        nx_path_pop(path, mark);
        if (st != NX_MP_OK) goto fail;
        ptr = nx_sandbox_put(sb, key, klen);
        atom = ptr ? Q(JS_NewAtomLen)(in, sb->ctx, ptr, (uint32_t)klen) : 0;
        if (atom == 0) {
          nx_sandbox_free_value(sb, item);
          st = NX_MP_GUEST;
          goto fail;
        }
        /* Define, never set: a "__proto__" key becomes an own property. */
        rc = (int32_t)Q(JS_DefinePropertyValue)(in, sb->ctx, *out, atom, item, NX_PROP_C_W_E);
        Q(JS_FreeAtom)(in, sb->ctx, atom);
        if (rc < 0) {
          st = NX_MP_GUEST;
          goto fail;
        }
      }
      return NX_MP_OK;
    default:
      snprintf(err, errlen, "%s: unsupported MessagePack type", path->buf);
      return NX_MP_UNCROSSABLE;
  }
  return nx_jsval_tag(*out) == NX_TAG_EXCEPTION ? NX_MP_GUEST : NX_MP_OK;

fail:
  nx_sandbox_free_value(sb, *out);
  *out = NX_UNDEFINED;
  return st;
}

/* MessagePack into guest values. Reads only bytes that nx_mp_validate*()
 * accepted, with the cursor of mpack.c; creates fresh guest objects and
 * defines (never assigns) their properties, so no guest code runs.
 * docs/marshaling.md lists every mapping. */
#include "mpack.h"

#include <stdio.h>
#include <string.h>

static uint64_t be(const uint8_t *p, int n) {
  uint64_t v = 0;
  int i;
  for (i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

static nx_mp_status_t decode_ext(nx_mp_decoder_t *dec, const nx_mp_item_t *x, nx_jsval_t *out) {
  nx_sandbox_t *sb = dec->sb;
  nx_wasm_instance_t *in = &sb->inst;
  const uint8_t *d = x->ptr;

  if (x->ext == NX_MP_EXT_UNDEFINED && x->size == 1) {
    *out = NX_UNDEFINED;
    return NX_MP_OK;
  }
  if (x->ext == NX_MP_EXT_TIMESTAMP && (x->size == 4 || x->size == 8 || x->size == 12)) {
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
  if (x->ext == NX_MP_EXT_TYPED && x->size >= 1) {
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
      snprintf(dec->err, sizeof dec->err, "%s: typed array byte length %u is not a multiple of %d",
               dec->path.buf, len, width);
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
  snprintf(dec->err, sizeof dec->err, "%s: unsupported MessagePack extension type %d",
           dec->path.buf, x->ext);
  return NX_MP_UNCROSSABLE;
}

void nx_mp_decoder_init(nx_mp_decoder_t *d, nx_sandbox_t *sb, const char *root) {
  d->sb = sb;
  d->err[0] = 0;
  d->lazy = NULL;
  d->lazy_data = NULL;
  nx_path_set(&d->path, root);
}

static nx_mp_status_t decode(nx_mp_decoder_t *d, const uint8_t **p, nx_jsval_t *out, int last);

static nx_mp_status_t decode_array(nx_mp_decoder_t *d, const uint8_t **p, uint32_t n,
                                   nx_jsval_t *out) {
  nx_sandbox_t *sb = d->sb;
  nx_wasm_instance_t *in = &sb->inst;
  nx_mp_status_t st = NX_MP_OK;
  uint32_t i;

  *out = Q(JS_NewArray)(in, sb->ctx);
  if (nx_jsval_tag(*out) == NX_TAG_EXCEPTION) return NX_MP_GUEST;
  for (i = 0; i < n; i++) {
    nx_jsval_t item;
    uint32_t mark = nx_path_index(&d->path, i);
    st = decode(d, p, &item, 0);
    nx_path_pop(&d->path, mark);
    if (st != NX_MP_OK) goto fail;
    if ((int32_t)Q(JS_DefinePropertyValueUint32)(in, sb->ctx, *out, i, item, NX_PROP_C_W_E) < 0) {
      st = NX_MP_GUEST;
      goto fail;
    }
  }
  return NX_MP_OK;
fail:
  nx_sandbox_free_value(sb, *out);
  *out = NX_UNDEFINED;
  return st;
}

static nx_mp_status_t decode_map(nx_mp_decoder_t *d, const uint8_t **p, uint32_t n,
                                 nx_jsval_t *out) {
  nx_sandbox_t *sb = d->sb;
  nx_wasm_instance_t *in = &sb->inst;
  nx_mp_status_t st = NX_MP_OK;
  uint32_t i;

  *out = Q(JS_NewObject)(in, sb->ctx);
  if (nx_jsval_tag(*out) == NX_TAG_EXCEPTION) return NX_MP_GUEST;
  for (i = 0; i < n; i++) {
    nx_mp_item_t key;
    nx_jsval_t item;
    uint32_t atom, mark, ptr;
    char num[24];
    const char *name;
    size_t len;
    int rc;

    *p = nx_mp_read(*p, &key);
    if (nx_mp_key_name(&key, num, &name, &len) != 0) {
      snprintf(d->err, sizeof d->err, "%s: map key %u is not a string", d->path.buf, i);
      st = NX_MP_UNCROSSABLE;
      goto fail;
    }
    mark = nx_path_key(&d->path, name, len);
    st = decode(d, p, &item, 0);
    nx_path_pop(&d->path, mark);
    if (st != NX_MP_OK) goto fail;
    ptr = nx_sandbox_put(sb, name, len);
    atom = ptr ? Q(JS_NewAtomLen)(in, sb->ctx, ptr, (uint32_t)len) : 0;
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
fail:
  nx_sandbox_free_value(sb, *out);
  *out = NX_UNDEFINED;
  return st;
}

static nx_mp_status_t decode(nx_mp_decoder_t *d, const uint8_t **p, nx_jsval_t *out, int last) {
  nx_sandbox_t *sb = d->sb;
  nx_wasm_instance_t *in = &sb->inst;
  const uint8_t *at = *p;
  nx_mp_item_t it;
  nx_mp_status_t st;
  uint32_t ptr;

  *out = NX_UNDEFINED;
  *p = nx_mp_read(at, &it);
  switch (it.type) {
    case NX_MPT_NIL: *out = NX_NULL; return NX_MP_OK;
    case NX_MPT_BOOL: *out = NX_BOOL(it.v.boolean); return NX_MP_OK;
    case NX_MPT_UINT:
      /* msgpackr writes numbers up to 2^32 as integers and larger ones as
       * doubles; 64-bit integers come only from BigInts. */
      if (it.v.u64 <= INT32_MAX)
        *out = NX_INT(it.v.u64);
      else if (it.v.u64 <= UINT32_MAX)
        *out = Q(JS_NewNumber)(in, sb->ctx, (double)it.v.u64);
      else
        *out = Q(JS_NewBigUint64)(in, sb->ctx, it.v.u64);
      break;
    case NX_MPT_INT:
      if (it.v.i64 >= INT32_MIN)
        *out = NX_INT(it.v.i64);
      else
        *out = Q(JS_NewBigInt64)(in, sb->ctx, (uint64_t)it.v.i64);
      break;
    case NX_MPT_FLOAT: *out = Q(JS_NewNumber)(in, sb->ctx, it.v.f64); break;
    case NX_MPT_STR:
      ptr = nx_sandbox_put(sb, it.ptr, it.size);
      if (ptr == 0) return NX_MP_GUEST;
      *out = Q(JS_NewStringLen)(in, sb->ctx, ptr, it.size);
      break;
    case NX_MPT_BIN:
      ptr = nx_sandbox_put(sb, it.ptr, it.size);
      if (ptr == 0) return NX_MP_GUEST;
      *out = Q(JS_NewUint8ArrayCopy)(in, sb->ctx, ptr, it.size);
      break;
    case NX_MPT_EXT: return decode_ext(d, &it, out);
    case NX_MPT_ARRAY:
    case NX_MPT_MAP:
      if (d->lazy && it.size > NX_MP_LAZY_MIN) {
        st = d->lazy(d, at, out);
        /* Stepping over it reads all of it, so not when nothing follows. */
        if (!last) *p = nx_mp_skip(at);
        return st;
      }
      return it.type == NX_MPT_ARRAY ? decode_array(d, p, it.size, out)
                                     : decode_map(d, p, it.size, out);
  }
  return nx_jsval_tag(*out) == NX_TAG_EXCEPTION ? NX_MP_GUEST : NX_MP_OK;
}

nx_mp_status_t nx_mp_decode(nx_mp_decoder_t *d, const uint8_t **p, nx_jsval_t *out) {
  return decode(d, p, out, 0);
}

nx_mp_status_t nx_mp_decode_last(nx_mp_decoder_t *d, const uint8_t *p, nx_jsval_t *out) {
  return decode(d, &p, out, 1);
}

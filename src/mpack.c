/* MessagePack <-> guest values. Decoding only ever reads a msgpack_object
 * tree that msgpack-c has already validated; encoding reads guest memory
 * only through bounds-checked helpers, since a guest controls its heap. */
#include "mpack.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define GPN_STRING_MASK 1
#define GPN_ENUM_ONLY 16
#define EXT_UNDEFINED 0
#define EXT_TIMESTAMP (-1)
#define EXT_TYPED 0x74 /* msgpackr's "moreTypes" typed arrays: code byte + bytes */
#define TYPED_CODE_ARRAYBUFFER 16

/* msgpackr typed-array codes -> quickjs-ng JSTypedArrayEnum, and back. */
static const int8_t code_to_qjs[11] = {1, 2, 0, 3, 4, 5, 6, 10, 11, 7, 8};
static const int8_t qjs_to_code[12] = {2, 0, 1, 3, 4, 5, 6, 9, 10, -1, 7, 8};

/* ---- paths ------------------------------------------------------------- */

void nx_path_set(nx_path_t *p, const char *root) {
  size_t n = strlen(root);
  if (n >= sizeof p->buf) n = sizeof p->buf - 1;
  memcpy(p->buf, root, n);
  p->buf[n] = 0;
  p->len = (uint32_t)n;
}

uint32_t nx_path_key(nx_path_t *p, const char *key, size_t len) {
  uint32_t mark = p->len;
  size_t room = sizeof p->buf - 1 - p->len;
  if (room > 1) {
    size_t n = len < room - 1 ? len : room - 1;
    p->buf[p->len++] = '.';
    if (n) memcpy(p->buf + p->len, key, n); /* msgpack-c gives "" a NULL pointer */
    p->len += (uint32_t)n;
    p->buf[p->len] = 0;
  }
  return mark;
}

uint32_t nx_path_index(nx_path_t *p, uint64_t index) {
  uint32_t mark = p->len;
  int n = snprintf(p->buf + p->len, sizeof p->buf - p->len, "[%" PRIu64 "]", index);
  if (n > 0 && (size_t)n < sizeof p->buf - p->len) p->len += (uint32_t)n;
  p->buf[p->len] = 0;
  return mark;
}

/* ---- validation ---------------------------------------------------------- */

int nx_mp_validate(const uint8_t *buf, size_t len, uint32_t max_depth) {
  uint64_t pending[64]; /* items still expected by each open container */
  uint32_t depth = 0;
  size_t at = 0;

  if (max_depth > 63) max_depth = 63;
  pending[0] = 1; /* the top-level value */
  while (depth > 0 || pending[0] > 0) {
    uint8_t b;
    uint64_t skip = 0, items = 0;
    int container = 0, width;

    if (pending[depth] == 0) { /* container complete */
      depth--;
      continue;
    }
    pending[depth]--;
    if (at >= len) return -1;
    b = buf[at++];
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
      /* fixint, nil, bool: nothing more */
    } else if (b <= 0x8f) {
      items = 2u * (b & 0x0f), container = 1;
    } else if (b <= 0x9f) {
      items = b & 0x0f, container = 1;
    } else if (b <= 0xbf) {
      skip = b & 0x1f;
    } else if (b == 0xc1) {
      return -1;
    } else {
      static const struct { uint8_t op, width, kind; } ops[] = {
          /* kind: 0 fixed payload `width`, 1 length `width` + bytes,
           * 2 length + type byte + bytes, 3 array count, 4 map count */
          {0xc4, 1, 1}, {0xc5, 2, 1}, {0xc6, 4, 1}, {0xc7, 1, 2}, {0xc8, 2, 2},
          {0xc9, 4, 2}, {0xca, 4, 0}, {0xcb, 8, 0}, {0xcc, 1, 0}, {0xcd, 2, 0},
          {0xce, 4, 0}, {0xcf, 8, 0}, {0xd0, 1, 0}, {0xd1, 2, 0}, {0xd2, 4, 0},
          {0xd3, 8, 0}, {0xd4, 2, 0}, {0xd5, 3, 0}, {0xd6, 5, 0}, {0xd7, 9, 0},
          {0xd8, 17, 0}, {0xd9, 1, 1}, {0xda, 2, 1}, {0xdb, 4, 1}, {0xdc, 2, 3},
          {0xdd, 4, 3}, {0xde, 2, 4}, {0xdf, 4, 4}};
      const uint32_t n = sizeof ops / sizeof ops[0];
      uint32_t i;
      uint64_t v = 0;
      for (i = 0; i < n && ops[i].op != b; i++) {}
      if (i == n) return -1;
      width = ops[i].width;
      if (ops[i].kind == 0) {
        skip = (uint64_t)width;
      } else {
        if (len - at < (size_t)width) return -1;
        for (int k = 0; k < width; k++) v = (v << 8) | buf[at + (size_t)k];
        at += (size_t)width;
        if (ops[i].kind == 1) skip = v;
        else if (ops[i].kind == 2) skip = v + 1;
        else items = ops[i].kind == 3 ? v : 2 * v, container = 1;
      }
    }
    if (skip > len - at) return -1;
    at += (size_t)skip;
    /* An empty container is a level too: msgpack-c counts it. */
    if (container && depth + 1 > max_depth) return -1;
    if (container && items > 0) {
      /* Every item takes at least one byte. */
      if (items > len - at) return -1;
      pending[++depth] = items;
    }
  }
  return at == len ? 0 : -1;
}

/* ---- decode: host -> guest -------------------------------------------- */

static uint64_t be(const uint8_t *p, int n) {
  uint64_t v = 0;
  int i;
  for (i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

static nx_mp_status_t decode_ext(nx_sandbox_t *sb, const msgpack_object_ext *x,
                                 nx_jsval_t *out, nx_path_t *path, char *err,
                                 size_t errlen) {
  nx_wasm_instance_t *in = &sb->inst;
  const uint8_t *d = (const uint8_t *)x->ptr;

  if (x->type == EXT_UNDEFINED && x->size == 1) {
    *out = NX_UNDEFINED;
    return NX_MP_OK;
  }
  if (x->type == EXT_TIMESTAMP && (x->size == 4 || x->size == 8 || x->size == 12)) {
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
  if (x->type == EXT_TYPED && x->size >= 1) {
    uint32_t len = x->size - 1, ptr, argv;
    nx_jsval_t buf;
    int code = d[0], qtype, width;
    static const int8_t widths[11] = {1, 1, 1, 2, 2, 4, 4, 4, 8, 8, 8};

    if (code != TYPED_CODE_ARRAYBUFFER && (code > 10)) goto unsupported;
    ptr = nx_sandbox_put(sb, d + 1, len);
    if (ptr == 0) return NX_MP_GUEST;
    buf = Q(JS_NewArrayBufferCopy)(in, sb->ctx, ptr, len);
    if (nx_jsval_tag(buf) == NX_TAG_EXCEPTION) return NX_MP_GUEST;
    if (code == TYPED_CODE_ARRAYBUFFER) {
      *out = buf;
      return NX_MP_OK;
    }
    width = widths[code];
    if (len % (uint32_t)width != 0) {
      nx_sandbox_free_value(sb, buf);
      snprintf(err, errlen, "%s: typed array byte length %u is not a multiple of %d",
               path->buf, len, width);
      return NX_MP_UNCROSSABLE;
    }
    qtype = code_to_qjs[code];
    argv = nx_sandbox_slot_push(sb, 1);
    if (argv == 0) {
      nx_sandbox_free_value(sb, buf);
      return NX_MP_GUEST;
    }
    memcpy(in->w2c_memory.data + argv, &buf, 8);
    *out = Q(JS_NewTypedArray)(in, sb->ctx, 1, argv, (uint32_t)qtype);
    nx_sandbox_slot_pop(sb, 1);
    nx_sandbox_free_value(sb, buf);
    return nx_jsval_tag(*out) == NX_TAG_EXCEPTION ? NX_MP_GUEST : NX_MP_OK;
  }
unsupported:
  snprintf(err, errlen, "%s: unsupported MessagePack extension type %d", path->buf,
           x->type);
  return NX_MP_UNCROSSABLE;
}

nx_mp_status_t nx_mp_decode(nx_sandbox_t *sb, const msgpack_object *o,
                            nx_jsval_t *out, nx_path_t *path, char *err,
                            size_t errlen) {
  nx_wasm_instance_t *in = &sb->inst;
  nx_mp_status_t st;
  uint32_t i, ptr;

  *out = NX_UNDEFINED;
  switch (o->type) {
    case MSGPACK_OBJECT_NIL:
      *out = NX_NULL;
      return NX_MP_OK;
    case MSGPACK_OBJECT_BOOLEAN:
      *out = NX_BOOL(o->via.boolean);
      return NX_MP_OK;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
      /* msgpackr writes numbers up to 2^32 as integers and larger ones as
       * doubles; 64-bit integers come only from BigInts. */
      if (o->via.u64 <= INT32_MAX) *out = NX_INT(o->via.u64);
      else if (o->via.u64 <= UINT32_MAX)
        *out = Q(JS_NewNumber)(in, sb->ctx, (double)o->via.u64);
      else
        *out = Q(JS_NewBigUint64)(in, sb->ctx, o->via.u64);
      break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
      if (o->via.i64 >= INT32_MIN) *out = NX_INT(o->via.i64);
      else *out = Q(JS_NewBigInt64)(in, sb->ctx, (uint64_t)o->via.i64);
      break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
      *out = Q(JS_NewNumber)(in, sb->ctx, o->via.f64);
      break;
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
    case MSGPACK_OBJECT_EXT:
      return decode_ext(sb, &o->via.ext, out, path, err, errlen);
    case MSGPACK_OBJECT_ARRAY:
      *out = Q(JS_NewArray)(in, sb->ctx);
      if (nx_jsval_tag(*out) == NX_TAG_EXCEPTION) return NX_MP_GUEST;
      for (i = 0; i < o->via.array.size; i++) {
        nx_jsval_t item;
        uint32_t mark = nx_path_index(path, i);
        st = nx_mp_decode(sb, &o->via.array.ptr[i], &item, path, err, errlen);
        nx_path_pop(path, mark);
        if (st != NX_MP_OK) goto fail;
        if ((int32_t)Q(JS_DefinePropertyValueUint32)(in, sb->ctx, *out, i, item,
                                                     NX_PROP_C_W_E) < 0) {
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

/* ---- encode: guest -> host -------------------------------------------- */

/* The encoder never runs guest code: it reads own data properties only,
 * through calls that cannot reach a getter, a Proxy trap, toJSON or
 * valueOf. What it cannot read that way (a Proxy, an accessor, an Error
 * whose name lives on its prototype) it reports as NX_MP_IMPURE, and the
 * caller has the bootstrap copy the value into plain data inside the guest
 * first. So no host pointer is ever live while guest code runs. */

#define JS_PROP_TMASK (3 << 4)
#define JS_PROP_GETSET (1 << 4)
/* quickjs-ng gives array indices below 2^31 - 1 "tagged int" atoms: no
 * allocation, nothing to free. Checked once per sandbox (nx_sandbox_new). */
#define ATOM_TAG_INT (1u << 31)
#define ATOM_MAX_INT 0x7fffffffu

void nx_mp_encoder_init(nx_mp_encoder_t *e, nx_sandbox_t *sb, nx_buf_t *out,
                        const char *root) {
  e->sb = sb;
  e->out = out;
  e->pk = nx_buf_packer(out);
  e->depth = 0;
  e->err[0] = 0;
  nx_path_set(&e->path, root);
}

static nx_mp_status_t uncrossable(nx_mp_encoder_t *e, const char *what) {
  snprintf(e->err, sizeof e->err, "%s %s and cannot leave the sandbox",
           e->path.buf, what);
  return NX_MP_UNCROSSABLE;
}

/* The buffer refused a write: the budget (or host memory) ran out. */
static nx_mp_status_t refused(nx_mp_encoder_t *e) {
  snprintf(e->err, sizeof e->err, "%s", e->path.buf);
  return e->out->refused == NX_BUF_NOMEM ? NX_MP_NOMEM : NX_MP_LIMIT;
}

/* Bytes of UTF-8 with each 3-byte lone-surrogate sequence (ED A0..BF xx)
 * replaced by U+FFFD, which has the same length. */
static void pack_utf8_body(msgpack_packer *pk, const uint8_t *s, size_t len) {
  size_t i, from = 0;
  for (i = 0; i + 2 < len; i++) {
    if (s[i] == 0xED && s[i + 1] >= 0xA0 && s[i + 1] <= 0xBF) {
      if (i > from) msgpack_pack_str_body(pk, s + from, i - from);
      msgpack_pack_str_body(pk, "\xEF\xBF\xBD", 3);
      i += 2;
      from = i + 1;
    }
  }
  if (len > from) msgpack_pack_str_body(pk, s + from, len - from);
}

nx_mp_status_t nx_mp_pack_guest_string(nx_sandbox_t *sb, msgpack_packer *pk,
                                       nx_jsval_t v) {
  uint32_t slot, ptr, len;
  uint8_t *bytes;
  int tag = nx_jsval_tag(v);

  /* Only string primitives: ToString of anything else may run guest code. */
  if (tag != NX_TAG_STRING && tag != NX_TAG_STRING_ROPE) return NX_MP_UNCROSSABLE;
  slot = nx_sandbox_slot_push(sb, 1);
  if (slot == 0) return NX_MP_GUEST;
  ptr = Q(JS_ToCStringLen2)(&sb->inst, sb->ctx, slot, v, 0);
  if (ptr == 0 || nx_guest_read_u32(&sb->inst, slot, &len) != 0 ||
      (bytes = nx_guest_bytes(&sb->inst, ptr, len)) == NULL) {
    if (ptr) Q(JS_FreeCString)(&sb->inst, sb->ctx, ptr);
    nx_sandbox_slot_pop(sb, 1);
    return NX_MP_GUEST;
  }
  msgpack_pack_str(pk, len);
  pack_utf8_body(pk, bytes, len);
  Q(JS_FreeCString)(&sb->inst, sb->ctx, ptr);
  nx_sandbox_slot_pop(sb, 1);
  return NX_MP_OK;
}

static void pack_number(msgpack_packer *pk, double d) {
  /* msgpackr's rule, so both sides agree: integers in [-2^31, 2^32) as
   * MessagePack integers (read back as numbers), everything else, -0
   * included, as float64. */
  if (d >= -2147483648.0 && d <= 4294967295.0 && d == floor(d) &&
      !(d == 0 && signbit(d)))
    msgpack_pack_int64(pk, (int64_t)d);
  else
    msgpack_pack_double(pk, d);
}

static void pack_timestamp(msgpack_packer *pk, double ms) {
  double secf = floor(ms / 1000.0);
  int64_t sec = (int64_t)secf;
  uint32_t nsec = (uint32_t)llround((ms - secf * 1000.0) * 1e6);
  uint8_t b[12];
  int i;

  if (nsec >= 1000000000u) nsec = 999999999u;
  if (nsec == 0 && sec >= 0 && sec <= UINT32_MAX) {
    for (i = 0; i < 4; i++) b[i] = (uint8_t)((uint64_t)sec >> (24 - 8 * i));
    msgpack_pack_ext(pk, 4, EXT_TIMESTAMP);
    msgpack_pack_ext_body(pk, b, 4);
  } else if (sec >= 0 && sec < (1ll << 34)) {
    uint64_t v = ((uint64_t)nsec << 34) | (uint64_t)sec;
    for (i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (56 - 8 * i));
    msgpack_pack_ext(pk, 8, EXT_TIMESTAMP);
    msgpack_pack_ext_body(pk, b, 8);
  } else {
    for (i = 0; i < 4; i++) b[i] = (uint8_t)(nsec >> (24 - 8 * i));
    for (i = 0; i < 8; i++) b[4 + i] = (uint8_t)((uint64_t)sec >> (56 - 8 * i));
    msgpack_pack_ext(pk, 12, EXT_TIMESTAMP);
    msgpack_pack_ext_body(pk, b, 12);
  }
}

static nx_mp_status_t encode_bigint(nx_mp_encoder_t *e, nx_jsval_t v) {
  nx_sandbox_t *sb = e->sb;
  nx_wasm_instance_t *in = &sb->inst;
  uint32_t slot = nx_sandbox_slot_push(sb, 1);
  uint64_t raw = 0;
  nx_jsval_t back;
  int same;

  if (slot == 0) return NX_MP_GUEST;
  /* ToBigInt64 wraps modulo 2^64: convert back and compare to know whether
   * the value really fits, signed first, then unsigned. A BigInt primitive
   * converts without running guest code. */
  if ((int32_t)Q(JS_ToBigInt64)(in, sb->ctx, slot, v) == 0 &&
      nx_guest_read_u64(in, slot, &raw) == 0) {
    back = Q(JS_NewBigInt64)(in, sb->ctx, raw);
    same = (int)Q(JS_IsStrictEqual)(in, sb->ctx, v, back);
    nx_sandbox_free_value(sb, back);
    if (same) {
      nx_sandbox_slot_pop(sb, 1);
      msgpack_pack_fix_int64(&e->pk, (int64_t)raw); /* 9 bytes: msgpackr reads BigInt */
      return NX_MP_OK;
    }
    back = Q(JS_NewBigUint64)(in, sb->ctx, raw);
    same = (int)Q(JS_IsStrictEqual)(in, sb->ctx, v, back);
    nx_sandbox_free_value(sb, back);
    if (same) {
      nx_sandbox_slot_pop(sb, 1);
      msgpack_pack_fix_uint64(&e->pk, raw);
      return NX_MP_OK;
    }
  }
  nx_sandbox_slot_pop(sb, 1);
  return uncrossable(e, "is a BigInt outside the 64-bit range");
}

static nx_mp_status_t encode_bytes(nx_mp_encoder_t *e, nx_jsval_t abuf,
                                   uint32_t offset, uint32_t length, int code) {
  nx_sandbox_t *sb = e->sb;
  uint32_t slot = nx_sandbox_slot_push(sb, 1), size = 0, ptr;
  uint8_t *bytes = NULL;
  uint8_t c = (uint8_t)code;

  if (slot == 0) return NX_MP_GUEST;
  ptr = Q(JS_GetArrayBuffer)(&sb->inst, sb->ctx, slot, abuf);
  nx_guest_read_u32(&sb->inst, slot, &size);
  nx_sandbox_slot_pop(sb, 1);
  if (ptr == 0 && size == 0 && length == 0) bytes = (uint8_t *)"";
  else if (ptr != 0 && (uint64_t)offset + length <= size)
    bytes = nx_guest_bytes(&sb->inst, ptr + offset, length);
  if (bytes == NULL) {
    if (Q(JS_HasException)(&sb->inst, sb->ctx)) return NX_MP_GUEST;
    return uncrossable(e, "is a detached or invalid buffer");
  }
  msgpack_pack_ext(&e->pk, length + 1, EXT_TYPED);
  msgpack_pack_ext_body(&e->pk, &c, 1);
  msgpack_pack_ext_body(&e->pk, bytes, length);
  return NX_MP_OK;
}

/* Own property `atom` of an ordinary object, read without running guest
 * code: 1 with *out (a new reference) for a data property, 0 when there is
 * none, NX_MP_IMPURE for an accessor, NX_MP_GUEST on an exception. */
static int own_data(nx_mp_encoder_t *e, nx_jsval_t obj, uint32_t atom, nx_jsval_t *out) {
  nx_sandbox_t *sb = e->sb;
  nx_wasm_instance_t *in = &sb->inst;
  /* JSPropertyDescriptor on wasm32: { int flags; JSValue value, getter, setter; } */
  uint32_t desc = nx_sandbox_slot_push(sb, 4), flags = 0;
  nx_jsval_t getter = NX_UNDEFINED, setter = NX_UNDEFINED;
  int32_t r;

  *out = NX_UNDEFINED;
  if (desc == 0) return NX_MP_GUEST;
  r = (int32_t)Q(JS_GetOwnProperty)(in, sb->ctx, desc, obj, atom);
  if (r > 0 && (nx_guest_read_u32(in, desc, &flags) != 0 ||
                nx_guest_read_u64(in, desc + 8, out) != 0 ||
                nx_guest_read_u64(in, desc + 16, &getter) != 0 ||
                nx_guest_read_u64(in, desc + 24, &setter) != 0))
    r = -1;
  nx_sandbox_slot_pop(sb, 4);
  if (r < 0) return NX_MP_GUEST;
  if (r == 0) return 0;
  if ((flags & JS_PROP_TMASK) == JS_PROP_GETSET) {
    nx_sandbox_free_value(sb, getter);
    nx_sandbox_free_value(sb, setter);
    nx_sandbox_free_value(sb, *out);
    *out = NX_UNDEFINED;
    return NX_MP_IMPURE;
  }
  return 1;
}

static nx_mp_status_t encode_value(nx_mp_encoder_t *e, nx_jsval_t v);

/* Encodes own property `atom` of obj (undefined when absent). */
static nx_mp_status_t encode_own(nx_mp_encoder_t *e, nx_jsval_t obj, uint32_t atom) {
  nx_jsval_t item;
  nx_mp_status_t st;
  int r = own_data(e, obj, atom, &item);
  if (r < 0) return (nx_mp_status_t)r;
  st = encode_value(e, item);
  nx_sandbox_free_value(e->sb, item);
  return st;
}

static nx_mp_status_t encode_array(nx_mp_encoder_t *e, nx_jsval_t v) {
  nx_sandbox_t *sb = e->sb;
  uint32_t slot = nx_sandbox_slot_push(sb, 1);
  uint64_t len = 0, i;
  nx_mp_status_t st = NX_MP_OK;

  if (slot == 0) return NX_MP_GUEST;
  /* An Array's length is an own data property: reading it runs nothing. */
  if ((int32_t)Q(JS_GetLength)(&sb->inst, sb->ctx, v, slot) < 0 ||
      nx_guest_read_u64(&sb->inst, slot, &len) != 0) {
    nx_sandbox_slot_pop(sb, 1);
    return NX_MP_GUEST;
  }
  nx_sandbox_slot_pop(sb, 1);
  if (len >= ATOM_MAX_INT) return uncrossable(e, "is an array too long to encode");
  msgpack_pack_array(&e->pk, (size_t)len);
  for (i = 0; i < len && st == NX_MP_OK; i++) {
    uint32_t mark = nx_path_index(&e->path, i);
    /* Holes read as undefined, never through Array.prototype. */
    st = encode_own(e, v, ATOM_TAG_INT | (uint32_t)i);
    if (st == NX_MP_OK) nx_path_pop(&e->path, mark);
  }
  return st;
}

static nx_mp_status_t encode_object_props(nx_mp_encoder_t *e, nx_jsval_t v) {
  nx_sandbox_t *sb = e->sb;
  nx_wasm_instance_t *in = &sb->inst;
  uint32_t slots = nx_sandbox_slot_push(sb, 2), tab = 0, len = 0, i;
  nx_mp_status_t st = NX_MP_OK;

  if (slots == 0) return NX_MP_GUEST;
  if ((int32_t)Q(JS_GetOwnPropertyNames)(in, sb->ctx, slots, slots + 8, v,
                                         GPN_STRING_MASK | GPN_ENUM_ONLY) < 0 ||
      nx_guest_read_u32(in, slots, &tab) != 0 ||
      nx_guest_read_u32(in, slots + 8, &len) != 0 ||
      (len && nx_guest_bytes(in, tab, (uint64_t)len * 8) == NULL)) {
    nx_sandbox_slot_pop(sb, 2);
    return NX_MP_GUEST;
  }
  /* The table stays put in guest memory until freed (no guest code runs
   * meanwhile), so the slots can go before recursing: nesting then costs
   * no scratch slots at all. */
  nx_sandbox_slot_pop(sb, 2);
  msgpack_pack_map(&e->pk, len);
  for (i = 0; i < len && st == NX_MP_OK; i++) {
    uint32_t atom = 0, kptr, klen = 0, mark, lenslot;
    uint8_t *kbytes;

    /* JSPropertyEnum is { bool is_enumerable; JSAtom atom; } on wasm32. */
    nx_guest_read_u32(in, tab + i * 8 + 4, &atom);
    lenslot = nx_sandbox_slot_push(sb, 1);
    kptr = lenslot ? Q(JS_AtomToCStringLen)(in, sb->ctx, lenslot, atom) : 0;
    if (kptr == 0 || nx_guest_read_u32(in, lenslot, &klen) != 0 ||
        (kbytes = nx_guest_bytes(in, kptr, klen)) == NULL) {
      if (kptr) Q(JS_FreeCString)(in, sb->ctx, kptr);
      if (lenslot) nx_sandbox_slot_pop(sb, 1);
      st = NX_MP_GUEST;
      break;
    }
    nx_sandbox_slot_pop(sb, 1);
    msgpack_pack_str(&e->pk, klen);
    pack_utf8_body(&e->pk, kbytes, klen);
    mark = nx_path_key(&e->path, (const char *)kbytes, klen);
    Q(JS_FreeCString)(in, sb->ctx, kptr);
    st = encode_own(e, v, atom);
    if (st == NX_MP_OK) nx_path_pop(&e->path, mark);
  }
  Q(JS_FreePropertyEnum)(in, sb->ctx, tab, len);
  return st;
}

/* A Date's time value through the bootstrap's own Date.prototype.getTime,
 * captured before any handler ran: valueOf and Symbol.toPrimitive, which a
 * handler may replace, are never consulted. */
static nx_mp_status_t encode_date(nx_mp_encoder_t *e, nx_jsval_t v) {
  nx_sandbox_t *sb = e->sb;
  nx_wasm_instance_t *in = &sb->inst;
  nx_jsval_t t = Q(JS_Call)(in, sb->ctx, sb->date_time, v, 0, 0);
  double ms;
  switch (nx_jsval_tag(t)) {
    case NX_TAG_INT: ms = nx_jsval_int(t); break;
    case NX_TAG_FLOAT64: ms = nx_jsval_float64(t); break;
    case NX_TAG_EXCEPTION: return NX_MP_GUEST;
    default: nx_sandbox_free_value(sb, t); return uncrossable(e, "is not a valid Date");
  }
  if (isnan(ms)) return uncrossable(e, "is an invalid Date");
  pack_timestamp(&e->pk, ms);
  return NX_MP_OK;
}

static nx_mp_status_t encode_object(nx_mp_encoder_t *e, nx_jsval_t v) {
  nx_sandbox_t *sb = e->sb;
  nx_wasm_instance_t *in = &sb->inst;
  uint32_t id = nx_jsval_ptr(v), i;
  int32_t ta;
  nx_mp_status_t st;

  if (Q(JS_IsFunction)(in, sb->ctx, v)) return uncrossable(e, "is a function");
  for (i = 0; i < e->depth; i++)
    if (e->visiting[i] == id) return uncrossable(e, "is a circular reference");
  if (e->depth >= NX_MP_MAX_DEPTH) return uncrossable(e, "is nested too deeply (over 256 levels)");
  /* Reading a Proxy runs its traps; an Error's name is inherited. */
  if (Q(JS_IsProxy)(in, v) || Q(JS_IsError)(in, v)) return NX_MP_IMPURE;

  if (Q(JS_IsArray)(in, v)) {
    e->visiting[e->depth++] = id;
    st = encode_array(e, v);
    e->depth--;
    return st;
  }
  if (Q(JS_IsDate)(in, v)) return encode_date(e, v);
  ta = (int32_t)Q(JS_GetTypedArrayType)(in, v);
  if (ta >= 0) {
    uint32_t slots = nx_sandbox_slot_push(sb, 3), off = 0, len = 0;
    nx_jsval_t abuf;
    if (slots == 0) return NX_MP_GUEST;
    if (ta > 11 || qjs_to_code[ta] < 0) {
      nx_sandbox_slot_pop(sb, 3);
      return uncrossable(e, "is a Float16Array");
    }
    abuf = Q(JS_GetTypedArrayBuffer)(in, sb->ctx, v, slots, slots + 8, slots + 16);
    nx_guest_read_u32(in, slots, &off);
    nx_guest_read_u32(in, slots + 8, &len);
    nx_sandbox_slot_pop(sb, 3);
    if (nx_jsval_tag(abuf) == NX_TAG_EXCEPTION) return NX_MP_GUEST;
    st = encode_bytes(e, abuf, off, len, qjs_to_code[ta]);
    nx_sandbox_free_value(sb, abuf);
    return st;
  }
  if (Q(JS_IsArrayBuffer)(in, v)) {
    uint32_t slot = nx_sandbox_slot_push(sb, 1), size = 0;
    if (slot == 0) return NX_MP_GUEST;
    Q(JS_GetArrayBuffer)(in, sb->ctx, slot, v);
    nx_guest_read_u32(in, slot, &size);
    nx_sandbox_slot_pop(sb, 1);
    return encode_bytes(e, v, 0, size, TYPED_CODE_ARRAYBUFFER);
  }
  if (Q(JS_IsMap)(in, v)) return uncrossable(e, "is a Map");
  if (Q(JS_IsSet)(in, v)) return uncrossable(e, "is a Set");
  if (Q(JS_IsWeakMap)(in, v) || Q(JS_IsWeakSet)(in, v) || Q(JS_IsWeakRef)(in, v))
    return uncrossable(e, "is a weak collection or reference");
  if (Q(JS_IsPromise)(in, v)) return uncrossable(e, "is a Promise (await it first)");
  if (Q(JS_IsRegExp)(in, v)) return uncrossable(e, "is a RegExp");
  if (Q(JS_IsDataView)(in, v)) return uncrossable(e, "is a DataView");

  e->visiting[e->depth++] = id;
  st = encode_object_props(e, v);
  e->depth--;
  return st;
}

static nx_mp_status_t encode_value(nx_mp_encoder_t *e, nx_jsval_t v) {
  nx_mp_status_t st;
  /* Every value writes at least one byte, so checking here bounds the walk
   * by the budget, however often a shared reference repeats. */
  if (e->out->refused) return refused(e);
  switch (nx_jsval_tag(v)) {
    case NX_TAG_INT:
      msgpack_pack_int32(&e->pk, nx_jsval_int(v));
      return NX_MP_OK;
    case NX_TAG_BOOL:
      if (nx_jsval_int(v)) msgpack_pack_true(&e->pk);
      else msgpack_pack_false(&e->pk);
      return NX_MP_OK;
    case NX_TAG_NULL:
      msgpack_pack_nil(&e->pk);
      return NX_MP_OK;
    case NX_TAG_UNDEFINED:
      msgpack_pack_ext(&e->pk, 1, EXT_UNDEFINED);
      msgpack_pack_ext_body(&e->pk, "\0", 1);
      return NX_MP_OK;
    case NX_TAG_FLOAT64:
      pack_number(&e->pk, nx_jsval_float64(v));
      return NX_MP_OK;
    case NX_TAG_STRING:
    case NX_TAG_STRING_ROPE:
      st = nx_mp_pack_guest_string(e->sb, &e->pk, v);
      return st == NX_MP_OK && e->out->refused ? refused(e) : st;
    case NX_TAG_SHORT_BIG_INT:
    case NX_TAG_BIG_INT:
      return encode_bigint(e, v);
    case NX_TAG_SYMBOL:
      return uncrossable(e, "is a Symbol");
    case NX_TAG_OBJECT:
      return encode_object(e, v);
    default:
      return uncrossable(e, "is not a JavaScript value");
  }
}

nx_mp_status_t nx_mp_encode(nx_mp_encoder_t *e, nx_jsval_t v) {
  nx_mp_status_t st = encode_value(e, v);
  if (st == NX_MP_OK && e->out->refused) st = refused(e);
  return st;
}

/* ---- equality ---------------------------------------------------------- */

static int as_number(const msgpack_object *o, double *d) {
  switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *d = (double)o->via.u64; return 1;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *d = (double)o->via.i64; return 1;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: *d = o->via.f64; return 1;
    default: return 0;
  }
}

int nx_mp_equal(const msgpack_object *a, const msgpack_object *b) {
  double x, y;
  uint32_t i;

  if (as_number(a, &x) && as_number(b, &y))
    return (x == y && signbit(x) == signbit(y)) || (isnan(x) && isnan(y));
  if (a->type != b->type) return 0;
  switch (a->type) {
    case MSGPACK_OBJECT_ARRAY:
      if (a->via.array.size != b->via.array.size) return 0;
      for (i = 0; i < a->via.array.size; i++)
        if (!nx_mp_equal(&a->via.array.ptr[i], &b->via.array.ptr[i])) return 0;
      return 1;
    case MSGPACK_OBJECT_MAP:
      if (a->via.map.size != b->via.map.size) return 0;
      for (i = 0; i < a->via.map.size; i++)
        if (!nx_mp_equal(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
            !nx_mp_equal(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
          return 0;
      return 1;
    default:
      return msgpack_object_equal(*a, *b);
  }
}

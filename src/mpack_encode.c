/* Guest values into MessagePack without running guest code (see below).
 * Guest memory is read only through bounds-checked helpers: a guest
 * controls its heap. docs/marshaling.md lists every mapping. */
#include "mpack.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* The encoder never runs guest code: it reads own data properties only,
 * through calls that cannot reach a getter, a Proxy trap, toJSON or
 * valueOf. What it cannot read that way (a Proxy, an accessor, an Error
 * whose name lives on its prototype) it reports as NX_MP_IMPURE, and the
 * caller has the bootstrap copy the value into plain data inside the guest
 * first. So no host pointer is ever live while guest code runs. */

void nx_mp_encoder_init(nx_mp_encoder_t *e, nx_sandbox_t *sb, nx_buf_t *out, const char *root) {
  e->sb = sb;
  e->out = out;
  e->depth = 0;
  e->err[0] = 0;
  e->proxy = NULL;
  e->proxy_data = NULL;
  nx_path_set(&e->path, root);
}

static nx_mp_status_t uncrossable(nx_mp_encoder_t *e, const char *what) {
  snprintf(e->err, sizeof e->err, "%s %s and cannot leave the sandbox", e->path.buf, what);
  return NX_MP_UNCROSSABLE;
}

/* The buffer refused a write: the budget (or host memory) ran out. */
static nx_mp_status_t refused(nx_mp_encoder_t *e) {
  snprintf(e->err, sizeof e->err, "%s", e->path.buf);
  return e->out->refused == NX_BUF_NOMEM ? NX_MP_NOMEM : NX_MP_LIMIT;
}

/* Bytes of UTF-8 with each 3-byte lone-surrogate sequence (ED A0..BF xx)
 * replaced by U+FFFD, which has the same length. */
static void pack_utf8_body(nx_buf_t *b, const uint8_t *s, size_t len) {
  size_t i, from = 0;
  for (i = 0; i + 2 < len; i++) {
    if (s[i] == 0xED && s[i + 1] >= 0xA0 && s[i + 1] <= 0xBF) {
      if (i > from) nx_buf_write(b, s + from, i - from);
      nx_buf_write(b, "\xEF\xBF\xBD", 3);
      i += 2;
      from = i + 1;
    }
  }
  if (len > from) nx_buf_write(b, s + from, len - from);
}

nx_mp_status_t nx_mp_pack_guest_string(nx_sandbox_t *sb, nx_buf_t *out, nx_jsval_t v) {
  uint32_t slot, ptr, len;
  uint8_t *bytes;
  int tag = nx_jsval_tag(v);

  /* Only string primitives: ToString of anything else may run guest code. */
  if (tag != NX_TAG_STRING && tag != NX_TAG_STRING_ROPE) return NX_MP_UNCROSSABLE;
  slot = nx_sandbox_outs_push(sb, 1);
  if (slot == 0) return NX_MP_GUEST;
  ptr = Q(JS_ToCStringLen2)(&sb->inst, sb->ctx, slot, v, 0);
  if (ptr == 0 || nx_guest_read_u32(&sb->inst, slot, &len) != 0 ||
      (bytes = nx_guest_bytes(&sb->inst, ptr, len)) == NULL) {
    if (ptr) Q(JS_FreeCString)(&sb->inst, sb->ctx, ptr);
    nx_sandbox_outs_pop(sb, 1);
    return NX_MP_GUEST;
  }
  nx_mp_pack_str_header(out, len);
  pack_utf8_body(out, bytes, len);
  Q(JS_FreeCString)(&sb->inst, sb->ctx, ptr);
  nx_sandbox_outs_pop(sb, 1);
  return NX_MP_OK;
}

static void pack_number(nx_buf_t *b, double d) {
  /* msgpackr's rule, so both sides agree: integers in [-2^31, 2^32) as
   * MessagePack integers (read back as numbers), everything else, -0
   * included, as float64. */
  if (d >= -2147483648.0 && d <= 4294967295.0 && d == floor(d) && !(d == 0 && signbit(d)))
    nx_mp_pack_int(b, (int64_t)d);
  else
    nx_mp_pack_double(b, d);
}

static void pack_timestamp(nx_buf_t *out, double ms) {
  double secf = floor(ms / 1000.0);
  int64_t sec = (int64_t)secf;
  uint32_t nsec = (uint32_t)llround((ms - secf * 1000.0) * 1e6);
  uint8_t b[12];
  int i;

  if (nsec >= 1000000000u) nsec = 999999999u;
  if (nsec == 0 && sec >= 0 && sec <= UINT32_MAX) {
    for (i = 0; i < 4; i++) b[i] = (uint8_t)((uint64_t)sec >> (24 - 8 * i));
    nx_mp_pack_ext_header(out, 4, NX_MP_EXT_TIMESTAMP);
    nx_buf_write(out, b, 4);
  } else if (sec >= 0 && sec < (1ll << 34)) {
    uint64_t v = ((uint64_t)nsec << 34) | (uint64_t)sec;
    for (i = 0; i < 8; i++) b[i] = (uint8_t)(v >> (56 - 8 * i));
    nx_mp_pack_ext_header(out, 8, NX_MP_EXT_TIMESTAMP);
    nx_buf_write(out, b, 8);
  } else {
    for (i = 0; i < 4; i++) b[i] = (uint8_t)(nsec >> (24 - 8 * i));
    for (i = 0; i < 8; i++) b[4 + i] = (uint8_t)((uint64_t)sec >> (56 - 8 * i));
    nx_mp_pack_ext_header(out, 12, NX_MP_EXT_TIMESTAMP);
    nx_buf_write(out, b, 12);
  }
}

static nx_mp_status_t encode_bigint(nx_mp_encoder_t *e, nx_jsval_t v) {
  nx_sandbox_t *sb = e->sb;
  nx_wasm_instance_t *in = &sb->inst;
  uint32_t slot = nx_sandbox_outs_push(sb, 1);
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
      nx_sandbox_outs_pop(sb, 1);
      nx_mp_pack_int64_fixed(e->out, (int64_t)raw); /* 9 bytes: msgpackr reads BigInt */
      return NX_MP_OK;
    }
    back = Q(JS_NewBigUint64)(in, sb->ctx, raw);
    same = (int)Q(JS_IsStrictEqual)(in, sb->ctx, v, back);
    nx_sandbox_free_value(sb, back);
    if (same) {
      nx_sandbox_outs_pop(sb, 1);
      nx_mp_pack_uint64_fixed(e->out, raw);
      return NX_MP_OK;
    }
  }
  nx_sandbox_outs_pop(sb, 1);
  return uncrossable(e, "is a BigInt outside the 64-bit range");
}

static nx_mp_status_t encode_bytes(nx_mp_encoder_t *e, nx_jsval_t abuf, uint32_t offset,
                                   uint32_t length, int code) {
  nx_sandbox_t *sb = e->sb;
  uint32_t slot = nx_sandbox_outs_push(sb, 1), size = 0, ptr;
  uint8_t *bytes = NULL;
  uint8_t c = (uint8_t)code;

  if (slot == 0) return NX_MP_GUEST;
  ptr = Q(JS_GetArrayBuffer)(&sb->inst, sb->ctx, slot, abuf);
  nx_guest_read_u32(&sb->inst, slot, &size);
  nx_sandbox_outs_pop(sb, 1);
  if (ptr == 0 && size == 0 && length == 0)
    bytes = (uint8_t *)"";
  else if (ptr != 0 && (uint64_t)offset + length <= size)
    bytes = nx_guest_bytes(&sb->inst, ptr + offset, length);
  if (bytes == NULL) {
    if (Q(JS_HasException)(&sb->inst, sb->ctx)) return NX_MP_GUEST;
    return uncrossable(e, "is a detached or invalid buffer");
  }
  nx_mp_pack_ext_header(e->out, (size_t)length + 1, NX_MP_EXT_TYPED);
  nx_buf_write(e->out, &c, 1);
  nx_buf_write(e->out, bytes, length);
  return NX_MP_OK;
}

/* Own property `atom` of an ordinary object, read without running guest
 * code: 1 with *out (a new reference) for a data property, 0 when there is
 * none, NX_MP_IMPURE for an accessor, NX_MP_GUEST on an exception. */
static int own_data(nx_mp_encoder_t *e, nx_jsval_t obj, uint32_t atom, nx_jsval_t *out) {
  nx_sandbox_t *sb = e->sb;
  nx_wasm_instance_t *in = &sb->inst;
  uint32_t desc = nx_sandbox_outs_push(sb, NX_DESC_SIZE / 8), flags = 0;
  nx_jsval_t getter = NX_UNDEFINED, setter = NX_UNDEFINED;
  int32_t r;

  *out = NX_UNDEFINED;
  if (desc == 0) return NX_MP_GUEST;
  r = (int32_t)Q(JS_GetOwnProperty)(in, sb->ctx, desc, obj, atom);
  if (r > 0 && (nx_guest_read_u32(in, desc, &flags) != 0 ||
                nx_guest_read_u64(in, desc + NX_DESC_VALUE, out) != 0 ||
                nx_guest_read_u64(in, desc + NX_DESC_GETTER, &getter) != 0 ||
                nx_guest_read_u64(in, desc + NX_DESC_SETTER, &setter) != 0))
    r = -1;
  nx_sandbox_outs_pop(sb, NX_DESC_SIZE / 8);
  if (r < 0) return NX_MP_GUEST;
  if (r == 0) return 0;
  if ((flags & NX_PROP_TMASK) == NX_PROP_GETSET) {
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
  uint32_t slot = nx_sandbox_outs_push(sb, 1);
  uint64_t len = 0, i;
  nx_mp_status_t st = NX_MP_OK;

  if (slot == 0) return NX_MP_GUEST;
  /* An Array's length is an own data property: reading it runs nothing. */
  if ((int32_t)Q(JS_GetLength)(&sb->inst, sb->ctx, v, slot) < 0 ||
      nx_guest_read_u64(&sb->inst, slot, &len) != 0) {
    nx_sandbox_outs_pop(sb, 1);
    return NX_MP_GUEST;
  }
  nx_sandbox_outs_pop(sb, 1);
  if (len >= NX_ATOM_MAX_INT) return uncrossable(e, "is an array too long to encode");
  nx_mp_pack_array(e->out, (size_t)len);
  for (i = 0; i < len && st == NX_MP_OK; i++) {
    uint32_t mark = nx_path_index(&e->path, i);
    /* Holes read as undefined, never through Array.prototype. */
    st = encode_own(e, v, NX_ATOM_TAG_INT | (uint32_t)i);
    if (st == NX_MP_OK) nx_path_pop(&e->path, mark);
  }
  return st;
}

static nx_mp_status_t encode_object_props(nx_mp_encoder_t *e, nx_jsval_t v) {
  nx_sandbox_t *sb = e->sb;
  nx_wasm_instance_t *in = &sb->inst;
  uint32_t slots = nx_sandbox_outs_push(sb, 2), tab = 0, len = 0, i;
  nx_mp_status_t st = NX_MP_OK;

  if (slots == 0) return NX_MP_GUEST;
  if ((int32_t)Q(JS_GetOwnPropertyNames)(in, sb->ctx, slots, slots + 8, v,
                                         NX_GPN_STRING_MASK | NX_GPN_ENUM_ONLY) < 0 ||
      nx_guest_read_u32(in, slots, &tab) != 0 || nx_guest_read_u32(in, slots + 8, &len) != 0 ||
      (len && nx_guest_bytes(in, tab, (uint64_t)len * NX_PROPENUM_SIZE) == NULL)) {
    nx_sandbox_outs_pop(sb, 2);
    return NX_MP_GUEST;
  }
  /* The table stays put in guest memory until freed (no guest code runs
   * meanwhile), so the slots can go before recursing: nesting then costs
   * no scratch slots at all. */
  nx_sandbox_outs_pop(sb, 2);
  nx_mp_pack_map(e->out, len);
  for (i = 0; i < len && st == NX_MP_OK; i++) {
    uint32_t atom = 0, kptr, klen = 0, mark, lenslot;
    uint8_t *kbytes;

    nx_guest_read_u32(in, tab + i * NX_PROPENUM_SIZE + NX_PROPENUM_ATOM, &atom);
    lenslot = nx_sandbox_outs_push(sb, 1);
    kptr = lenslot ? Q(JS_AtomToCStringLen)(in, sb->ctx, lenslot, atom) : 0;
    if (kptr == 0 || nx_guest_read_u32(in, lenslot, &klen) != 0 ||
        (kbytes = nx_guest_bytes(in, kptr, klen)) == NULL) {
      if (kptr) Q(JS_FreeCString)(in, sb->ctx, kptr);
      if (lenslot) nx_sandbox_outs_pop(sb, 1);
      st = NX_MP_GUEST;
      break;
    }
    nx_sandbox_outs_pop(sb, 1);
    nx_mp_pack_str_header(e->out, klen);
    pack_utf8_body(e->out, kbytes, klen);
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
  pack_timestamp(e->out, ms);
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
  if (e->depth >= NX_MP_MAX_DEPTH)
    return uncrossable(e, "is nested too deeply (over 256 levels)"); /* NX_MP_MAX_DEPTH */
  /* Reading a Proxy runs its traps, unless it is one the hook reads
   * natively; an Error's name is inherited. */
  if (Q(JS_IsProxy)(in, v)) {
    if (e->proxy == NULL) return NX_MP_IMPURE;
    e->visiting[e->depth++] = id;
    st = e->proxy(e, v);
    e->depth--;
    return st;
  }
  if (Q(JS_IsError)(in, v)) return NX_MP_IMPURE;

  if (Q(JS_IsArray)(in, v)) {
    e->visiting[e->depth++] = id;
    st = encode_array(e, v);
    e->depth--;
    return st;
  }
  if (Q(JS_IsDate)(in, v)) return encode_date(e, v);
  ta = (int32_t)Q(JS_GetTypedArrayType)(in, v);
  if (ta >= 0) {
    uint32_t slots = nx_sandbox_outs_push(sb, 3), off = 0, len = 0;
    nx_jsval_t abuf;
    if (slots == 0) return NX_MP_GUEST;
    if (ta > 11 || nx_mp_qjs_to_code[ta] < 0) {
      nx_sandbox_outs_pop(sb, 3);
      return uncrossable(e, "is a Float16Array");
    }
    abuf = Q(JS_GetTypedArrayBuffer)(in, sb->ctx, v, slots, slots + 8, slots + 16);
    nx_guest_read_u32(in, slots, &off);
    nx_guest_read_u32(in, slots + 8, &len);
    nx_sandbox_outs_pop(sb, 3);
    if (nx_jsval_tag(abuf) == NX_TAG_EXCEPTION) {
      /* Its only failure is a detached or shrunk buffer ("TypeError: ...
       * detached or resized"); say which value, like every other refusal. */
      nx_sandbox_drop_exception(sb);
      return uncrossable(e, "is a detached or invalid buffer");
    }
    st = encode_bytes(e, abuf, off, len, nx_mp_qjs_to_code[ta]);
    nx_sandbox_free_value(sb, abuf);
    return st;
  }
  if (Q(JS_IsArrayBuffer)(in, v)) {
    uint32_t slot = nx_sandbox_outs_push(sb, 1), size = 0;
    if (slot == 0) return NX_MP_GUEST;
    Q(JS_GetArrayBuffer)(in, sb->ctx, slot, v);
    nx_guest_read_u32(in, slot, &size);
    nx_sandbox_outs_pop(sb, 1);
    return encode_bytes(e, v, 0, size, NX_MP_TYPED_ARRAYBUFFER);
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
    case NX_TAG_INT: nx_mp_pack_int(e->out, nx_jsval_int(v)); return NX_MP_OK;
    case NX_TAG_BOOL: nx_mp_pack_bool(e->out, nx_jsval_int(v)); return NX_MP_OK;
    case NX_TAG_NULL: nx_mp_pack_nil(e->out); return NX_MP_OK;
    case NX_TAG_UNDEFINED:
      nx_mp_pack_ext_header(e->out, 1, NX_MP_EXT_UNDEFINED);
      nx_buf_write(e->out, "\0", 1);
      return NX_MP_OK;
    case NX_TAG_FLOAT64: pack_number(e->out, nx_jsval_float64(v)); return NX_MP_OK;
    case NX_TAG_STRING:
    case NX_TAG_STRING_ROPE:
      st = nx_mp_pack_guest_string(e->sb, e->out, v);
      return st == NX_MP_OK && e->out->refused ? refused(e) : st;
    case NX_TAG_SHORT_BIG_INT:
    case NX_TAG_BIG_INT: return encode_bigint(e, v);
    case NX_TAG_SYMBOL: return uncrossable(e, "is a Symbol");
    case NX_TAG_OBJECT: return encode_object(e, v);
    default: return uncrossable(e, "is not a JavaScript value");
  }
}

nx_mp_status_t nx_mp_encode_child(nx_mp_encoder_t *e, nx_jsval_t v) { return encode_value(e, v); }

nx_mp_status_t nx_mp_encode_own(nx_mp_encoder_t *e, nx_jsval_t obj, uint32_t atom) {
  return encode_own(e, obj, atom);
}

void nx_mp_encode_raw(nx_mp_encoder_t *e, const uint8_t *bytes, size_t len) {
  nx_buf_write(e->out, bytes, len);
}

nx_mp_status_t nx_mp_encode(nx_mp_encoder_t *e, nx_jsval_t v) {
  nx_mp_status_t st = encode_value(e, v);
  if (st == NX_MP_OK && e->out->refused) st = refused(e);
  return st;
}

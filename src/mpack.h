/* The MessagePack bridge: host MessagePack (as msgpackr writes it) straight
 * into guest values, and guest values straight back into MessagePack (as
 * msgpackr reads it). docs/marshaling.md lists every type mapping. */
#ifndef NX_MPACK_H
#define NX_MPACK_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "contract.h"
#include "sandbox.h"

/* Nesting of a value leaving the sandbox (contract: limits.guestDepth). */
#define NX_MP_MAX_DEPTH NX_LIMIT_GUEST_DEPTH

/* msgpackr's extension types (moreTypes), both directions: undefined,
 * timestamps, and typed arrays as a msgpackr type code byte + the bytes. */
#define NX_MP_EXT_UNDEFINED 0
#define NX_MP_EXT_TIMESTAMP (-1)
#define NX_MP_EXT_TYPED 0x74
#define NX_MP_TYPED_ARRAYBUFFER 16
/* msgpackr typed-array codes -> quickjs-ng JSTypedArrayEnum, and back. */
extern const int8_t nx_mp_code_to_qjs[11];
extern const int8_t nx_mp_qjs_to_code[12];

/* Where in a value we are, for error messages: "events[2].payload.a[0]". */
typedef struct {
  char buf[240];
  uint32_t len;
} nx_path_t;

void nx_path_set(nx_path_t *p, const char *root);
uint32_t nx_path_key(nx_path_t *p, const char *key, size_t len);
uint32_t nx_path_index(nx_path_t *p, uint64_t index);
static inline void nx_path_pop(nx_path_t *p, uint32_t mark) {
  p->len = mark;
  p->buf[mark] = 0;
}

typedef enum {
  NX_MP_OK = 0,
  NX_MP_UNCROSSABLE = -1, /* the value cannot cross; message in err */
  NX_MP_GUEST = -2,       /* the guest threw (out of memory, interrupted) */
  NX_MP_IMPURE = -3,      /* reading it would run guest code (a Proxy, an
                           * accessor, an Error): copy it in the guest first */
  NX_MP_LIMIT = -4,       /* the output's budget ran out; err holds the path */
  NX_MP_NOMEM = -5,       /* host memory ran out; err holds the path */
} nx_mp_status_t;

/* Checks that bytes are exactly one well-formed MessagePack value nested at
 * most max_depth containers deep, and that no declared length or count
 * exceeds the bytes left. Untrusted bytes pass here before anything below
 * reads them. */
int nx_mp_validate(const uint8_t *buf, size_t len, uint32_t max_depth);
/* The same for the one value at the start of buf, which may be followed by
 * more bytes: its length, or 0 when it is malformed. */
size_t nx_mp_validate_one(const uint8_t *buf, size_t len, uint32_t max_depth);

/* ---- writing (mpack_pack.c) -----------------------------------------------
 * Appends to a budgeted buffer; a refused write leaves the buffer's sticky
 * `refused` set, which callers check once at the end. Widths are the
 * smallest that fit, and integers >= 0 use the unsigned forms. */
void nx_mp_pack_nil(nx_buf_t *b);
void nx_mp_pack_bool(nx_buf_t *b, int v);
void nx_mp_pack_int(nx_buf_t *b, int64_t v);
void nx_mp_pack_uint(nx_buf_t *b, uint64_t v);
/* Always 9 bytes (int 64, uint 64): msgpackr reads these as BigInt. */
void nx_mp_pack_int64_fixed(nx_buf_t *b, int64_t v);
void nx_mp_pack_uint64_fixed(nx_buf_t *b, uint64_t v);
void nx_mp_pack_double(nx_buf_t *b, double d); /* always float 64 */
void nx_mp_pack_str_header(nx_buf_t *b, size_t len);
void nx_mp_pack_str(nx_buf_t *b, const void *s, size_t len);
void nx_mp_pack_bin(nx_buf_t *b, const void *p, size_t len);
/* The payload (len bytes) follows through nx_buf_write(). */
void nx_mp_pack_ext_header(nx_buf_t *b, size_t len, int8_t type);
void nx_mp_pack_array(nx_buf_t *b, size_t n);
void nx_mp_pack_map(nx_buf_t *b, size_t n);

/* ---- reading validated bytes ----------------------------------------------
 * A cursor over MessagePack that nx_mp_validate*() accepted: no tree is
 * built, so a context is only read as far as a handler looks into it. */
typedef enum {
  NX_MPT_NIL,
  NX_MPT_BOOL,
  NX_MPT_UINT,
  NX_MPT_INT, /* negative */
  NX_MPT_FLOAT,
  NX_MPT_STR,
  NX_MPT_BIN,
  NX_MPT_EXT,
  NX_MPT_ARRAY,
  NX_MPT_MAP,
} nx_mp_type_t;

typedef struct {
  nx_mp_type_t type;
  int8_t ext;         /* NX_MPT_EXT: its type */
  uint32_t size;      /* STR, BIN, EXT: payload bytes; ARRAY, MAP: items */
  const uint8_t *ptr; /* STR, BIN, EXT: the payload */
  union {
    int boolean;
    uint64_t u64;
    int64_t i64;
    double f64;
  } v;
} nx_mp_item_t;

/* Reads one header (and a scalar's payload); returns where the next value,
 * or a container's first item, starts. */
const uint8_t *nx_mp_read(const uint8_t *p, nx_mp_item_t *it);
/* Steps over one whole value. */
const uint8_t *nx_mp_skip(const uint8_t *p);
/* The header of an array or map at p, read within len bytes and nothing
 * after it: its item count, whether it is a map, and the header's size in
 * bytes; 0 when p does not start one. */
size_t nx_mp_container_head(const uint8_t *p, size_t len, uint32_t *n, int *is_map);

/* Validated MessagePack into new guest values. With `lazy` set, a
 * container of more than NX_MP_LAZY_MIN items is handed to it instead
 * (state.c makes it a lazily decoded Proxy): `at` is its first byte. */
#define NX_MP_LAZY_MIN 64
typedef struct nx_mp_decoder_s nx_mp_decoder_t;
struct nx_mp_decoder_s {
  nx_sandbox_t *sb;
  nx_path_t path;
  char err[320];
  nx_mp_status_t (*lazy)(nx_mp_decoder_t *d, const uint8_t *at, nx_jsval_t *out);
  void *lazy_data;
};

void nx_mp_decoder_init(nx_mp_decoder_t *d, nx_sandbox_t *sb, const char *root);
/* Decodes the value at *p into a new guest value (owned by the caller) and
 * moves *p past it. */
nx_mp_status_t nx_mp_decode(nx_mp_decoder_t *d, const uint8_t **p, nx_jsval_t *out);
/* The same for a value nothing follows: a lazy container is not stepped
 * over, which would read all of it. */
nx_mp_status_t nx_mp_decode_last(nx_mp_decoder_t *d, const uint8_t *p, nx_jsval_t *out);
/* A map key as the guest names it: strings as they are, integers in
 * decimal (into num, 24 bytes). 0, or -1 for any other key. */
int nx_mp_key_name(const nx_mp_item_t *key, char *num, const char **name, size_t *len);

/* Encodes guest values without running guest code (see mpack.c). */
typedef struct nx_mp_encoder_s nx_mp_encoder_t;
struct nx_mp_encoder_s {
  nx_sandbox_t *sb;
  nx_buf_t *out;
  nx_path_t path;
  uint32_t visiting[NX_MP_MAX_DEPTH]; /* objects on the current path */
  uint32_t depth;
  char err[320];
  /* Asked first about every Proxy: encodes the ones it knows (state.c's
   * lazy containers) and answers NX_MP_IMPURE for the rest. */
  nx_mp_status_t (*proxy)(nx_mp_encoder_t *e, nx_jsval_t v);
  void *proxy_data;
};
/* For the proxy hook: one nested value, and bytes written as they are. */
nx_mp_status_t nx_mp_encode_child(nx_mp_encoder_t *e, nx_jsval_t v);
/* Own data property `atom` of obj (an accessor is NX_MP_IMPURE). */
nx_mp_status_t nx_mp_encode_own(nx_mp_encoder_t *e, nx_jsval_t obj, uint32_t atom);
void nx_mp_encode_raw(nx_mp_encoder_t *e, const uint8_t *bytes, size_t len);

void nx_mp_encoder_init(nx_mp_encoder_t *e, nx_sandbox_t *sb, nx_buf_t *out, const char *root);
nx_mp_status_t nx_mp_encode(nx_mp_encoder_t *e, nx_jsval_t v);

/* Writes a guest string primitive as UTF-8 (lone surrogates become U+FFFD);
 * NX_MP_UNCROSSABLE for anything that is not a string. */
nx_mp_status_t nx_mp_pack_guest_string(nx_sandbox_t *sb, nx_buf_t *out, nx_jsval_t v);

/* Structural equality of two validated MessagePack values, comparing
 * numbers by value (msgpackr and we may pick different widths for the same
 * number). */
int nx_mp_equal(const uint8_t *a, const uint8_t *b);

#endif

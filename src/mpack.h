/* The MessagePack bridge: host MessagePack (as msgpackr writes it) straight
 * into guest values, and guest values straight back into MessagePack (as
 * msgpackr reads it). docs/marshaling.md lists every type mapping. */
#ifndef NX_MPACK_H
#define NX_MPACK_H

#include <msgpack.h>
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
 * exceeds the bytes left. msgpack-c allocates for a container's declared
 * count before reading it, so untrusted bytes pass here first. */
int nx_mp_validate(const uint8_t *buf, size_t len, uint32_t max_depth);

/* Decodes a MessagePack object into a new guest value (owned by caller). */
nx_mp_status_t nx_mp_decode(nx_sandbox_t *sb, const msgpack_object *o, nx_jsval_t *out,
                            nx_path_t *path, char *err, size_t errlen);

/* Encodes guest values without running guest code (see mpack.c). */
typedef struct {
  nx_sandbox_t *sb;
  nx_buf_t *out;
  msgpack_packer pk; /* into out */
  nx_path_t path;
  uint32_t visiting[NX_MP_MAX_DEPTH]; /* objects on the current path */
  uint32_t depth;
  char err[320];
} nx_mp_encoder_t;

void nx_mp_encoder_init(nx_mp_encoder_t *e, nx_sandbox_t *sb, nx_buf_t *out, const char *root);
nx_mp_status_t nx_mp_encode(nx_mp_encoder_t *e, nx_jsval_t v);

/* Writes a guest string primitive as UTF-8 (lone surrogates become U+FFFD);
 * NX_MP_UNCROSSABLE for anything that is not a string. */
nx_mp_status_t nx_mp_pack_guest_string(nx_sandbox_t *sb, msgpack_packer *pk, nx_jsval_t v);

/* Structural equality of two MessagePack objects, comparing numbers by
 * value (msgpackr and we may pick different widths for the same number). */
int nx_mp_equal(const msgpack_object *a, const msgpack_object *b);

#endif

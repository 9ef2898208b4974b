/* Lazily decoded state: a large array or map read from $state reaches the
 * guest as a Proxy over an empty target, and each item is decoded from the
 * context's MessagePack the first time the handler touches it. The host
 * keeps the bytes; the bootstrap keeps the traps (bootstrap.js, lazy()). */
#ifndef NX_LAZY_H
#define NX_LAZY_H

#include <stdint.h>

#include "buf.h"
#include "mpack.h"

typedef struct nx_exec_s nx_exec_t;

/* One container: its bytes, and which items the guest has by now. */
typedef struct {
  const uint8_t *at, *end; /* first byte; end once known, else NULL */
  uint32_t n;              /* items */
  uint8_t is_map, filled;  /* filled: every item is on the target */
  uint8_t checked;         /* the items passed the validator (see nx_lazy_root) */
  uint8_t impure;          /* an item needs guest code to read (encode_node) */
  uint8_t *valid;          /* not checked: per item, once it passed */
  const uint8_t *offsets;  /* the host's item offsets (nx_lazy_root), or NULL */
  uint32_t noffsets;
  const uint8_t **items; /* item i's first byte (a map's: its key); [n] = end */
  uint8_t *fetched;      /* per item, once indexed */
  uint32_t *keys;        /* maps: open addressing over items, position + 1 */
  uint32_t keys_cap;
  nx_jsval_t proxy, target; /* held for the execution: identity for the encoder */
  nx_path_t path;
} nx_lazy_t;

typedef struct {
  nx_lazy_t *nodes;
  uint32_t n, cap;
  uint32_t *by_proxy; /* open addressing over nodes by proxy pointer, position + 1 */
  uint32_t by_proxy_cap;
} nx_lazy_table_t;

/* Prepares d so that large containers it meets become lazy nodes. `end`
 * is where the value being decoded ends, when the caller knows it. */
void nx_lazy_decoder(nx_exec_t *ex, nx_mp_decoder_t *d);
/* The decoder hook itself (d->lazy). */
nx_mp_status_t nx_lazy_make(nx_mp_decoder_t *d, const uint8_t *at, nx_jsval_t *out);
/* A top-level state value that is a large container, straight from the
 * host's bytes [at, end): only its header has been checked, and each item
 * is validated as the node is indexed, so reading one item of a large
 * state never walks the rest twice. With the host's item offsets (`n`
 * little-endian u32, from createState) it is not walked at all: each item
 * is validated when the guest or the encoder first needs it.
 * NX_MP_LAZY_MIN < items required. */
nx_mp_status_t nx_lazy_root(nx_exec_t *ex, nx_mp_decoder_t *d, const uint8_t *at,
                            const uint8_t *end, const uint8_t *offsets, uint32_t n,
                            nx_jsval_t *out);
/* 1 when v is a node not filled whose fetched items all still equal their
 * original bytes: then it is unchanged, at the cost of what was fetched.
 * 0 when it changed or cannot tell. */
int nx_lazy_unchanged(nx_exec_t *ex, nx_jsval_t v);
/* Lets the encoder read lazy nodes without running their traps. */
void nx_lazy_encoder(nx_exec_t *ex, nx_mp_encoder_t *e);

/* The bootstrap's host functions: lazyGet(id, key) defines item `key` on
 * the target and answers whether there was one; lazyHas(id, key) answers
 * without decoding; lazyFill(id) defines every item, in order. Each returns
 * a boxed value, or 0 with an exception pending. */
uint32_t nx_lazy_get(nx_exec_t *ex, nx_jsval_t id, nx_jsval_t key);
uint32_t nx_lazy_has(nx_exec_t *ex, nx_jsval_t id, nx_jsval_t key);
uint32_t nx_lazy_fill(nx_exec_t *ex, nx_jsval_t id);
/* kind() for copy(): a node not yet filled is read by the encoder as it
 * is (1); a filled one, or one with an item only guest code can read, is
 * copied through its traps (0); -1 when v is not a lazy node. */
int nx_lazy_kind(nx_exec_t *ex, nx_jsval_t v);

/* A parked execution's nodes, for portable.h. Restoring needs the state
 * table restored first; every position is checked against the context and
 * every container's bytes validated again (a node's own items lazily, as
 * before). 0, or NX_RC_INVALID / NX_RC_NOMEM. */
struct nx_wire_rd_s;
int nx_lazy_save(const nx_exec_t *ex, nx_buf_t *out);
int nx_lazy_restore(nx_exec_t *ex, struct nx_wire_rd_s *in);

#endif

/* $state: the table of top-level keys one execution sees, decoded into the
 * guest lazily; at the end of a segment, what changed (explicit writes and
 * in-place changes to objects read), encoded as the result's
 * stateMutations; and across suspensions, the baselines later segments
 * compare against. */
#ifndef NX_STATE_H
#define NX_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "guest.h"

typedef struct nx_exec_s nx_exec_t;

typedef struct {
  const char *name; /* in the context, or the execution's memory */
  uint32_t len;
  const uint8_t *orig; /* the host's value (MessagePack), or NULL */
  uint32_t orig_len;
  uint8_t checked; /* orig passed the validator */
  /* From createState, for a large array or map: where each item starts,
   * as little-endian u32 offsets into orig (lib/state.js). */
  const uint8_t *item_offsets;
  uint32_t nitem_offsets;
  nx_jsval_t value; /* guest value once loaded or set */
  uint8_t loaded, read, deleted;
  int32_t change;   /* position in the change order, or -1 */
  uint32_t version; /* bumped by every write and delete */
  /* At the end of a segment: the value's encoding as of snap_version. */
  nx_buf_t snap;
  uint32_t snap_version;
  uint8_t snapped, inplace; /* inplace: a read object changed in place */
  /* What the host was last told, once a suspended result reported this
   * key (before that, `orig` is the baseline). */
  uint8_t *base;
  size_t base_len;
  uint8_t has_base;
} nx_state_key_t;

typedef struct {
  /* The context's stateSnapshot map, not validated yet: only the values a
   * handler reads are. The optional index (from runtime.createState) gives
   * each key's offsets, so even the keys need not be walked. */
  const uint8_t *snapshot;
  size_t snapshot_len;
  const uint8_t *offsets;
  size_t offsets_len;
  const uint8_t *items; /* per key: u32 count, then that many item offsets */
  size_t items_len;
  nx_state_key_t *keys;
  uint32_t nkeys, cap;
  uint32_t nsnap;  /* keys [0, nsnap) are the snapshot's, in its order */
  uint32_t *index; /* open addressing over keys, position + 1 */
  uint32_t index_cap;
  uint32_t nchanges;
} nx_state_t;

/* What a malformed stateSnapshot (bytes or offsets) is reported as. */
#define NX_STATE_MALFORMED "context.stateSnapshot is not a valid MessagePack map"

/* Builds the table on first use. 0, NX_RC_NOMEM, or NX_RC_INVALID when
 * the snapshot is malformed. */
int nx_state_prepare(nx_exec_t *ex);
nx_state_key_t *nx_state_find(nx_exec_t *ex, const char *name, size_t len);
/* A new key the handler writes; NULL when memory ran out. */
nx_state_key_t *nx_state_add(nx_exec_t *ex, const char *name, size_t len);
int nx_state_exists(const nx_state_key_t *k);
/* A new reference to the key's value, decoded on first read (no guest
 * code runs). 0, or a negative nx_rc_t with the guest's exception pending. */
int nx_state_load(nx_exec_t *ex, nx_state_key_t *k, nx_jsval_t *out);
void nx_state_set(nx_exec_t *ex, nx_state_key_t *k, nx_jsval_t value);
void nx_state_delete(nx_exec_t *ex, nx_state_key_t *k);

/* At the end of a segment: takes every value the result needs (may run
 * guest code through copies; the table may grow meanwhile). 0, or a
 * negative nx_rc_t with the segment's failure set. */
int nx_state_snapshot(nx_exec_t *ex);
/* Writes stateMutations into `out` from the snapshots. With `remember` (a
 * suspension) the reported values become the baselines of later segments. */
int nx_state_mutations(nx_exec_t *ex, nx_buf_t *out, int remember);
/* Drops the segment's snapshots. */
void nx_state_end_segment(nx_exec_t *ex);

/* A parked execution's table, for portable.h: what each key holds besides
 * what the context gives again (the keys the handler added, values,
 * flags, baselines). Restoring rebuilds the table from the context first;
 * a key marked validated is validated again. 0, or NX_RC_INVALID /
 * NX_RC_NOMEM. */
struct nx_wire_rd_s;
void nx_state_save(const nx_exec_t *ex, nx_buf_t *out);
int nx_state_restore(nx_exec_t *ex, struct nx_wire_rd_s *in);

#endif

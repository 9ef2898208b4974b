/* $state (see state.h): an open-addressing table over the snapshot's
 * top-level keys, lazy decoding into the guest, and what changed at the
 * end of a segment. Nothing here keeps a pointer into the table across a
 * call that can run guest code: copies of impure values run getters, which
 * may add keys and make the table move. */
#include "state.h"

#include <stdio.h>
#include <string.h>

#include "exec.h"
#include "failure.h"
#include "lazy.h"
#include "mpack.h"
#include "result.h"
#include "util.h"
#include "wire.h"

/* ---- the table ------------------------------------------------------------ */

static int index_rebuild(nx_state_t *st, nx_mem_t *mem, uint32_t cap) {
  uint32_t *index = nx_mem_calloc(mem, cap, sizeof *index), i;
  if (index == NULL) return NX_RC_NOMEM;
  for (i = 0; i < st->nkeys; i++) {
    uint32_t at = nx_util_fnv1a(st->keys[i].name, st->keys[i].len) & (cap - 1);
    while (index[at]) at = (at + 1) & (cap - 1);
    index[at] = i + 1;
  }
  nx_mem_free(mem, st->index);
  st->index = index;
  st->index_cap = cap;
  return NX_RC_OK;
}

static void key_init(nx_exec_t *ex, nx_state_key_t *k) {
  memset(k, 0, sizeof *k);
  k->value = NX_UNDEFINED;
  k->change = -1;
  nx_buf_init(&k->snap, &ex->mem, NULL);
}

static nx_state_key_t *key_push(nx_exec_t *ex, const uint8_t *key, size_t key_len,
                                const uint8_t *value, size_t value_len) {
  nx_state_t *st = &ex->state;
  nx_state_key_t *k = &st->keys[st->nkeys++];
  key_init(ex, k);
  k->name = (const char *)key;
  k->len = (uint32_t)key_len;
  k->orig = value;
  k->orig_len = (uint32_t)value_len;
  return k;
}

/* Header of the snapshot map: its size in bytes, or 0. */
static size_t map_header(const uint8_t *p, size_t len, uint32_t *count) {
  int is_map = 0;
  size_t n = nx_mp_container_head(p, len, count, &is_map);
  return is_map ? n : 0;
}

/* A key: one string, exactly `len` bytes long. */
static int key_at(const uint8_t *p, size_t len, nx_mp_item_t *key) {
  if (nx_mp_validate_one(p, len, 1) != len) return -1;
  nx_mp_read(p, key);
  return key->type == NX_MPT_STR ? 0 : -1;
}

/* Keys from the index lib/state.js wrote: (key, value) offsets per entry,
 * little-endian u32. Each is checked against the bytes, so a wrong index
 * can only be refused; the values are validated when read. */
static int keys_from_index(nx_exec_t *ex, size_t header, uint32_t count) {
  const nx_state_t *st = &ex->state;
  const uint8_t *s = st->snapshot, *x = st->offsets;
  size_t len = st->snapshot_len, prev_end = header;
  uint32_t i;
  size_t at_items = 0;
  if (st->offsets_len != (size_t)count * 8) return -1;
  for (i = 0; i < count; i++) {
    size_t k = nx_util_le32_get(x + 8 * i), v = nx_util_le32_get(x + 8 * i + 4);
    size_t end = i + 1 < count ? nx_util_le32_get(x + 8 * (i + 1)) : len;
    nx_mp_item_t key;
    nx_state_key_t *e;
    if (k != prev_end || v <= k || end <= v || end > len) return -1;
    if (key_at(s + k, v - k, &key) != 0) return -1;
    e = key_push(ex, key.ptr, key.size, s + v, end - v);
    if (st->items) {
      uint32_t c;
      if (st->items_len - at_items < 4) return -1;
      c = nx_util_le32_get(st->items + at_items);
      at_items += 4;
      if ((st->items_len - at_items) / 4 < c) return -1;
      e->item_offsets = st->items + at_items;
      e->nitem_offsets = c;
      at_items += (size_t)c * 4;
    }
    prev_end = end;
  }
  if (st->items && at_items != st->items_len) return -1;
  return prev_end == len ? 0 : -1;
}

/* Without an index every entry is walked (and so validated) once. */
static int keys_by_walking(nx_exec_t *ex, size_t header, uint32_t count) {
  const nx_state_t *st = &ex->state;
  const uint8_t *s = st->snapshot;
  size_t at = header, len = st->snapshot_len;
  uint32_t i;
  for (i = 0; i < count; i++) {
    size_t kn = nx_mp_validate_one(s + at, len - at, 1), vn;
    nx_mp_item_t key;
    if (kn == 0) return -1;
    vn = nx_mp_validate_one(s + at + kn, len - at - kn, NX_LIMIT_HOST_DEPTH - 2);
    if (vn == 0) return -1;
    nx_mp_read(s + at, &key);
    /* lib sends string keys; anything else is left out, as before */
    if (key.type == NX_MPT_STR) {
      nx_state_key_t *k = key_push(ex, key.ptr, key.size, s + at + kn, vn);
      k->checked = 1;
    }
    at += kn + vn;
  }
  return at == len ? 0 : -1;
}

int nx_state_prepare(nx_exec_t *ex) {
  nx_state_t *st = &ex->state;
  uint32_t n = 0, cap = 16;
  size_t header = 0;
  if (st->index) return NX_RC_OK;
  if (st->snapshot) {
    header = map_header(st->snapshot, st->snapshot_len, &n);
    if (header == 0 || n > st->snapshot_len) goto malformed;
  }
  st->cap = n + 8;
  st->keys = nx_mem_alloc(&ex->mem, st->cap * sizeof *st->keys);
  if (st->keys == NULL) return NX_RC_NOMEM;
  if (st->snapshot &&
      (st->offsets ? keys_from_index(ex, header, n) : keys_by_walking(ex, header, n)) != 0)
    goto malformed;
  st->nsnap = st->nkeys;
  while (cap < 2 * st->cap) cap *= 2;
  return index_rebuild(st, &ex->mem, cap);
malformed:
  return NX_RC_INVALID;
}

nx_state_key_t *nx_state_find(nx_exec_t *ex, const char *name, size_t len) {
  nx_state_t *st = &ex->state;
  uint32_t at = nx_util_fnv1a(name, len) & (st->index_cap - 1);
  while (st->index[at]) {
    nx_state_key_t *k = &st->keys[st->index[at] - 1];
    if (k->len == len && (len == 0 || memcmp(k->name, name, len) == 0)) return k;
    at = (at + 1) & (st->index_cap - 1);
  }
  return NULL;
}

nx_state_key_t *nx_state_add(nx_exec_t *ex, const char *name, size_t len) {
  nx_state_t *st = &ex->state;
  nx_state_key_t *k;
  char *copy;
  uint32_t at;
  if (st->nkeys == st->cap) {
    uint32_t cap = st->cap * 2;
    nx_state_key_t *grown = nx_mem_realloc(&ex->mem, st->keys, cap * sizeof *grown);
    if (grown == NULL) return NULL;
    st->keys = grown;
    st->cap = cap;
  }
  if (2 * (st->nkeys + 1) > st->index_cap && index_rebuild(st, &ex->mem, st->index_cap * 2) != 0)
    return NULL;
  copy = nx_mem_strndup(&ex->mem, name, len);
  if (copy == NULL) return NULL;
  k = &st->keys[st->nkeys++];
  key_init(ex, k);
  k->name = copy;
  k->len = (uint32_t)len;
  at = nx_util_fnv1a(copy, len) & (st->index_cap - 1);
  while (st->index[at]) at = (at + 1) & (st->index_cap - 1);
  st->index[at] = st->nkeys;
  return k;
}

/* An array or map header of more than NX_MP_LAZY_MIN items, within len:
 * only a 16- or 32-bit count can say that. */
static int big_container(const uint8_t *p, size_t len) {
  uint32_t n = 0;
  int is_map;
  return nx_mp_container_head(p, len, &n, &is_map) && n > NX_MP_LAZY_MIN && n <= len;
}

int nx_state_exists(const nx_state_key_t *k) { return k && !k->deleted && (k->loaded || k->orig); }

int nx_state_load(nx_exec_t *ex, nx_state_key_t *k, nx_jsval_t *out) {
  nx_sandbox_t *sb = ex->sb;
  if (!nx_state_exists(k)) {
    *out = NX_UNDEFINED;
    return NX_RC_OK;
  }
  if (!k->loaded) {
    /* A large container is validated item by item as the handler reaches
     * its items (lazy.h); any other value whole, now. */
    int lazy_root = !k->checked && big_container(k->orig, k->orig_len);
    nx_mp_decoder_t *dec;
    nx_mp_status_t st;
    if (!k->checked && !lazy_root &&
        nx_mp_validate(k->orig, k->orig_len, NX_LIMIT_HOST_DEPTH - 2) != 0) {
      nx_failure_fatal(sb, NX_E_INTERNAL_ERROR, NX_STATE_MALFORMED);
      return NX_RC_GUEST;
    }
    k->checked = 1;
    dec = nx_mem_alloc(&ex->seg, sizeof *dec);
    if (dec == NULL) {
      Q(JS_ThrowOutOfMemory)(&sb->inst, sb->ctx);
      return NX_RC_GUEST;
    }
    nx_mp_decoder_init(dec, sb, "stateSnapshot");
    nx_path_key(&dec->path, k->name, k->len);
    nx_lazy_decoder(ex, dec);
    st = lazy_root ? nx_lazy_root(ex, dec, k->orig, k->orig + k->orig_len, k->item_offsets,
                                  k->nitem_offsets, &k->value)
                   : nx_mp_decode_last(dec, k->orig, &k->value);
    if (st == NX_MP_UNCROSSABLE) nx_failure_throw(sb, NX_E_EXECUTION_ERROR, 1, dec->err);
    if (st == NX_MP_NOMEM) Q(JS_ThrowOutOfMemory)(&sb->inst, sb->ctx);
    nx_mem_free(&ex->seg, dec);
    if (st != NX_MP_OK) return NX_RC_GUEST;
    k->loaded = 1;
  }
  k->read = 1;
  *out = nx_sandbox_dup_value(sb, k->value);
  return NX_RC_OK;
}

static void mark_changed(nx_exec_t *ex, nx_state_key_t *k) {
  if (k->change < 0) k->change = (int32_t)ex->state.nchanges++;
  k->version++;
}

void nx_state_set(nx_exec_t *ex, nx_state_key_t *k, nx_jsval_t value) {
  if (k->loaded) nx_sandbox_free_value(ex->sb, k->value);
  k->value = nx_sandbox_dup_value(ex->sb, value);
  k->loaded = 1;
  k->deleted = 0;
  mark_changed(ex, k);
}

void nx_state_delete(nx_exec_t *ex, nx_state_key_t *k) {
  if (!nx_state_exists(k)) return;
  if (k->loaded) nx_sandbox_free_value(ex->sb, k->value);
  k->value = NX_UNDEFINED;
  k->loaded = 0;
  k->deleted = 1;
  mark_changed(ex, k);
}

/* ---- the end of a segment ---------------------------------------------------- */

/* Keys whose value goes into the result, or needs a look for in-place
 * changes (objects read from $state). */
static int wanted(const nx_state_key_t *k) {
  if (k->change >= 0) return !k->deleted;
  return k->read && k->loaded && nx_jsval_tag(k->value) == NX_TAG_OBJECT;
}

/* Is the encoded value what the host last saw for this key? */
static int same_as_base(const nx_state_key_t *k, const char *bytes, size_t len) {
  if (k->has_base) return k->base && k->base_len == len && memcmp(k->base, bytes, len) == 0;
  /* A read value was loaded, so its bytes passed the validator. */
  if (k->orig == NULL || len == 0) return 0;
  return nx_mp_equal((const uint8_t *)bytes, k->orig);
}

/* Position of key i in the mutation list if it turns out to be an
 * in-place change (for error paths). */
static uint32_t inplace_index(const nx_state_t *st, uint32_t i) {
  uint32_t j, n = st->nchanges;
  for (j = 0; j < i; j++) n += st->keys[j].inplace;
  return n;
}

/* A read object was changed in place: a write, which needs the write
 * capability like an assignment does. 0 when allowed. */
static int inplace_allowed(nx_exec_t *ex, const nx_state_key_t *k) {
  char msg[320];
  int n = (int)(k->len > 120 ? 120 : k->len);
  if (nx_caps_allows(&ex->caps, NX_CAP_STATE_WRITE, k->name, k->len)) return NX_RC_OK;
  snprintf(msg, sizeof msg,
           "Permission denied: $state.%.*s was changed in place without capability "
           "state:write:%.*s",
           n, k->name, n, k->name);
  nx_failure_set(ex, NX_E_PERMISSION_DENIED, msg);
  return NX_RC_INVALID;
}

/* Takes key i's snapshot. An explicit write is charged to the result
 * budget; a read object is encoded against a budget of its own (what the
 * result has left, or its baseline's size if that is more: an unchanged
 * value must always fit) and charged only if it changed. The encoding goes
 * to a local buffer: the copy may move the table. */
static int snapshot_key(nx_exec_t *ex, uint32_t i) {
  nx_sandbox_t *sb = ex->sb;
  nx_state_key_t *k = &ex->state.keys[i];
  int changed = k->change >= 0, rc;
  nx_budget_t own = {0, 0};
  nx_buf_t tmp;
  nx_jsval_t v;
  char path[64];

  k->snapped = 1;
  k->snap_version = k->version;
  k->inplace = 0;
  nx_buf_free(&k->snap);
  if (changed) {
    snprintf(path, sizeof path, "stateMutations[%d].value", k->change);
    nx_buf_init(&tmp, &ex->mem, &ex->budget);
  } else {
    uint64_t left = ex->budget.limit - ex->budget.used;
    uint64_t base = k->has_base ? k->base_len : k->orig ? k->orig_len : 0;
    own.limit = (left > base ? left : base) + 1;
    snprintf(path, sizeof path, "stateMutations[%u].value", inplace_index(&ex->state, i));
    nx_buf_init(&tmp, &ex->mem, &own);
  }
  /* A large container read lazily changed only if an item the handler
   * fetched did: that check costs what the handler touched. */
  if (!changed && !k->has_base && nx_lazy_unchanged(ex, k->value)) {
    if (tmp.budget == &own) tmp.budget = NULL;
    nx_buf_free(&tmp);
    return NX_RC_OK;
  }
  v = nx_sandbox_dup_value(sb, k->value);
  rc = nx_result_encode(ex, v, &tmp, path); /* may run guest code */
  nx_sandbox_free_value(sb, v);
  k = &ex->state.keys[i];
  if (!changed && (rc != 0 || !same_as_base(k, tmp.data, tmp.size))) {
    if (inplace_allowed(ex, k) != 0) {
      rc = NX_RC_INVALID;
    } else if (rc == 0 && tmp.size > ex->budget.limit - ex->budget.used) {
      nx_failure_result_limit(ex, path);
      rc = NX_RC_INVALID;
    } else if (rc == 0) {
      k->inplace = 1;
      ex->budget.used += tmp.size;
      tmp.budget = &ex->budget;
    }
  }
  if (rc == 0 && (changed || k->inplace)) {
    k->snap = tmp;
  } else {
    if (tmp.budget == &own) tmp.budget = NULL; /* dies with this frame */
    nx_buf_free(&tmp);
  }
  return rc;
}

/* Getters that run while a value is copied may write $state again: such
 * keys are taken again, until a pass finds nothing new. Each value is
 * taken once per write, so this ends, unless getters keep writing fresh
 * values; the deadline stops that. */
int nx_state_snapshot(nx_exec_t *ex) {
  for (;;) {
    uint32_t i;
    int any = 0;
    for (i = 0; i < ex->state.nkeys; i++) {
      const nx_state_key_t *k = &ex->state.keys[i];
      int rc;
      if (!wanted(k) || (k->snapped && k->snap_version == k->version)) continue;
      any = 1;
      rc = snapshot_key(ex, i);
      if (rc != 0) return rc;
    }
    if (!any) return NX_RC_OK;
    if (nx_util_now_ns() >= atomic_load(&ex->sb->deadline_ns)) {
      nx_failure_timeout(ex);
      return NX_RC_INVALID;
    }
  }
}

/* Explicit writes in order of first change, then in-place changes in key
 * order. */
int nx_state_mutations(nx_exec_t *ex, nx_buf_t *out, int remember) {
  nx_state_t *st = &ex->state;
  uint32_t *order, n = st->nchanges, i;
  order = nx_mem_alloc(&ex->seg, ((size_t)st->nkeys + 1) * sizeof *order);
  if (order == NULL) return NX_RC_NOMEM;
  for (i = 0; i < st->nkeys; i++)
    if (st->keys[i].change >= 0) order[st->keys[i].change] = i;
  for (i = 0; i < st->nkeys; i++)
    if (st->keys[i].change < 0 && st->keys[i].inplace) order[n++] = i;

  nx_mp_pack_array(out, n);
  for (i = 0; i < n; i++) {
    nx_state_key_t *k = &st->keys[order[i]];
    nx_mp_pack_map(out, k->deleted ? 2 : 3);
    nx_mp_pack_str(out, "key", 3);
    nx_mp_pack_str(out, k->name, k->len);
    nx_mp_pack_str(out, "operation", 9);
    if (k->deleted) {
      nx_mp_pack_str(out, "delete", 6);
    } else {
      nx_mp_pack_str(out, "set", 3);
      nx_mp_pack_str(out, "value", 5);
      nx_buf_write(out, k->snap.data, k->snap.size);
    }
    if (remember) {
      nx_mem_free(&ex->mem, k->base);
      k->base = NULL;
      k->base_len = 0;
      if (!k->deleted) k->base = (uint8_t *)nx_buf_take(&k->snap, &k->base_len);
      k->has_base = 1;
    }
  }
  if (remember) {
    for (i = 0; i < st->nkeys; i++) {
      st->keys[i].change = -1;
      st->keys[i].inplace = 0;
    }
    st->nchanges = 0;
  }
  nx_mem_free(&ex->seg, order);
  return out->refused ? NX_RC_NOMEM : NX_RC_OK;
}

void nx_state_end_segment(nx_exec_t *ex) {
  uint32_t i;
  for (i = 0; i < ex->state.nkeys; i++) {
    nx_buf_free(&ex->state.keys[i].snap);
    ex->state.keys[i].snapped = 0;
    ex->state.keys[i].inplace = 0;
  }
}

/* ---- a parked execution, exported (portable.h) ------------------------------ */

enum { KEY_LOADED = 1, KEY_READ = 2, KEY_DELETED = 4, KEY_CHECKED = 8, KEY_HAS_BASE = 16 };

void nx_state_save(const nx_exec_t *ex, nx_buf_t *out) {
  const nx_state_t *st = &ex->state;
  uint32_t i;
  nx_wire_u8(out, st->index != NULL);
  if (st->index == NULL) return; /* never touched: the context says it all */
  nx_wire_u32(out, st->nsnap);
  nx_wire_u32(out, st->nkeys);
  for (i = 0; i < st->nkeys; i++) {
    const nx_state_key_t *k = &st->keys[i];
    nx_wire_u8(out, (uint8_t)((k->loaded ? KEY_LOADED : 0) | (k->read ? KEY_READ : 0) |
                              (k->deleted ? KEY_DELETED : 0) | (k->checked ? KEY_CHECKED : 0) |
                              (k->has_base ? KEY_HAS_BASE : 0)));
    nx_wire_u32(out, k->version);
    nx_wire_u64(out, k->value);
    if (i >= st->nsnap) nx_wire_bytes(out, k->name, k->len);
    if (k->has_base) nx_wire_bytes(out, k->base, k->base ? k->base_len : 0);
  }
}

int nx_state_restore(nx_exec_t *ex, nx_wire_rd_t *in) {
  nx_state_t *st = &ex->state;
  uint32_t nsnap, nkeys, i;
  int rc;
  if (!nx_wire_get_bool(in)) return in->bad ? NX_RC_INVALID : NX_RC_OK;
  nsnap = nx_wire_get_u32(in);
  nkeys = nx_wire_get_u32(in);
  if (in->bad || nkeys < nsnap) return NX_RC_INVALID;
  if ((rc = nx_state_prepare(ex)) != NX_RC_OK) return rc;
  if (st->nsnap != nsnap) return NX_RC_INVALID;
  for (i = 0; i < nkeys; i++) {
    uint8_t flags = nx_wire_get_u8(in);
    uint32_t version = nx_wire_get_u32(in);
    nx_jsval_t value = nx_wire_get_u64(in);
    const uint8_t *name = NULL, *base = NULL;
    size_t name_len = 0, base_len = 0;
    nx_state_key_t *k;
    if (i >= nsnap) name = nx_wire_get_bytes(in, ex->cfg->max_result_bytes, &name_len);
    if (flags & KEY_HAS_BASE) base = nx_wire_get_bytes(in, ex->cfg->max_result_bytes, &base_len);
    if (in->bad || flags >= 32) return NX_RC_INVALID;
    if (i < nsnap) {
      k = &st->keys[i];
    } else {
      if (nx_state_find(ex, (const char *)name, name_len) != NULL) return NX_RC_INVALID;
      if ((k = nx_state_add(ex, (const char *)name, name_len)) == NULL) return NX_RC_NOMEM;
    }
    /* Nothing is taken on trust: the value of a key marked validated,
     * loaded or read is validated again, since the end of a segment
     * compares with it unchecked (same_as_base) and lazy nodes index it. */
    if ((flags & (KEY_CHECKED | KEY_LOADED | KEY_READ)) && !k->checked) {
      if (k->orig && nx_mp_validate(k->orig, k->orig_len, NX_LIMIT_HOST_DEPTH - 2) != 0)
        return NX_RC_INVALID;
      k->checked = 1;
    }
    if ((flags & KEY_LOADED) && (flags & KEY_DELETED)) return NX_RC_INVALID;
    k->loaded = (flags & KEY_LOADED) != 0;
    k->read = (flags & KEY_READ) != 0;
    k->deleted = (flags & KEY_DELETED) != 0;
    k->version = version;
    k->value = k->loaded ? value : NX_UNDEFINED;
    if (flags & KEY_HAS_BASE) {
      if (base_len && nx_mp_validate(base, base_len, NX_LIMIT_HOST_DEPTH) != 0)
        return NX_RC_INVALID;
      k->has_base = 1;
      if (base_len) {
        if ((k->base = nx_mem_alloc(&ex->mem, base_len)) == NULL) return NX_RC_NOMEM;
        memcpy(k->base, base, base_len);
        k->base_len = base_len;
      }
    }
  }
  return NX_RC_OK;
}

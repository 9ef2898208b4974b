/* Lazy state containers (see lazy.h): the node table, indexing a
 * container's items on first touch, the bootstrap's lazyGet / lazyHas /
 * lazyFill, and the encoder hook that writes an untouched item's original
 * bytes instead of decoding and re-encoding it. */
#include "lazy.h"

#include <stdio.h>
#include <string.h>

#include "exec.h"
#include "failure.h"
#include "state.h"
#include "util.h"
#include "wire.h"

/* ---- the table ------------------------------------------------------------ */

static uint32_t ptr_slot(uint32_t ptr, uint32_t cap) {
  return ((ptr >> 3) * 2654435761u) & (cap - 1);
}

static int by_proxy_rebuild(nx_lazy_table_t *t, nx_mem_t *mem, uint32_t cap) {
  uint32_t *index = nx_mem_calloc(mem, cap, sizeof *index), i;
  if (index == NULL) return NX_RC_NOMEM;
  for (i = 0; i < t->n; i++) {
    uint32_t at = ptr_slot(nx_jsval_ptr(t->nodes[i].proxy), cap);
    while (index[at]) at = (at + 1) & (cap - 1);
    index[at] = i + 1;
  }
  nx_mem_free(mem, t->by_proxy);
  t->by_proxy = index;
  t->by_proxy_cap = cap;
  return NX_RC_OK;
}

static nx_lazy_t *find(const nx_lazy_table_t *t, nx_jsval_t v) {
  uint32_t ptr, at;
  if (t->n == 0 || nx_jsval_tag(v) != NX_TAG_OBJECT) return NULL;
  ptr = nx_jsval_ptr(v);
  at = ptr_slot(ptr, t->by_proxy_cap);
  while (t->by_proxy[at]) {
    nx_lazy_t *node = &t->nodes[t->by_proxy[at] - 1];
    if (nx_jsval_ptr(node->proxy) == ptr) return node;
    at = (at + 1) & (t->by_proxy_cap - 1);
  }
  return NULL;
}

/* The node a guest call names, or NULL (the bootstrap only passes ids it
 * was given, but the host checks). */
static nx_lazy_t *node_of(nx_exec_t *ex, nx_jsval_t id) {
  if (nx_jsval_tag(id) != NX_TAG_INT || nx_jsval_int(id) < 0 ||
      (uint32_t)nx_jsval_int(id) >= ex->lazy.n)
    return NULL;
  return &ex->lazy.nodes[nx_jsval_int(id)];
}

void nx_lazy_decoder(nx_exec_t *ex, nx_mp_decoder_t *d) {
  d->lazy = nx_lazy_make;
  d->lazy_data = ex;
}

static nx_mp_status_t make(nx_exec_t *ex, nx_mp_decoder_t *d, const uint8_t *at, const uint8_t *end,
                           nx_jsval_t *out) {
  nx_sandbox_t *sb = d->sb;
  nx_lazy_table_t *t = &ex->lazy;
  nx_jsval_t a[3], target, proxy;
  nx_lazy_t *node;
  nx_mp_item_t it;

  *out = NX_UNDEFINED;
  nx_mp_read(at, &it);
  if (it.size > NX_ATOM_MAX_INT) {
    snprintf(d->err, sizeof d->err, "%s has too many items", d->path.buf);
    return NX_MP_UNCROSSABLE;
  }
  if (t->n == t->cap) {
    uint32_t cap = t->cap ? 2 * t->cap : 16;
    nx_lazy_t *grown = nx_mem_realloc(&ex->mem, t->nodes, cap * sizeof *grown);
    if (grown == NULL) return NX_MP_NOMEM;
    t->nodes = grown;
    t->cap = cap;
  }
  if (2 * (t->n + 1) > t->by_proxy_cap &&
      by_proxy_rebuild(t, &ex->mem, t->by_proxy_cap ? 2 * t->by_proxy_cap : 32) != 0)
    return NX_MP_NOMEM;

  target = it.type == NX_MPT_MAP ? Q(JS_NewObject)(&sb->inst, sb->ctx)
                                 : Q(JS_NewArray)(&sb->inst, sb->ctx);
  if (nx_jsval_tag(target) == NX_TAG_EXCEPTION) return NX_MP_GUEST;
  a[0] = NX_INT((int32_t)t->n);
  a[1] = target;
  a[2] = NX_INT((int32_t)it.size);
  proxy = nx_sandbox_call(sb, sb->lazy, a, 3); /* bootstrap code only */
  if (nx_jsval_tag(proxy) == NX_TAG_EXCEPTION) {
    nx_sandbox_free_value(sb, target);
    return NX_MP_GUEST;
  }
  node = &t->nodes[t->n];
  memset(node, 0, sizeof *node);
  node->at = at;
  node->end = end;
  node->checked = end == NULL; /* inside a value that was validated whole */
  node->n = it.size;
  node->is_map = it.type == NX_MPT_MAP;
  node->target = target; /* the table's reference */
  node->proxy = nx_sandbox_dup_value(sb, proxy);
  node->path = d->path;
  {
    uint32_t slot = ptr_slot(nx_jsval_ptr(proxy), t->by_proxy_cap);
    while (t->by_proxy[slot]) slot = (slot + 1) & (t->by_proxy_cap - 1);
    t->by_proxy[slot] = ++t->n;
  }
  *out = proxy;
  return NX_MP_OK;
}

nx_mp_status_t nx_lazy_make(nx_mp_decoder_t *d, const uint8_t *at, nx_jsval_t *out) {
  return make(d->lazy_data, d, at, NULL, out);
}

nx_mp_status_t nx_lazy_root(nx_exec_t *ex, nx_mp_decoder_t *d, const uint8_t *at,
                            const uint8_t *end, const uint8_t *offsets, uint32_t n,
                            nx_jsval_t *out) {
  nx_mp_status_t st = make(ex, d, at, end, out);
  if (st == NX_MP_OK) {
    nx_lazy_t *node = &ex->lazy.nodes[ex->lazy.n - 1];
    node->offsets = offsets;
    node->noffsets = n;
  }
  return st;
}

/* ---- items -------------------------------------------------------------------- */

/* Finds where each item starts: one pass over the container's bytes, the
 * first time an item is asked for; for a node nx_lazy_root made, the same
 * pass validates each item (the container is at level 3: the context, the
 * state map, the value). */
static int index_items(nx_exec_t *ex, nx_lazy_t *node) {
  nx_mp_item_t it;
  const uint8_t *p;
  uint32_t i;
  if (node->items) return NX_RC_OK;
  node->items = nx_mem_alloc(&ex->mem, ((size_t)node->n + 1) * sizeof *node->items);
  node->fetched = nx_mem_calloc(&ex->mem, node->n ? node->n : 1, 1);
  if (node->items == NULL || node->fetched == NULL) return NX_RC_NOMEM;
  p = nx_mp_read(node->at, &it);
  if (!node->checked && node->offsets && node->noffsets == node->n) {
    /* The host's offsets: checked for order and bounds, each item's bytes
     * left for check_item(). A map's keys are read for its lookup table,
     * so they are validated now. */
    size_t prev = (size_t)(p - node->at), span = (size_t)(node->end - node->at);
    node->valid = nx_mem_calloc(&ex->mem, node->n ? node->n : 1, 1);
    if (node->valid == NULL) return NX_RC_NOMEM;
    for (i = 0; i < node->n; i++) {
      const uint8_t *o = node->offsets + 4 * (size_t)i;
      size_t off = nx_util_le32_get(o);
      if ((i == 0 ? off != prev : off <= prev) || off >= span) goto invalid;
      node->items[i] = node->at + off;
      prev = off;
    }
    node->items[node->n] = node->end;
    for (i = 0; node->is_map && i < node->n; i++)
      if (nx_mp_validate_one(node->items[i], (size_t)(node->items[i + 1] - node->items[i]), 1) == 0)
        goto invalid;
    goto keys;
  }
  for (i = 0; i < node->n; i++) {
    node->items[i] = p;
    if (node->checked) {
      if (node->is_map) p = nx_mp_skip(p);
      p = nx_mp_skip(p);
      continue;
    }
    for (int part = 0; part <= node->is_map; part++) {
      size_t n = nx_mp_validate_one(p, (size_t)(node->end - p),
                                    part < node->is_map ? 1 : NX_LIMIT_HOST_DEPTH - 3);
      if (n == 0) goto invalid;
      p += n;
    }
  }
  if (!node->checked && p != node->end) goto invalid;
  node->checked = 1;
  node->items[node->n] = node->end = p;
keys:
  if (node->is_map) {
    uint32_t cap = 16;
    while (cap < 2 * node->n) cap *= 2;
    node->keys = nx_mem_calloc(&ex->mem, cap, sizeof *node->keys);
    if (node->keys == NULL) return NX_RC_NOMEM;
    node->keys_cap = cap;
    for (i = 0; i < node->n; i++) {
      char num[24];
      const char *name;
      size_t len;
      uint32_t at;
      nx_mp_read(node->items[i], &it);
      if (nx_mp_key_name(&it, num, &name, &len) != 0) continue; /* refused when decoded */
      at = nx_util_fnv1a(name, len) & (cap - 1);
      while (node->keys[at]) at = (at + 1) & (cap - 1);
      node->keys[at] = i + 1;
    }
  }
  return NX_RC_OK;
invalid:
  /* Indexed again, and refused again, if anything asks. */
  nx_mem_free(&ex->mem, node->items);
  nx_mem_free(&ex->mem, node->fetched);
  nx_mem_free(&ex->mem, node->valid);
  node->items = NULL;
  node->fetched = NULL;
  node->valid = NULL;
  return NX_RC_INVALID;
}

/* Item i's bytes are exactly one entry, validated (nodes indexed from the
 * host's offsets check each item the first time it is needed). */
static int check_item(nx_lazy_t *node, uint32_t i) {
  const uint8_t *p = node->items[i], *end = node->items[i + 1];
  if (node->checked || node->valid[i]) return NX_RC_OK;
  if (node->is_map) {
    size_t n = nx_mp_validate_one(p, (size_t)(end - p), 1);
    if (n == 0) return NX_RC_INVALID;
    p += n;
  }
  if (nx_mp_validate_one(p, (size_t)(end - p), NX_LIMIT_HOST_DEPTH - 3) != (size_t)(end - p))
    return NX_RC_INVALID;
  node->valid[i] = 1;
  return NX_RC_OK;
}

/* Item `name` of the node, or -1: an array's canonical index below n, a
 * map's key. The first of duplicate keys wins the lookup, as the last wins
 * in the decoded object; fill() defines them all, in order. */
static int64_t item_of(const nx_lazy_t *node, const char *name, size_t len) {
  if (!node->is_map) {
    uint64_t i = 0;
    size_t k;
    if (len == 0 || len > 10 || (len > 1 && name[0] == '0')) return -1;
    for (k = 0; k < len; k++) {
      if (name[k] < '0' || name[k] > '9') return -1;
      i = i * 10 + (uint64_t)(name[k] - '0');
    }
    return i < node->n ? (int64_t)i : -1;
  }
  {
    uint32_t at = nx_util_fnv1a(name, len) & (node->keys_cap - 1);
    while (node->keys[at]) {
      uint32_t i = node->keys[at] - 1;
      nx_mp_item_t key;
      char num[24];
      const char *kn;
      size_t kl;
      nx_mp_read(node->items[i], &key);
      if (nx_mp_key_name(&key, num, &kn, &kl) == 0 && kl == len && memcmp(kn, name, len) == 0)
        return i;
      at = (at + 1) & (node->keys_cap - 1);
    }
    return -1;
  }
}

/* Item i's key as the guest names it, and where its value starts. A map
 * item's atom is new (item_key_free releases it); an array item's is its
 * tagged index. */
typedef struct {
  char num[24];
  const char *name; /* maps: the key (in the bytes, or num) */
  size_t len;
  const uint8_t *value;
  uint32_t atom;
} nx_lazy_key_t;

/* 0; -1 for a map key that is neither a string nor an integer (no
 * exception); -2 when the atom could not be made (exception pending). */
static int item_key(nx_sandbox_t *sb, const nx_lazy_t *node, uint32_t i, nx_lazy_key_t *k) {
  nx_mp_item_t key;
  uint32_t ptr;
  k->value = node->items[i];
  k->name = NULL;
  k->len = 0;
  if (!node->is_map) {
    k->atom = NX_ATOM_TAG_INT | i;
    return 0;
  }
  k->value = nx_mp_read(node->items[i], &key);
  if (nx_mp_key_name(&key, k->num, &k->name, &k->len) != 0) return -1;
  ptr = nx_sandbox_put(sb, k->name, k->len);
  k->atom = ptr ? Q(JS_NewAtomLen)(&sb->inst, sb->ctx, ptr, (uint32_t)k->len) : 0;
  return k->atom ? 0 : -2;
}

static void item_key_free(nx_sandbox_t *sb, const nx_lazy_t *node, const nx_lazy_key_t *k) {
  if (node->is_map) Q(JS_FreeAtom)(&sb->inst, sb->ctx, k->atom);
}

static void path_push(nx_path_t *path, const nx_lazy_t *node, uint32_t i, const nx_lazy_key_t *k) {
  if (node->is_map)
    nx_path_key(path, k->name, k->len);
  else
    nx_path_index(path, i);
}

/* Decodes item i and defines it on the node's target. The node table may
 * grow while the item decodes (large containers inside it become nodes),
 * so the node is looked up again by id. 0, or a negative nx_rc_t with the
 * guest's exception pending. */
static int define_item(nx_exec_t *ex, uint32_t id, uint32_t i) {
  nx_sandbox_t *sb = ex->sb;
  nx_wasm_instance_t *in = &sb->inst;
  nx_lazy_t *node = &ex->lazy.nodes[id];
  nx_mp_decoder_t *dec = nx_mem_alloc(&ex->seg, sizeof *dec);
  nx_lazy_key_t k;
  nx_mp_status_t st;
  nx_jsval_t v;
  int rc = NX_RC_GUEST;

  if (dec == NULL) {
    Q(JS_ThrowOutOfMemory)(in, sb->ctx);
    return NX_RC_GUEST;
  }
  if (check_item(node, i) != 0) {
    nx_failure_fatal(sb, NX_E_INTERNAL_ERROR, NX_STATE_MALFORMED);
    goto done;
  }
  nx_mp_decoder_init(dec, sb, "");
  dec->path = node->path;
  nx_lazy_decoder(ex, dec);
  switch (item_key(sb, node, i, &k)) {
    case 0: break;
    case -1:
      snprintf(dec->err, sizeof dec->err, "%s: map key %u is not a string", dec->path.buf, i);
      nx_failure_throw(sb, NX_E_EXECUTION_ERROR, 1, dec->err);
      goto done;
    default: goto done;
  }
  path_push(&dec->path, node, i, &k);
  st = nx_mp_decode_last(dec, k.value, &v);
  if (st == NX_MP_UNCROSSABLE) nx_failure_throw(sb, NX_E_EXECUTION_ERROR, 1, dec->err);
  if (st == NX_MP_NOMEM) Q(JS_ThrowOutOfMemory)(in, sb->ctx);
  if (st == NX_MP_OK) {
    node = &ex->lazy.nodes[id];
    if ((int32_t)Q(JS_DefinePropertyValue)(in, sb->ctx, node->target, k.atom, v, NX_PROP_C_W_E) >=
        0) {
      node->fetched[i] = 1;
      rc = NX_RC_OK;
    }
  }
  item_key_free(sb, node, &k);
done:
  nx_mem_free(&ex->seg, dec);
  return rc;
}

/* The item a guest key names, indexing the node first; -1 when none. */
static int64_t lookup(nx_exec_t *ex, nx_lazy_t *node, nx_jsval_t key) {
  char buf[128], *name;
  size_t len = 0;
  int64_t i;
  if (nx_jsval_tag(key) != NX_TAG_STRING && nx_jsval_tag(key) != NX_TAG_STRING_ROPE) return -1;
  name = nx_sandbox_string(ex->sb, key, &ex->seg, buf, sizeof buf, &len);
  if (name == NULL) return -2;
  i = item_of(node, name, len);
  nx_sandbox_string_free(&ex->seg, name, buf);
  return i;
}

static uint32_t fail_oom(nx_sandbox_t *sb) {
  Q(JS_ThrowOutOfMemory)(&sb->inst, sb->ctx);
  return 0;
}

/* Indexes the node; on failure the guest has an exception pending. */
static int index_failed(nx_exec_t *ex, nx_lazy_t *node) {
  int rc = index_items(ex, node);
  if (rc == NX_RC_NOMEM) fail_oom(ex->sb);
  if (rc == NX_RC_INVALID) nx_failure_fatal(ex->sb, NX_E_INTERNAL_ERROR, NX_STATE_MALFORMED);
  return rc != NX_RC_OK;
}

/* The item of node `id` that a guest key names: its position, -1 for none
 * (or a filled node: the target answers then), or -2 with an exception
 * pending. */
static int64_t item_for(nx_exec_t *ex, nx_jsval_t id, nx_jsval_t key, nx_lazy_t **out) {
  nx_lazy_t *node = *out = node_of(ex, id);
  int64_t i;
  if (node == NULL) {
    nx_failure_throw(ex->sb, NX_E_INTERNAL_ERROR, 0, "no such lazy value");
    return -2;
  }
  if (node->filled) return -1;
  if (index_failed(ex, node)) return -2;
  i = lookup(ex, node, key);
  if (i == -2) fail_oom(ex->sb);
  return i;
}

uint32_t nx_lazy_get(nx_exec_t *ex, nx_jsval_t id, nx_jsval_t key) {
  nx_lazy_t *node;
  int64_t i = item_for(ex, id, key, &node);
  if (i == -2) return 0;
  if (i < 0 || node->fetched[i]) return nx_sandbox_box(ex->sb, NX_BOOL(i >= 0));
  if (define_item(ex, (uint32_t)nx_jsval_int(id), (uint32_t)i) != 0) return 0;
  return nx_sandbox_box(ex->sb, NX_BOOL(1));
}

uint32_t nx_lazy_has(nx_exec_t *ex, nx_jsval_t id, nx_jsval_t key) {
  nx_lazy_t *node;
  int64_t i = item_for(ex, id, key, &node);
  if (i == -2) return 0;
  return nx_sandbox_box(ex->sb, NX_BOOL(i >= 0));
}

/* Defines every item not fetched yet. A map's items fetched earlier are
 * taken off and defined again in their turn, so the keys end up in the
 * host's order, as an eager decode would have left them. */
uint32_t nx_lazy_fill(nx_exec_t *ex, nx_jsval_t id) {
  nx_sandbox_t *sb = ex->sb;
  nx_wasm_instance_t *in = &sb->inst;
  nx_lazy_t *node = node_of(ex, id);
  uint32_t nid, i, n;
  if (node == NULL) {
    nx_failure_throw(sb, NX_E_INTERNAL_ERROR, 0, "no such lazy value");
    return 0;
  }
  if (node->filled) return nx_sandbox_box(sb, NX_UNDEFINED);
  if (index_failed(ex, node)) return 0;
  node->filled = 1;
  nid = (uint32_t)nx_jsval_int(id);
  n = node->n;
  for (i = 0; i < n; i++) {
    node = &ex->lazy.nodes[nid];
    if (node->fetched[i] && node->is_map) {
      nx_lazy_key_t k;
      nx_jsval_t v;
      int ok;
      /* Fetched, so its key was one (item_of found it by name). */
      if (item_key(sb, node, i, &k) != 0) return 0;
      /* An own data property the host defined: reading it runs nothing. */
      v = Q(JS_GetProperty)(in, sb->ctx, node->target, k.atom);
      ok = nx_jsval_tag(v) != NX_TAG_EXCEPTION &&
           (int32_t)Q(JS_DeleteProperty)(in, sb->ctx, node->target, k.atom, 0) >= 0 &&
           (int32_t)Q(JS_DefinePropertyValue)(in, sb->ctx, node->target, k.atom, v,
                                              NX_PROP_C_W_E) >= 0;
      item_key_free(sb, node, &k);
      if (!ok) return 0;
    } else if (!node->fetched[i] && define_item(ex, nid, i) != 0) {
      return 0;
    }
  }
  return nx_sandbox_box(sb, NX_UNDEFINED);
}

int nx_lazy_kind(nx_exec_t *ex, nx_jsval_t v) {
  const nx_lazy_t *node = find(&ex->lazy, v);
  return node == NULL ? -1 : !node->filled && !node->impure;
}

/* ---- encoding --------------------------------------------------------------- */

/* A node not filled has the host's items, some of them on the target
 * (where the handler may have changed them in place): those are encoded,
 * the rest copied as they came. A filled node is an ordinary object behind
 * forwarding traps: its target is encoded. */
static nx_mp_status_t encode_node(nx_mp_encoder_t *e, nx_jsval_t v) {
  nx_exec_t *ex = e->proxy_data;
  nx_lazy_t *node = find(&ex->lazy, v);
  nx_mp_status_t st = NX_MP_OK;
  uint32_t i;
  if (node == NULL) return NX_MP_IMPURE;
  if (node->filled) return nx_mp_encode_child(e, node->target);
  /* Only nodes the guest fetched from (so indexed) or filled get here
   * unindexed if untouched; a malformed one cannot be copied. */
  switch (index_items(ex, node)) {
    case NX_RC_OK: break;
    case NX_RC_NOMEM: return NX_MP_NOMEM;
    default: snprintf(e->err, sizeof e->err, NX_STATE_MALFORMED); return NX_MP_UNCROSSABLE;
  }
  if (node->is_map)
    nx_mp_pack_map(e->out, node->n);
  else
    nx_mp_pack_array(e->out, node->n);
  /* A refused write stops the walk: a container repeated many times costs
   * no more than the result budget. */
  for (i = 0; i < node->n && st == NX_MP_OK && !e->out->refused; i++) {
    const uint8_t *p = node->items[i];
    nx_lazy_key_t k;
    uint32_t mark;
    if (!node->fetched[i]) {
      if (check_item(node, i) != 0) {
        snprintf(e->err, sizeof e->err, NX_STATE_MALFORMED);
        return NX_MP_UNCROSSABLE;
      }
      nx_mp_encode_raw(e, p, (size_t)(node->items[i + 1] - p));
      continue;
    }
    switch (item_key(e->sb, node, i, &k)) {
      case 0: break;
      case -1: /* cannot be fetched, so cannot be here; refused all the same */
        snprintf(e->err, sizeof e->err, "%s: map key %u is not a string", e->path.buf, i);
        return NX_MP_UNCROSSABLE;
      default: return NX_MP_GUEST; /* out of memory, pending */
    }
    nx_mp_encode_raw(e, p, (size_t)(k.value - p)); /* the map key, as sent */
    mark = e->path.len;
    path_push(&e->path, node, i, &k);
    st = nx_mp_encode_own(e, node->target, k.atom);
    item_key_free(e->sb, node, &k);
    if (st == NX_MP_OK) nx_path_pop(&e->path, mark);
  }
  /* An item the handler gave an accessor (or made a Proxy) needs guest
   * code to read: from now on copy() walks this container through its traps
   * instead of leaving it to this hook (nx_lazy_kind). */
  if (st == NX_MP_IMPURE) node->impure = 1;
  return st;
}

int nx_lazy_unchanged(nx_exec_t *ex, nx_jsval_t v) {
  nx_lazy_t *node = find(&ex->lazy, v);
  nx_mp_encoder_t *enc;
  uint32_t i, id, n;
  int same = 1;
  if (node == NULL || node->filled) return 0;
  if (node->items == NULL) return 1; /* nothing was fetched */
  enc = nx_mem_alloc(&ex->seg, sizeof *enc);
  if (enc == NULL) return 0;
  id = (uint32_t)(node - ex->lazy.nodes);
  n = node->n;
  for (i = 0; i < n && same; i++) {
    nx_budget_t own = {0, 0};
    nx_buf_t tmp;
    nx_mp_status_t st;
    nx_lazy_key_t k;
    node = &ex->lazy.nodes[id];
    if (!node->fetched[i]) continue;
    if (item_key(ex->sb, node, i, &k) != 0) { /* fetched: a key; OOM */
      nx_sandbox_drop_exception(ex->sb);
      same = 0;
      break;
    }
    /* Room for another encoding of the same value (widths may differ);
     * anything longer is certainly a change. */
    own.limit = 2 * (uint64_t)(node->items[i + 1] - k.value) + 64;
    nx_buf_init(&tmp, &ex->seg, &own);
    nx_mp_encoder_init(enc, ex->sb, &tmp, "");
    nx_lazy_encoder(ex, enc);
    st = nx_mp_encode_own(enc, node->target, k.atom);
    same = st == NX_MP_OK && !tmp.refused && tmp.size > 0 &&
           nx_mp_equal((const uint8_t *)tmp.data, k.value);
    if (st == NX_MP_GUEST) nx_sandbox_drop_exception(ex->sb);
    item_key_free(ex->sb, node, &k);
    tmp.budget = NULL;
    nx_buf_free(&tmp);
  }
  nx_mem_free(&ex->seg, enc);
  return same;
}

void nx_lazy_encoder(nx_exec_t *ex, nx_mp_encoder_t *e) {
  e->proxy = encode_node;
  e->proxy_data = ex;
}

/* ---- a parked execution, exported (portable.h) ------------------------------ */

enum { NODE_MAP = 1, NODE_FILLED = 2, NODE_IMPURE = 4, NODE_INDEXED = 8 };

/* A node is saved as where its container starts: the state key whose value
 * it is (its bytes then validate lazily again, item by item), or an offset
 * into the context (a container inside a validated value). The items'
 * positions and a map's lookup table are derived again from the bytes. */
int nx_lazy_save(const nx_exec_t *ex, nx_buf_t *out) {
  const nx_lazy_table_t *t = &ex->lazy;
  const nx_state_t *st = &ex->state;
  uint32_t i, j;
  nx_wire_u32(out, t->n);
  for (i = 0; i < t->n; i++) {
    const nx_lazy_t *node = &t->nodes[i];
    uint32_t ref;
    for (j = 0; j < st->nsnap && st->keys[j].orig != node->at; j++) {
    }
    if (j < st->nsnap) {
      ref = j;
    } else if (node->at >= ex->context && node->at < ex->context + ex->context_len) {
      ref = (uint32_t)(node->at - ex->context);
    } else {
      return NX_RC_INVALID;
    }
    nx_wire_u8(out, j < st->nsnap);
    nx_wire_u32(out, ref);
    nx_wire_u32(out, node->n);
    nx_wire_u8(out, (uint8_t)((node->is_map ? NODE_MAP : 0) | (node->filled ? NODE_FILLED : 0) |
                              (node->impure ? NODE_IMPURE : 0) | (node->items ? NODE_INDEXED : 0)));
    nx_wire_bytes(out, node->path.buf, node->path.len);
    nx_wire_u64(out, node->proxy);
    nx_wire_u64(out, node->target);
    if (node->items) nx_buf_write(out, node->fetched, node->n);
  }
  return NX_RC_OK;
}

/* `budget`: bytes the nodes may still have validated. Each node validates
 * its container again, and crafted nodes could all name one big container:
 * the budget keeps an import linear in the context (nested containers
 * count once per level, and values nest 32 levels at most). */
static int restore_node(nx_exec_t *ex, nx_wire_rd_t *in, nx_lazy_t *node, uint64_t *budget) {
  const nx_state_t *st = &ex->state;
  uint8_t root = nx_wire_get_bool(in), flags;
  int is_map = 0;
  uint32_t ref = nx_wire_get_u32(in), n = nx_wire_get_u32(in), hn = 0, i;
  size_t path_len, span;
  const uint8_t *path, *fetched = NULL;

  flags = nx_wire_get_u8(in);
  path = nx_wire_get_bytes(in, sizeof node->path.buf - 1, &path_len);
  memset(node, 0, sizeof *node);
  node->proxy = nx_wire_get_u64(in);
  node->target = nx_wire_get_u64(in);
  if (flags & NODE_INDEXED) fetched = nx_wire_take(in, n);
  if (in->bad || flags >= 16 || n > NX_ATOM_MAX_INT) return NX_RC_INVALID;
  if (root) {
    /* Its key was loaded, so nx_state_restore validated its value whole:
     * the items are indexed from it as from any validated container. */
    const nx_state_key_t *k = ref < st->nsnap ? &st->keys[ref] : NULL;
    if (k == NULL || k->orig == NULL || !k->checked) return NX_RC_INVALID;
    node->at = k->orig;
    node->end = k->orig + k->orig_len;
    span = k->orig_len;
    if (span > *budget) return NX_RC_INVALID;
  } else {
    if (ref >= ex->context_len) return NX_RC_INVALID;
    node->at = ex->context + ref;
    span = nx_mp_validate_one(node->at, ex->context_len - ref, NX_LIMIT_HOST_DEPTH);
    if (span == 0 || span > *budget) return NX_RC_INVALID;
  }
  node->checked = 1;
  *budget -= span;
  if (nx_mp_container_head(node->at, span, &hn, &is_map) == 0 || hn != n || n > span ||
      is_map != !!(flags & NODE_MAP))
    return NX_RC_INVALID;
  node->n = n;
  node->is_map = is_map;
  node->filled = (flags & NODE_FILLED) != 0;
  node->impure = (flags & NODE_IMPURE) != 0;
  memcpy(node->path.buf, path ? (const char *)path : "", path_len);
  node->path.buf[path_len] = 0;
  node->path.len = (uint32_t)path_len;
  if (fetched) {
    if (index_items(ex, node) != NX_RC_OK) return NX_RC_INVALID;
    for (i = 0; i < n; i++) {
      if (fetched[i] > 1) return NX_RC_INVALID;
      node->fetched[i] = fetched[i];
    }
  }
  return NX_RC_OK;
}

int nx_lazy_restore(nx_exec_t *ex, nx_wire_rd_t *in) {
  nx_lazy_table_t *t = &ex->lazy;
  uint32_t n = nx_wire_get_u32(in), cap = 32;
  uint64_t budget = (uint64_t)NX_LIMIT_HOST_DEPTH * ex->context_len + (1u << 20);
  /* each node names bytes of its own, and takes 30 bytes here at the least */
  if (in->bad || n > ex->context_len || n > (size_t)(in->end - in->p) / 30) return NX_RC_INVALID;
  if (n == 0) return NX_RC_OK;
  t->nodes = nx_mem_calloc(&ex->mem, n, sizeof *t->nodes);
  if (t->nodes == NULL) return NX_RC_NOMEM;
  t->cap = n;
  for (t->n = 0; t->n < n; t->n++)
    if (restore_node(ex, in, &t->nodes[t->n], &budget) != NX_RC_OK) return NX_RC_INVALID;
  while (cap < 2 * n) cap *= 2;
  return by_proxy_rebuild(t, &ex->mem, cap);
}

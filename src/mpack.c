/* MessagePack without a sandbox: the validator every untrusted byte string
 * passes before anything reads it, the cursor that reads it then,
 * structural equality, and the paths that error messages name
 * ("events[2].payload.a[0]"). */
#include "mpack.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

const int8_t nx_mp_code_to_qjs[11] = {1, 2, 0, 3, 4, 5, 6, 10, 11, 7, 8};
const int8_t nx_mp_qjs_to_code[12] = {2, 0, 1, 3, 4, 5, 6, 9, 10, -1, 7, 8};

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
    if (n) memcpy(p->buf + p->len, key, n); /* "" may come with a NULL pointer */
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
  return len > 0 && nx_mp_validate_one(buf, len, max_depth) == len ? 0 : -1;
}

size_t nx_mp_validate_one(const uint8_t *buf, size_t len, uint32_t max_depth) {
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
    if (at >= len) return 0;
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
      return 0;
    } else {
      static const struct {
        uint8_t op, width, kind;
      } ops[] = {/* kind: 0 fixed payload `width`, 1 length `width` + bytes,
                  * 2 length + type byte + bytes, 3 array count, 4 map count */
                 {0xc4, 1, 1},  {0xc5, 2, 1}, {0xc6, 4, 1}, {0xc7, 1, 2}, {0xc8, 2, 2},
                 {0xc9, 4, 2},  {0xca, 4, 0}, {0xcb, 8, 0}, {0xcc, 1, 0}, {0xcd, 2, 0},
                 {0xce, 4, 0},  {0xcf, 8, 0}, {0xd0, 1, 0}, {0xd1, 2, 0}, {0xd2, 4, 0},
                 {0xd3, 8, 0},  {0xd4, 2, 0}, {0xd5, 3, 0}, {0xd6, 5, 0}, {0xd7, 9, 0},
                 {0xd8, 17, 0}, {0xd9, 1, 1}, {0xda, 2, 1}, {0xdb, 4, 1}, {0xdc, 2, 3},
                 {0xdd, 4, 3},  {0xde, 2, 4}, {0xdf, 4, 4}};
      /* 0xc4..0xdf, in order: the byte indexes the table. */
      uint32_t i = (uint32_t)(b - 0xc4);
      uint64_t v = 0;
      width = ops[i].width;
      if (ops[i].kind == 0) {
        skip = (uint64_t)width;
      } else {
        if (len - at < (size_t)width) return 0;
        for (int k = 0; k < width; k++) v = (v << 8) | buf[at + (size_t)k];
        at += (size_t)width;
        if (ops[i].kind == 1)
          skip = v;
        else if (ops[i].kind == 2)
          skip = v + 1;
        else
          items = ops[i].kind == 3 ? v : 2 * v, container = 1;
      }
    }
    if (skip > len - at) return 0;
    at += (size_t)skip;
    /* An empty container is a level too. */
    if (container && depth + 1 > max_depth) return 0;
    if (container && items > 0) {
      /* Every item takes at least one byte. */
      if (items > len - at) return 0;
      pending[++depth] = items;
    }
  }
  return at;
}

/* ---- reading ------------------------------------------------------------ */

static uint64_t be(const uint8_t *p, int n) {
  uint64_t v = 0;
  int i;
  for (i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

size_t nx_mp_container_head(const uint8_t *p, size_t len, uint32_t *n, int *is_map) {
  size_t width;
  if (len == 0) return 0;
  if (p[0] >= 0x80 && p[0] <= 0x9f) {
    *n = p[0] & 0x0f;
    *is_map = p[0] <= 0x8f;
    return 1;
  }
  if (p[0] < 0xdc || p[0] > 0xdf) return 0;
  width = p[0] == 0xdc || p[0] == 0xde ? 2 : 4;
  if (len < 1 + width) return 0;
  *n = (uint32_t)be(p + 1, (int)width);
  *is_map = p[0] >= 0xde;
  return 1 + width;
}

static const uint8_t *payload(const uint8_t *p, nx_mp_item_t *it, nx_mp_type_t type, int width) {
  it->type = type;
  it->size = (uint32_t)be(p, width);
  it->ptr = p + width;
  return it->ptr + it->size;
}

static const uint8_t *ext(const uint8_t *p, nx_mp_item_t *it, int width) {
  it->type = NX_MPT_EXT;
  it->size = width ? (uint32_t)be(p, width) : it->size;
  it->ext = (int8_t)p[width];
  it->ptr = p + width + 1;
  return it->ptr + it->size;
}

const uint8_t *nx_mp_read(const uint8_t *p, nx_mp_item_t *it) {
  uint8_t b = *p++;
  uint64_t bits;
  float f;
  double d;

  if (b <= 0x7f) {
    it->type = NX_MPT_UINT, it->v.u64 = b;
    return p;
  }
  if (b >= 0xe0) {
    it->type = NX_MPT_INT, it->v.i64 = (int8_t)b;
    return p;
  }
  if (b <= 0x8f) {
    it->type = NX_MPT_MAP, it->size = b & 0x0f;
    return p;
  }
  if (b <= 0x9f) {
    it->type = NX_MPT_ARRAY, it->size = b & 0x0f;
    return p;
  }
  if (b <= 0xbf) {
    it->type = NX_MPT_STR, it->size = b & 0x1f, it->ptr = p;
    return p + it->size;
  }
  switch (b) {
    case 0xc0: it->type = NX_MPT_NIL; return p;
    case 0xc2:
    case 0xc3: it->type = NX_MPT_BOOL, it->v.boolean = b == 0xc3; return p;
    case 0xc4: return payload(p, it, NX_MPT_BIN, 1);
    case 0xc5: return payload(p, it, NX_MPT_BIN, 2);
    case 0xc6: return payload(p, it, NX_MPT_BIN, 4);
    case 0xc7: return ext(p, it, 1);
    case 0xc8: return ext(p, it, 2);
    case 0xc9: return ext(p, it, 4);
    case 0xca:
      bits = be(p, 4);
      memcpy(&f, &(uint32_t){(uint32_t)bits}, 4);
      it->type = NX_MPT_FLOAT, it->v.f64 = f;
      return p + 4;
    case 0xcb:
      bits = be(p, 8);
      memcpy(&d, &bits, 8);
      it->type = NX_MPT_FLOAT, it->v.f64 = d;
      return p + 8;
    case 0xcc: it->type = NX_MPT_UINT, it->v.u64 = be(p, 1); return p + 1;
    case 0xcd: it->type = NX_MPT_UINT, it->v.u64 = be(p, 2); return p + 2;
    case 0xce: it->type = NX_MPT_UINT, it->v.u64 = be(p, 4); return p + 4;
    case 0xcf: it->type = NX_MPT_UINT, it->v.u64 = be(p, 8); return p + 8;
    case 0xd0:
      it->v.i64 = (int8_t)be(p, 1);
      p += 1;
      break;
    case 0xd1:
      it->v.i64 = (int16_t)be(p, 2);
      p += 2;
      break;
    case 0xd2:
      it->v.i64 = (int32_t)be(p, 4);
      p += 4;
      break;
    case 0xd3:
      it->v.i64 = (int64_t)be(p, 8);
      p += 8;
      break;
    case 0xd4: it->size = 1; return ext(p, it, 0);
    case 0xd5: it->size = 2; return ext(p, it, 0);
    case 0xd6: it->size = 4; return ext(p, it, 0);
    case 0xd7: it->size = 8; return ext(p, it, 0);
    case 0xd8: it->size = 16; return ext(p, it, 0);
    case 0xd9: return payload(p, it, NX_MPT_STR, 1);
    case 0xda: return payload(p, it, NX_MPT_STR, 2);
    case 0xdb: return payload(p, it, NX_MPT_STR, 4);
    case 0xdc: it->type = NX_MPT_ARRAY, it->size = (uint32_t)be(p, 2); return p + 2;
    case 0xdd: it->type = NX_MPT_ARRAY, it->size = (uint32_t)be(p, 4); return p + 4;
    case 0xde: it->type = NX_MPT_MAP, it->size = (uint32_t)be(p, 2); return p + 2;
    default: /* 0xdf; 0xc1 never passes the validator */
      it->type = NX_MPT_MAP, it->size = (uint32_t)be(p, 4);
      return p + 4;
  }
  /* Signed integers: non-negative ones are UINT, whatever their encoding. */
  if (it->v.i64 >= 0) {
    it->type = NX_MPT_UINT, it->v.u64 = (uint64_t)it->v.i64;
  } else {
    it->type = NX_MPT_INT;
  }
  return p;
}

const uint8_t *nx_mp_skip(const uint8_t *p) {
  uint64_t pending = 1;
  nx_mp_item_t it;
  while (pending > 0) {
    pending--;
    p = nx_mp_read(p, &it);
    if (it.type == NX_MPT_ARRAY)
      pending += it.size;
    else if (it.type == NX_MPT_MAP)
      pending += 2 * (uint64_t)it.size;
  }
  return p;
}

int nx_mp_key_name(const nx_mp_item_t *key, char *num, const char **name, size_t *len) {
  if (key->type == NX_MPT_STR) {
    *name = (const char *)key->ptr;
    *len = key->size;
  } else if (key->type == NX_MPT_UINT) {
    *len = (size_t)snprintf(num, 24, "%" PRIu64, key->v.u64);
    *name = num;
  } else if (key->type == NX_MPT_INT) {
    *len = (size_t)snprintf(num, 24, "%" PRId64, key->v.i64);
    *name = num;
  } else {
    return -1;
  }
  return 0;
}

/* ---- equality ---------------------------------------------------------- */

static int as_number(const nx_mp_item_t *o, double *d) {
  switch (o->type) {
    case NX_MPT_UINT: *d = (double)o->v.u64; return 1;
    case NX_MPT_INT: *d = (double)o->v.i64; return 1;
    case NX_MPT_FLOAT: *d = o->v.f64; return 1;
    default: return 0;
  }
}

/* Walks both values side by side; `pending` counts the items still to
 * compare, so nesting needs no recursion. */
int nx_mp_equal(const uint8_t *a, const uint8_t *b) {
  uint64_t pending = 1;
  while (pending > 0) {
    nx_mp_item_t x, y;
    double dx, dy;
    pending--;
    a = nx_mp_read(a, &x);
    b = nx_mp_read(b, &y);
    if (as_number(&x, &dx) && as_number(&y, &dy)) {
      if (!((dx == dy && signbit(dx) == signbit(dy)) || (isnan(dx) && isnan(dy)))) return 0;
      /* Integers beyond 2^53 differ even where their doubles do not. */
      if (x.type == y.type && x.type != NX_MPT_FLOAT && x.v.u64 != y.v.u64) return 0;
      continue;
    }
    if (x.type != y.type) return 0;
    switch (x.type) {
      case NX_MPT_NIL: break;
      case NX_MPT_BOOL:
        if (x.v.boolean != y.v.boolean) return 0;
        break;
      case NX_MPT_ARRAY:
      case NX_MPT_MAP:
        if (x.size != y.size) return 0;
        pending += x.type == NX_MPT_MAP ? 2 * (uint64_t)x.size : x.size;
        break;
      case NX_MPT_EXT:
        if (x.ext != y.ext) return 0;
        /* fall through */
      default: /* STR, BIN */
        if (x.size != y.size || (x.size && memcmp(x.ptr, y.ptr, x.size) != 0)) return 0;
    }
  }
  return 1;
}

/* Capability parsing and checks. Tokens are few per execution, so a linear
 * scan per family beats building anything fancier. */
#include "caps.h"

#include <stdlib.h>
#include <string.h>

#include "mpack.h"

static const char *const prefixes[NX_CAP__COUNT] = {
    [NX_CAP_STATE_READ] = "state:read:",
    [NX_CAP_STATE_WRITE] = "state:write:",
    [NX_CAP_EVENTS_EMIT] = "events:emit:",
    [NX_CAP_VIEW_UPDATE] = "view:update:",
    [NX_CAP_EXT] = "ext:",
};

const char *nx_caps_prefix(nx_cap_family_t family) { return prefixes[family]; }

static int classify(const char *s, size_t len, nx_cap_family_t *family, size_t *name_at) {
  int f;
  for (f = 0; f < NX_CAP__COUNT; f++) {
    size_t plen = strlen(prefixes[f]);
    if (len > plen && memcmp(s, prefixes[f], plen) == 0) {
      *family = (nx_cap_family_t)f;
      *name_at = plen;
      return 0;
    }
  }
  return -1;
}

/* The next token of the array at *p: 0 with its string, or -1 for an item
 * that is not a string (stepped over all the same). */
static int next_token(const uint8_t **p, const char **s, size_t *len) {
  nx_mp_item_t t;
  const uint8_t *next = nx_mp_read(*p, &t);
  if (t.type != NX_MPT_STR) {
    *p = nx_mp_skip(*p);
    return -1;
  }
  *p = next;
  *s = (const char *)t.ptr;
  *len = t.size;
  return 0;
}

int nx_caps_parse(nx_caps_t *caps, const uint8_t *tokens) {
  size_t counts[NX_CAP__COUNT] = {0};
  nx_mp_item_t arr;
  const uint8_t *first, *p;
  uint32_t i;
  int f;

  memset(caps, 0, sizeof *caps);
  if (tokens == NULL) return 0;
  first = nx_mp_read(tokens, &arr);
  if (arr.type != NX_MPT_ARRAY) return 0;
  /* Two passes, counting then filling, as the tokens are few. */
  for (i = 0, p = first; i < arr.size; i++) {
    const char *s;
    size_t len, at;
    nx_cap_family_t family;
    if (next_token(&p, &s, &len) == 0 && classify(s, len, &family, &at) == 0) counts[family]++;
  }
  for (f = 0; f < NX_CAP__COUNT; f++) {
    if (counts[f] == 0) continue;
    caps->names[f] = calloc(counts[f], sizeof(nx_cap_name_t));
    if (caps->names[f] == NULL) goto fail;
  }
  for (i = 0, p = first; i < arr.size; i++) {
    const char *s;
    size_t len, at;
    nx_cap_family_t family;
    if (next_token(&p, &s, &len) != 0 || classify(s, len, &family, &at) != 0) continue;
    if (len - at == 1 && s[at] == '*') {
      caps->wildcard[family] = 1;
      continue;
    }
    caps->names[family][caps->count[family]].name = s + at;
    caps->names[family][caps->count[family]].len = len - at;
    caps->count[family]++;
  }
  return 0;
fail:
  nx_caps_free(caps);
  return -1;
}

void nx_caps_free(nx_caps_t *caps) {
  int f;
  for (f = 0; f < NX_CAP__COUNT; f++) free(caps->names[f]);
  memset(caps, 0, sizeof *caps);
}

int nx_caps_allows(const nx_caps_t *caps, nx_cap_family_t family, const char *name, size_t len) {
  size_t i;
  if (caps->wildcard[family]) return 1;
  for (i = 0; i < caps->count[family]; i++)
    if (caps->names[family][i].len == len && memcmp(caps->names[family][i].name, name, len) == 0)
      return 1;
  return 0;
}

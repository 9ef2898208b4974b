/* Capability tokens of one execution (`state:read:k`, `events:emit:*`, ...)
 * and the checks the host calls make against them. */
#ifndef NX_CAPS_H
#define NX_CAPS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  NX_CAP_STATE_READ,
  NX_CAP_STATE_WRITE,
  NX_CAP_EVENTS_EMIT,
  NX_CAP_VIEW_UPDATE,
  NX_CAP_EXT,
  NX_CAP__COUNT
} nx_cap_family_t;

typedef struct {
  const char *name; /* points into the context's bytes */
  size_t len;
} nx_cap_name_t;

typedef struct {
  unsigned char wildcard[NX_CAP__COUNT];
  nx_cap_name_t *names[NX_CAP__COUNT];
  size_t count[NX_CAP__COUNT];
} nx_caps_t;

/* Parses validated MessagePack (mpack.h), an array of token strings: the
 * names point into it, so it must outlive caps. Unknown tokens, and
 * anything but an array (or NULL), grant nothing. Returns -1 on allocation
 * failure. */
int nx_caps_parse(nx_caps_t *caps, const uint8_t *tokens);
void nx_caps_free(nx_caps_t *caps);
int nx_caps_allows(const nx_caps_t *caps, nx_cap_family_t family, const char *name, size_t len);
/* "state:read:" etc., for messages naming the missing token. */
const char *nx_caps_prefix(nx_cap_family_t family);

#endif

/* Portable suspensions: a parked execution as bytes another process (same
 * engine build, same snapshot image) can park again and resume. The bytes
 * hold the linear memory where it differs from the image, the instance's
 * globals, and the engine's host-side record of the execution; lib/ signs
 * and compresses them, and checks that before any byte reaches here. Here
 * every size, offset and flag is checked again all the same, and the
 * memory only ever goes into a sandbox. */
#ifndef NX_PORTABLE_H
#define NX_PORTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "sandbox.h"

/* The snapshot image the memory is compared against. */
typedef struct {
  const uint8_t *bytes;
  size_t size;
  size_t page;            /* OS page size */
  const uint8_t *changed; /* per page: 1 when the sandbox may differ there; NULL: any */
  const uint8_t *sha256;  /* of the image: both sides must have the same one */
} nx_portable_image_t;

/* Writes a parked execution (not running, its sandbox untouched since it
 * parked) into *out (malloc'd). `remaining_ns`: how long it may stay
 * parked. 0 or NX_RC_NOMEM / NX_RC_INVALID. */
int nx_portable_export(const nx_exec_t *ex, const nx_portable_image_t *img, uint64_t remaining_ns,
                       char **out, size_t *out_len);

/* Loads bytes from nx_portable_export into `sb`, a sandbox fresh from a
 * reset to the same image, and makes its execution: *exec, how long it may
 * stay parked, and its suspended result (malloc'd: the pending calls, no
 * effects). On failure (NX_RC_INVALID: err says which check; NX_RC_NOMEM)
 * the sandbox holds part of the memory: reset it. */
int nx_portable_import(nx_sandbox_t *sb, const nx_engine_t *engine, const nx_portable_image_t *img,
                       const uint8_t *bytes, size_t len, nx_exec_t **exec, uint64_t *remaining_ns,
                       char **result, size_t *result_len, char *err, size_t errlen);

#endif

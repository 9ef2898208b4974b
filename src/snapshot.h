/* Pristine sandboxes from a copy-on-write snapshot. Once per runtime an
 * instance initialises QuickJS and the bootstrap; its linear memory goes
 * into a memfd. Every sandbox maps that image MAP_PRIVATE, so untouched
 * pages are shared, and is reset to it after every execution. */
#ifndef NX_SNAPSHOT_H
#define NX_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "sandbox.h"

typedef struct nx_snapshot_s nx_snapshot_t;

/* Builds the image (runs guest code: QuickJS init and the bootstrap, which
 * gets one host function per name in the NULL-terminated host_names). */
nx_snapshot_t *nx_snap_create(const nx_config_t *cfg, const char *const *host_names, char *err,
                              size_t errlen);
void nx_snap_free(nx_snapshot_t *snap);

/* A new sandbox whose memory is the image: no QuickJS initialisation. */
nx_sandbox_t *nx_snap_instantiate(const nx_snapshot_t *snap, const nx_config_t *cfg, char *err,
                                  size_t errlen);

/* Puts a sandbox back into the image's state, whatever its guest did
 * (including a trap mid-operation). -1 when it cannot be trusted any more
 * (the function table changed): destroy it. Thread-safe per sandbox. */
int nx_snap_reset(const nx_snapshot_t *snap, nx_sandbox_t *sb);

/* QuickJS's version string, and where JSRuntime keeps its heap size
 * (0 when it could not be found), as read from the template instance. */
const char *nx_snap_qjs_version(const nx_snapshot_t *snap);
uint32_t nx_snap_heap_used_offset(const nx_snapshot_t *snap);

/* Bytes of the image, and the image itself (read-only). */
size_t nx_snap_size(const nx_snapshot_t *snap);
const uint8_t *nx_snap_image(const nx_snapshot_t *snap);
size_t nx_snap_page_size(const nx_snapshot_t *snap);
/* The image's SHA-256 (computed on first use; thread-safe). Two processes
 * with the same build and configuration make the same image: the guest's
 * clocks and random bytes are fixed while it is made (sandbox.h). */
const uint8_t *nx_snap_sha256(nx_snapshot_t *snap);
/* changed[i], for each OS page of the image: 0 when the sandbox's page is
 * still the image's. -1 when that cannot be known (then compare all). */
int nx_snap_changed_pages(const nx_snapshot_t *snap, const nx_sandbox_t *sb, uint8_t *changed);

#endif

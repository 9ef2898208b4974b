/* libFuzzer harness: imported suspensions (src/portable.c, src/transfer.c).
 * lib/ checks a blob's signature, expiry and build before the native layer
 * sees it; this is the check behind that one. Any bytes handed to the
 * import must be refused with INVALID_SUSPENSION or load into a sandbox,
 * and a loaded execution must then resume or cancel with a well-formed
 * result, whatever its memory holds. Seeds: the exports of a few suspended
 * handlers, made at start-up. The input's first byte picks a seed and
 * what to do with it: use the rest of the input as the bytes themselves,
 * or flip seed bytes at offsets the input names (most inputs), and maybe
 * cut the result short. */
#include <stdlib.h>
#include <string.h>

#include "runner.h"
#include "util.h"

#define NSEEDS 4

static uint8_t *seeds[NSEEDS];
static size_t seed_len[NSEEDS];

/* Handlers that park in different shapes: one call; three calls at once
 * with values kept across the await; state written and deleted, a key
 * added, a large (lazy) array read and changed in place; an answered call
 * followed by a second suspension. */
static const char *const handlers[NSEEDS] = {
    "$state.count++; $emit('e', { a: 1 }); const v = await $ext.svc.get('x'); return v",
    "const m = new Map([[1, 'a']]); class K { constructor() { this.k = 2 } }; const k = new K();"
    " const r = await Promise.all([$ext.svc.get(1), $ext.svc.put(2), $ext.other.call(3)]);"
    " return [m.get(1), k.k, r]",
    "$state.added = { deep: [1, 2, 3] }; delete $state.s; $state.obj.a.push(3); $log.info('x');"
    " const m = $state.many; m[3].i++; const v = await $ext.svc.get($state.list);"
    " return [v, $state.added, m[50].i, m.length]",
    "let n = 0; try { n = await $ext.svc.get(1) } catch (e) { n = -1 }; $view.update('c', {n});"
    " const w = await $ext.other.call(n); return [n, w, performance.now() >= 0]",
};

/* Runs a handler to its first suspension and exports it. */
static void make_seed(int i, const uint8_t *context, size_t context_len) {
  nx_job_t *job =
      fz_execute(NX_MODE_SOURCE, handlers[i], strlen(handlers[i]), context, context_len);
  fz_result_t res;
  char *bytes = NULL;
  size_t len = 0;
  fz_result_check(job->result, job->result_len, &res);
  if (strcmp(res.status, "suspended") != 0)
    fz_fail("seed handler %d did not suspend: %s", i, res.message);
  if (nx_runtime_export(fz_runtime(), res.ids[0], &bytes, &len) != NX_RC_OK)
    fz_fail("seed handler %d could not be exported", i);
  seeds[i] = (uint8_t *)bytes;
  seed_len[i] = len;
  nx_job_free(job);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  static const char *const caps[] = {"state:read:*", "state:write:*", "events:emit:*",
                                     "view:update:*", "ext:*"};
  nx_config_t cfg;
  uint8_t *context;
  size_t context_len;
  int i;
  (void)argc;
  (void)argv;
  fz_config(&cfg);
  fz_runtime_start(&cfg);
  fz_context(caps, sizeof caps / sizeof caps[0], &context, &context_len);
  for (i = 0; i < NSEEDS; i++) make_seed(i, context, context_len);
  free(context);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_bytes_t in;
  uint8_t *bytes;
  size_t len, at;
  nx_job_t *job;
  unsigned seed;

  if (size == 0) return 0;
  seed = data[0] % NSEEDS;
  in.p = data + 1;
  in.len = size - 1;
  in.at = 0;
  if ((data[0] & 0x70) == 0) { /* the input is the bytes */
    len = size - 1;
    bytes = malloc(len ? len : 1);
    if (bytes == NULL) fz_fail("out of memory");
    memcpy(bytes, data + 1, len);
  } else { /* flips: (u32 offset, xor byte) five bytes at a time */
    len = seed_len[seed];
    bytes = malloc(len);
    if (bytes == NULL) fz_fail("out of memory");
    memcpy(bytes, seeds[seed], len);
    for (at = 1; at + 5 <= size && at < 1 + 5 * 16; at += 5)
      bytes[nx_util_le32_get(data + at) % len] ^= data[at + 4] ? data[at + 4] : 1;
    in.at = at - 1;
    if ((data[0] & 0x80) && size >= 5) len = nx_util_le32_get(data + size - 4) % (len + 1);
  }
  job = fz_import(bytes, len);
  free(bytes);
  if (job->reject_code) {
    if (strcmp(job->reject_code, "INVALID_SUSPENSION") != 0)
      fz_fail("import rejected with %s: %s", job->reject_code, job->reject_message);
    nx_job_free(job);
    return 0;
  }
  fz_finish(job, &in); /* resumed or cancelled: nothing stays parked */
  return 0;
}

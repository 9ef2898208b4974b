/* libFuzzer harness: MessagePack from the host into guest values and back
 * (src/mpack.c). The input is untrusted MessagePack, as a context or a
 * resume payload would be:
 *   1. nx_mp_validate() decides whether it may be read at all; what it
 *      accepts must be well-formed (checked by an independent reader,
 *      runner.c), read by the cursor (nx_mp_read) item for item as that
 *      reader reads it, stepped over by nx_mp_skip() to the last byte, and
 *      taken as capability tokens (caps.c reads them in place) safely;
 *   2. nx_mp_decode() turns the bytes into a guest value and the strict
 *      encoder turns that back into MessagePack, which must be well-formed,
 *      within the validator's limits, and a fixed point: decoding and
 *      encoding it again gives the same bytes.
 * One sandbox from the snapshot serves every input; it is reset to the
 * image after each, so no input sees another's heap and memory stays flat. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "caps.h"
#include "config.h"
#include "hostcalls.h"
#include "mem.h"
#include "mpack.h"
#include "runner.h"
#include "snapshot.h"
#include "wasm_rt/nx_wasm.h"

#define MAX_DEPTH 32 /* what the engine validates contexts with */

static nx_config_t cfg;
static nx_snapshot_t *snap;
static nx_sandbox_t *sb;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  char err[256];
  (void)argc;
  (void)argv;
  nx_config_defaults(&cfg);
  /* Bounds checks: see scripts/fuzz.sh. */
  cfg.memory_check = NX_MEMORY_CHECK_BOUNDS;
  cfg.memory_limit = 16u << 20;
  /* What a worker thread does first: guest calls count against this. */
  nx_wasm_thread_set_depth_limit(nx_config_wasm_depth(&cfg));
  snap = nx_snap_create(&cfg, nx_host_names, err, sizeof err);
  if (snap == NULL) fz_fail("nx_snap_create: %s", err);
  sb = nx_snap_instantiate(snap, &cfg, err, sizeof err);
  if (sb == NULL) fz_fail("nx_snap_instantiate: %s", err);
  return 0;
}

/* How far a value got: decoded into the guest, then encoded back. */
typedef struct {
  nx_mp_status_t decoded, encoded;
  char err[320];
} trip_t;

static void drop_exception(void) {
  nx_sandbox_free_value(sb, Q(JS_GetException)(&sb->inst, sb->ctx));
}

/* Runs guest code: the caller holds the trap guard. */
static void decode_encode(const uint8_t *bytes, nx_buf_t *out, trip_t *t) {
  nx_mp_encoder_t enc;
  nx_mp_decoder_t dec;
  nx_jsval_t v;

  nx_mp_decoder_init(&dec, sb, "value");
  t->err[0] = 0;
  t->encoded = NX_MP_OK;
  t->decoded = nx_mp_decode_last(&dec, bytes, &v);
  if (t->decoded != NX_MP_OK) snprintf(t->err, sizeof t->err, "%s", dec.err);
  if (t->decoded != NX_MP_OK) {
    if (t->decoded == NX_MP_GUEST) drop_exception();
    return;
  }
  nx_mp_encoder_init(&enc, sb, out, "value");
  t->encoded = nx_mp_encode(&enc, v);
  if (t->encoded == NX_MP_GUEST) drop_exception();
  if (t->encoded != NX_MP_OK) snprintf(t->err, sizeof t->err, "%s", enc.err);
  nx_sandbox_free_value(sb, v);
}

/* Decoding and encoding plain data must never trap: there is no handler
 * code here, only the host driving QuickJS's API. */
static void round_trip(const uint8_t *bytes, nx_buf_t *out, trip_t *t) {
  nx_wasm_guard_t guard;
  int trap = NX_WASM_TRY(&guard, nx_sandbox_trap_memory(sb));
  if (trap != 0) fz_fail("the sandbox trapped: %s", nx_wasm_trap_name(trap));
  decode_encode(bytes, out, t);
  nx_wasm_leave(&guard);
}

/* Which outcomes plain data may have; anything else is a bug. */
static void check_trip(const trip_t *t) {
  if (t->decoded == NX_MP_GUEST || t->encoded == NX_MP_GUEST) {
    fz_note("guest threw", "the guest threw while decoding or encoding plain data: %s", t->err);
    return;
  }
  if (t->decoded != NX_MP_OK && t->decoded != NX_MP_UNCROSSABLE)
    fz_fail("nx_mp_decode returned %d: %s", (int)t->decoded, t->err);
  /* A decoded value is plain data: nothing in it needs guest code (IMPURE),
   * and its encoding is about as long as the input (LIMIT). */
  if (t->encoded != NX_MP_OK && t->encoded != NX_MP_UNCROSSABLE)
    fz_fail("nx_mp_encode of a decoded value returned %d: %s", (int)t->encoded, t->err);
}

/* The cursor and the independent reader, side by side over every item:
 * same kind, same payload or item count, same length. */
static void check_cursor(const uint8_t *data, size_t size) {
  static const fz_mp_kind_t kinds[] = {
      [NX_MPT_NIL] = FZ_MP_NIL, [NX_MPT_BOOL] = FZ_MP_BOOL,   [NX_MPT_UINT] = FZ_MP_INT,
      [NX_MPT_INT] = FZ_MP_INT, [NX_MPT_FLOAT] = FZ_MP_FLOAT, [NX_MPT_STR] = FZ_MP_STR,
      [NX_MPT_BIN] = FZ_MP_BIN, [NX_MPT_EXT] = FZ_MP_EXT,     [NX_MPT_ARRAY] = FZ_MP_ARRAY,
      [NX_MPT_MAP] = FZ_MP_MAP};
  const uint8_t *p = data, *end = data + size;
  uint64_t pending = 1;
  while (pending > 0) {
    nx_mp_item_t it;
    fz_mp_item_t ref;
    size_t n = fz_mp_item(p, (size_t)(end - p), &ref);
    const uint8_t *next;
    pending--;
    if (n == 0) fz_fail("the independent reader stops at byte %zu", (size_t)(p - data));
    next = nx_mp_read(p, &it);
    if (next != p + n || kinds[it.type] != ref.kind)
      fz_fail("nx_mp_read disagrees at byte %zu (0x%02x)", (size_t)(p - data), *p);
    if ((it.type == NX_MPT_STR || it.type == NX_MPT_BIN || it.type == NX_MPT_EXT) &&
        (it.ptr != ref.data || it.size != ref.size))
      fz_fail("nx_mp_read's payload differs at byte %zu", (size_t)(p - data));
    if (it.type == NX_MPT_ARRAY || it.type == NX_MPT_MAP) {
      if (it.size != ref.count)
        fz_fail("nx_mp_read's count differs at byte %zu", (size_t)(p - data));
      pending += it.type == NX_MPT_MAP ? 2 * (uint64_t)it.size : it.size;
    }
    p = next;
  }
  if (p != end) fz_fail("nx_mp_read stops short of the end");
}

/* Any accepted bytes as a capabilities field: only an array of strings
 * grants anything, and never more grants than it has items. */
static void check_caps(const uint8_t *data) {
  nx_caps_t caps;
  nx_mp_item_t top;
  size_t grants = 0;
  int f;
  if (nx_caps_parse(&caps, data) != 0) fz_fail("nx_caps_parse ran out of memory");
  nx_mp_read(data, &top);
  for (f = 0; f < NX_CAP__COUNT; f++) grants += caps.count[f] + caps.wildcard[f];
  if (grants > (top.type == NX_MPT_ARRAY ? top.size : 0))
    fz_fail("nx_caps_parse granted %zu tokens from %u items", grants,
            top.type == NX_MPT_ARRAY ? top.size : 0);
  nx_caps_free(&caps);
}

/* The first encoding must decode and encode to exactly itself. */
static void check_fixed_point(const nx_buf_t *first, nx_budget_t *budget, nx_mem_t *mem) {
  nx_buf_t second;
  trip_t t;

  if (!fz_mp_wellformed((const uint8_t *)first->data, first->size))
    fz_fail("the encoder wrote malformed MessagePack (%zu bytes)", first->size);
  if (nx_mp_validate((const uint8_t *)first->data, first->size, MAX_DEPTH) != 0)
    fz_fail("the encoder's output fails nx_mp_validate");
  if (!nx_mp_equal((const uint8_t *)first->data, (const uint8_t *)first->data))
    fz_fail("nx_mp_equal(x, x) is false for the encoder's output");
  nx_buf_init(&second, mem, budget);
  round_trip((const uint8_t *)first->data, &second, &t);
  if (t.decoded != NX_MP_OK || t.encoded != NX_MP_OK)
    fz_fail("re-decoding the encoder's output failed (%d/%d): %s", (int)t.decoded, (int)t.encoded,
            t.err);
  if (second.size != first->size || memcmp(second.data, first->data, first->size) != 0)
    fz_fail("encode(decode(x)) is not a fixed point: %zu then %zu bytes", first->size, second.size);
}

static void fuzz_value(const uint8_t *bytes, size_t input_len) {
  nx_mem_t mem;
  /* Generous: encoding plain data never grows it much (a lone byte of bad
   * UTF-8 becomes the 3 bytes of U+FFFD). */
  nx_budget_t budget = {0, (1u << 20) + 4 * (uint64_t)input_len};
  nx_buf_t out;
  trip_t t;

  nx_mem_init(&mem);
  nx_buf_init(&out, &mem, &budget);
  round_trip(bytes, &out, &t);
  check_trip(&t);
  if (t.decoded == NX_MP_OK && t.encoded == NX_MP_OK) check_fixed_point(&out, &budget, &mem);
  nx_mem_release(&mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (nx_mp_validate(data, size, MAX_DEPTH) != 0) return 0;
  if (!fz_mp_wellformed(data, size)) fz_fail("nx_mp_validate accepted malformed MessagePack");
  check_cursor(data, size);
  check_caps(data);
  if (nx_mp_skip(data) != data + size) fz_fail("nx_mp_skip disagrees with nx_mp_validate");
  if (nx_mp_validate_one(data, size, MAX_DEPTH) != size) fz_fail("nx_mp_validate_one disagrees");
  if (!nx_mp_equal(data, data)) fz_fail("nx_mp_equal(x, x) is false");
  fuzz_value(data, size);
  if (nx_snap_reset(snap, sb) != 0) fz_fail("nx_snap_reset failed");
  return 0;
}

/* libFuzzer harness: precompiled handlers (src/compiler.c) and the
 * bytecode loader behind executeCompiledHandler().
 *   (a) The raw input as a precompiled buffer: nx_compiler_unpack() must
 *       refuse it or point inside it, at a body that ends with it.
 *   (b) The input as a bytecode body inside a valid header (this runtime's
 *       engine tag and a correct checksum, so the input gets past the
 *       header checks), executed in NX_MODE_BYTECODE through the runtime.
 * QuickJS does not verify bytecode: crafted bytecode may do anything inside
 * its sandbox, but the runtime must still answer with a well-formed result
 * (the watchdog stops loops inside the engine 250 ms after the deadline).
 * A result that suspends is resumed or cancelled with choices read from the
 * input itself. */
#include <stdlib.h>
#include <string.h>

#include "compiler.h"
#include "mem.h"
#include "runner.h"

static char engine[NX_ENGINE_TAG_MAX];
static uint8_t *context;
static size_t context_len;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  static const char *const caps[] = {"state:read:*", "state:write:*", "events:emit:*",
                                     "view:update:*", "ext:*"};
  nx_config_t cfg;
  (void)argc;
  (void)argv;
  fz_config(&cfg);
  fz_runtime_start(&cfg);
  fz_engine_tag(engine, sizeof engine);
  fz_context(caps, sizeof caps / sizeof caps[0], &context, &context_len);
  return 0;
}

/* (a) The header check on arbitrary bytes. */
static void unpack_raw(const uint8_t *data, size_t size) {
  const uint8_t *bc = NULL;
  size_t bc_len = 0;
  if (nx_compiler_unpack(engine, data, size, &bc, &bc_len) != NULL) return;
  if (bc < data || bc > data + size || bc_len != (size_t)(data + size - bc))
    fz_fail("nx_compiler_unpack accepted a buffer but its body is not its tail");
}

/* (b) The input as the body of a sound buffer, run in a sandbox. */
static void run_wrapped(const uint8_t *data, size_t size) {
  fz_bytes_t choices = {data, size, 0};
  const uint8_t *bc = NULL;
  uint8_t *packed;
  size_t packed_len, bc_len = 0;
  nx_mem_t mem;

  nx_mem_init(&mem);
  if (nx_compiler_pack(&mem, engine, "fuzz", 4, data, size, &packed, &packed_len) != 0)
    fz_fail("nx_compiler_pack failed");
  if (nx_compiler_unpack(engine, packed, packed_len, &bc, &bc_len) != NULL || bc_len != size ||
      (size && memcmp(bc, data, size) != 0))
    fz_fail("nx_compiler_unpack does not give back what nx_compiler_pack packed");
  fz_finish(fz_execute(NX_MODE_BYTECODE, packed, packed_len, context, context_len), &choices);
  nx_mem_release(&mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  unpack_raw(data, size);
  run_wrapped(data, size);
  return 0;
}

/* Precompiled-handler format (see compiler.h). Little-endian header:
 *   0  magic "NXHB"        4  format version (u16)   6  engine tag length E (u16)
 *   8  SHA-256 of the source (names it; not checkable without the source)
 *  40  checksum: SHA-256 of every other byte of the buffer
 *  72  bytecode length L (u32)
 *  76  engine tag (E bytes), then the bytecode (L bytes).
 * The checksum catches a truncated or altered buffer, header included; it
 * does not make the bytecode trusted (anyone can recompute it), which is
 * why it is only ever read inside a sandbox. */
#include "compiler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"
#include "sha256.h"
#include "util.h"

#define MAGIC "NXHB"
#define FIXED 76u
#define SUM_AT 40u

void nx_compiler_engine_tag(char *out, size_t outlen, const char *qjs_version) {
  snprintf(out, outlen, "quickjs-wasi %s; quickjs-ng %.40s; bootstrap %.16s",
           nx_sandbox_engine_package(), qjs_version ? qjs_version : "?",
           nx_sandbox_bootstrap_sha256());
}

void nx_compiler_key(const char *engine, const char *language, const char *code, size_t code_len,
                     uint8_t key[32]) {
  nx_sha256_t s;
  nx_sha256_init(&s);
  /* Each NUL ends a name that holds none, so no two triples hash the same
   * bytes (a source may hold NULs; it comes last). */
  nx_sha256_update(&s, engine, strlen(engine) + 1);
  nx_sha256_update(&s, language, strlen(language) + 1);
  nx_sha256_update(&s, code, code_len);
  nx_sha256_final(&s, key);
}

/* SHA-256 over the whole buffer except the checksum field itself. */
static void checksum(const uint8_t *buf, size_t len, uint8_t out[32]) {
  nx_sha256_t s;
  nx_sha256_init(&s);
  nx_sha256_update(&s, buf, SUM_AT);
  nx_sha256_update(&s, buf + SUM_AT + 32, len - SUM_AT - 32);
  nx_sha256_final(&s, out);
}

int nx_compiler_pack(nx_mem_t *mem, const char *engine, const char *code, size_t code_len,
                     const uint8_t *bc, size_t bc_len, uint8_t **out, size_t *out_len) {
  size_t elen = strlen(engine);
  uint8_t *buf;
  if (elen > 0xffff || bc_len > 0xffffffffu) return -1;
  buf = nx_mem_alloc(mem, FIXED + elen + bc_len);
  if (buf == NULL) return -1;
  memcpy(buf, MAGIC, 4);
  nx_util_le16_put(buf + 4, NX_COMPILER_FORMAT);
  nx_util_le16_put(buf + 6, (uint32_t)elen);
  nx_sha256(code, code_len, buf + 8);
  nx_util_le32_put(buf + 72, (uint32_t)bc_len);
  memcpy(buf + FIXED, engine, elen);
  memcpy(buf + FIXED + elen, bc, bc_len);
  checksum(buf, FIXED + elen + bc_len, buf + SUM_AT);
  *out = buf;
  *out_len = FIXED + elen + bc_len;
  return 0;
}

const char *nx_compiler_unpack(const char *engine, const uint8_t *buf, size_t len,
                               const uint8_t **bc, size_t *bc_len) {
  size_t elen, blen;
  uint8_t digest[32];
  if (len < 4 || memcmp(buf, MAGIC, 4) != 0)
    return "bad magic: not a precompiled nexus-wasm-bridge handler";
  if (len < FIXED) return "truncated: the buffer ends inside the header";
  if (nx_util_le16_get(buf + 4) != NX_COMPILER_FORMAT) return "unsupported format version";
  elen = nx_util_le16_get(buf + 6);
  blen = nx_util_le32_get(buf + 72);
  if (len < FIXED + elen) return "truncated: the buffer ends inside the engine version";
  if (elen != strlen(engine) || memcmp(buf + FIXED, engine, elen) != 0)
    return "engine mismatch: compiled for another engine or bootstrap version";
  if (len - FIXED - elen < blen) return "truncated: the bytecode is shorter than the header says";
  if (len - FIXED - elen > blen) return "altered: bytes after the end of the bytecode";
  checksum(buf, len, digest);
  if (memcmp(digest, buf + SUM_AT, 32) != 0)
    return "altered: the buffer does not match its checksum";
  *bc = buf + FIXED + elen;
  *bc_len = blen;
  return NULL;
}

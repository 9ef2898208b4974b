'use strict';
// The portable-suspension blob: the native layer's bytes of one parked
// execution, compressed, wrapped with what the host checks before the native
// layer sees a byte (build, expiry, nonce), and signed with HMAC-SHA-256.
//
//   off  size  field
//   0    4     magic "NXSB"
//   4    1     format version (1)
//   5    16    nonce (random)
//   21   8     expiresAt: ms since the epoch, u64 LE
//   29   16    suspension id (the first pending call's)
//   45   2     engine build id length B, u16 LE
//   47   B     engine build id (ASCII)
//   ..   4     payload length P, u32 LE
//   ..   P     payload: the native bytes, deflate-raw
//   ..   32    HMAC-SHA-256 of everything above, with a suspensionKeys key
//
// Every field the host reads sits at a fixed place or behind a length that
// is checked against the blob's size: nothing is parsed before the
// signature is known good but these fixed fields (peekSuspension, which the
// stores use for replay protection, trusts nothing it reads).
const crypto = require('crypto');
const zlib = require('zlib');

const MAGIC = Buffer.from('NXSB', 'latin1');
const VERSION = 1;
const MAC_BYTES = 32;
const FIXED = 47; // up to the build id
// In the native payload (src/portable.c): magic, version, image digest,
// then the time left to stay parked, ns, u64 LE at this offset.
const NATIVE_REMAINING_AT = 40;
const MIN_BYTES = FIXED + 4 + MAC_BYTES;

class InvalidSuspensionError extends Error {
  constructor(check, message) {
    super(`invalid suspension (${check}): ${message}`);
    this.name = 'InvalidSuspensionError';
    this.code = 'INVALID_SUSPENSION';
    this.check = check;
  }
}

function asBuffer(blob) {
  if (Buffer.isBuffer(blob)) return blob;
  if (blob instanceof Uint8Array) return Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  throw new TypeError('a suspension blob must be a Uint8Array');
}

// The fixed fields, unverified. Throws InvalidSuspensionError ('format')
// when the blob cannot be one.
function peekSuspension(blob) {
  const b = asBuffer(blob);
  if (b.length < MIN_BYTES || !b.subarray(0, 4).equals(MAGIC)) {
    throw new InvalidSuspensionError('format', 'not a suspension blob (bad magic or too short)');
  }
  if (b[4] !== VERSION) {
    throw new InvalidSuspensionError('format', `format version ${b[4]}, this build reads ${VERSION}`);
  }
  const buildLen = b.readUInt16LE(45);
  const payloadAt = FIXED + buildLen + 4;
  if (payloadAt + MAC_BYTES > b.length) throw new InvalidSuspensionError('format', 'truncated');
  const payloadLen = b.readUInt32LE(FIXED + buildLen);
  if (payloadAt + payloadLen + MAC_BYTES !== b.length) {
    throw new InvalidSuspensionError('format', `truncated or padded: ${b.length} bytes, the fields say ${payloadAt + payloadLen + MAC_BYTES}`);
  }
  return {
    nonce: b.toString('hex', 5, 21),
    expiresAt: Number(b.readBigUInt64LE(21)),
    suspensionId: b.toString('hex', 29, 45),
    build: b.toString('latin1', FIXED, FIXED + buildLen),
    payloadAt,
    payloadLen,
  };
}

// Nonces come from a pool refilled 4 KiB at a time, as crypto.randomUUID()
// does: one call into the kernel's generator per 256 nonces.
const pool = Buffer.alloc(4096);
let poolAt = pool.length;
function nonceInto(buf, at) {
  if (poolAt === pool.length) {
    crypto.randomFillSync(pool);
    poolAt = 0;
  }
  pool.copy(buf, at, poolAt, poolAt + 16);
  poolAt += 16;
}

function mac(key, body) {
  return crypto.createHmac('sha256', key).update(body).digest();
}

// { build, suspensionId (hex), expiresAt (ms), payload (Buffer) } -> blob,
// signed with keys[0].
function sealSuspension(keys, { build, suspensionId, expiresAt, payload }) {
  const packed = zlib.deflateRawSync(payload, { level: 1 });
  const buildBytes = Buffer.from(build, 'latin1');
  const body = Buffer.allocUnsafe(FIXED + buildBytes.length + 4 + packed.length + MAC_BYTES);
  MAGIC.copy(body, 0);
  body[4] = VERSION;
  nonceInto(body, 5);
  body.writeBigUInt64LE(BigInt(Math.floor(expiresAt)), 21);
  body.write(suspensionId, 29, 16, 'hex');
  body.writeUInt16LE(buildBytes.length, 45);
  buildBytes.copy(body, FIXED);
  body.writeUInt32LE(packed.length, FIXED + buildBytes.length);
  packed.copy(body, FIXED + buildBytes.length + 4);
  const end = body.length - MAC_BYTES;
  mac(keys[0], body.subarray(0, end)).copy(body, end);
  return new Uint8Array(body.buffer, body.byteOffset, body.length);
}

// Checks, in order: format, signature (any of keys), expiry, engine build;
// returns the peeked fields and the inflated payload.
function openSuspension(keys, blob, build, now = Date.now()) {
  const b = asBuffer(blob);
  const fields = peekSuspension(b);
  const end = b.length - MAC_BYTES;
  const got = b.subarray(end);
  if (!keys.some((key) => crypto.timingSafeEqual(mac(key, b.subarray(0, end)), got))) {
    throw new InvalidSuspensionError('signature', 'the signature matches none of config.suspensionKeys');
  }
  if (fields.expiresAt <= now) {
    throw new InvalidSuspensionError('expiry', `expired ${now - fields.expiresAt} ms ago`);
  }
  if (fields.build !== build) {
    throw new InvalidSuspensionError('build', `made by engine build ${fields.build}, this is ${build}`);
  }
  let payload;
  try {
    payload = zlib.inflateRawSync(b.subarray(fields.payloadAt, fields.payloadAt + fields.payloadLen), { maxOutputLength: 1 << 30 });
  } catch (err) {
    throw new InvalidSuspensionError('payload', `the payload does not inflate (${err.message})`);
  }
  return { ...fields, payload };
}

module.exports = { peekSuspension, sealSuspension, openSuspension, InvalidSuspensionError, NATIVE_REMAINING_AT };

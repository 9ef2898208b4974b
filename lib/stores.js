'use strict';
// Suspension stores: where exported suspension blobs wait, under their
// suspension id, until one process claims them. Two implementations of one
// interface, MemorySuspensionStore (one process) and RedisSuspensionStore
// (any number of processes sharing a Redis server).
//
// The SuspensionStore interface (index.d.ts):
//   put(id, blob, ttlMs) -> Promise<void>
//     Stores blob under id for ttlMs ms, replacing what id held. Rejects
//     with InvalidSuspensionError ('format') when blob is not a suspension
//     blob (lib/suspension.js: peekSuspension; the signature is not checked,
//     stores hold no keys).
//   claim(id) -> Promise<Uint8Array | null>
//     Takes the blob out of the store: of any number of concurrent claims of
//     one id, exactly one resolves with the blob, the others with null (as
//     does a claim of an id never put, deleted or past its ttl). The claim
//     records the blob's nonce; a blob whose nonce this store has already
//     handed out (a captured blob put again, under any id) is deleted and
//     the claim rejects with InvalidSuspensionError ('replay'). A nonce is
//     remembered until the blob's expiresAt plus replayMarginMs: after that
//     the blob no longer opens (openSuspension checks expiresAt), so nothing
//     is lost by forgetting it. The margin covers clock skew between the
//     process that claims and the one that imports.
//   delete(id) -> Promise<boolean>
//     Removes the blob; true when there was one. The nonce is not recorded.
// Ids are suspension ids: 32 lowercase hex digits.
const { peekSuspension, InvalidSuspensionError } = require('./suspension');

const ID = /^[0-9a-f]{32}$/;
const MAX_TTL_MS = 2 ** 31 - 1;
const DEFAULT_MARGIN_MS = 60_000;
// A nonce is remembered for at most this long (about 4,000 years): an
// absurd expiresAt in an unsigned blob must not make Redis refuse the PX.
const MAX_NONCE_MS = 2 ** 47;
const DEFAULT_PREFIX = 'nexus:suspension:';

function checkId(id) {
  if (typeof id !== 'string') throw new TypeError('a suspension id must be a string');
  if (!ID.test(id)) throw new RangeError(`a suspension id is 32 lowercase hex digits, got ${JSON.stringify(id.slice(0, 40))}`);
}

function checkTtl(ttlMs) {
  if (typeof ttlMs !== 'number') throw new TypeError('ttlMs must be a number');
  if (!Number.isInteger(ttlMs) || ttlMs < 1 || ttlMs > MAX_TTL_MS) {
    throw new RangeError(`ttlMs must be an integer in [1, ${MAX_TTL_MS}], got ${ttlMs}`);
  }
}

// -> the blob's peeked fields; throws TypeError or InvalidSuspensionError.
function checkBlob(blob) {
  if (!(blob instanceof Uint8Array)) throw new TypeError('a suspension blob must be a Uint8Array');
  return peekSuspension(blob);
}

function storeOptions(options, extra) {
  if (options === undefined) options = {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError('the store options must be an object');
  }
  const margin = options.replayMarginMs ?? DEFAULT_MARGIN_MS;
  if (typeof margin !== 'number') throw new TypeError('options.replayMarginMs must be a number');
  if (!Number.isInteger(margin) || margin < 0 || margin > MAX_TTL_MS) {
    throw new RangeError(`options.replayMarginMs must be an integer in [0, ${MAX_TTL_MS}], got ${margin}`);
  }
  for (const key of Object.keys(options)) {
    if (key !== 'replayMarginMs' && !extra.includes(key) && options[key] !== undefined) {
      throw new TypeError(`options.${key} is not a known option`);
    }
  }
  return margin;
}

const nonceMs = (expiresAt, now, margin) => Math.min(Math.max(expiresAt - now, 0) + margin, MAX_NONCE_MS);

const replayError = (nonce) =>
  new InvalidSuspensionError('replay', `a blob with nonce ${nonce} was already claimed from this store`);

const asUint8Array = (b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

// One process's store: a Map of copies, swept of expired entries at most
// once a second on access (no timer: it never keeps the process alive).
class MemorySuspensionStore {
  #blobs = new Map(); // id -> { bytes, deadline, nonce, expiresAt }
  #nonces = new Map(); // nonce (hex) -> deadline
  #margin;
  #swept = 0;

  constructor(options) {
    this.#margin = storeOptions(options, []);
  }

  #sweep(now) {
    if (now - this.#swept < 1000) return;
    this.#swept = now;
    for (const [id, e] of this.#blobs) if (e.deadline <= now) this.#blobs.delete(id);
    for (const [nonce, deadline] of this.#nonces) if (deadline <= now) this.#nonces.delete(nonce);
  }

  async put(id, blob, ttlMs) {
    checkId(id);
    const fields = checkBlob(blob);
    checkTtl(ttlMs);
    const now = Date.now();
    this.#sweep(now);
    // A copy: the caller may reuse its buffer.
    const bytes = Uint8Array.prototype.slice.call(blob);
    this.#blobs.set(id, { bytes, deadline: now + ttlMs, nonce: fields.nonce, expiresAt: fields.expiresAt });
  }

  // Nothing is awaited between the lookup and the delete: concurrent claims
  // in this process cannot both see the entry.
  async claim(id) {
    checkId(id);
    const now = Date.now();
    this.#sweep(now);
    const e = this.#blobs.get(id);
    if (!e) return null;
    this.#blobs.delete(id);
    if (e.deadline <= now) return null;
    const seen = this.#nonces.get(e.nonce);
    if (seen !== undefined && seen > now) throw replayError(e.nonce);
    this.#nonces.set(e.nonce, now + nonceMs(e.expiresAt, now, this.#margin));
    return e.bytes;
  }

  async delete(id) {
    checkId(id);
    const now = Date.now();
    this.#sweep(now);
    const e = this.#blobs.get(id);
    this.#blobs.delete(id);
    return e !== undefined && e.deadline > now;
  }
}

// The claim, atomic on the server: take the blob (GETDEL), read its nonce
// (bytes 5..21) and expiresAt (u64 LE at 21..29) at their fixed places, and
// record the nonce with SET NX. A blob whose nonce was recorded already is
// not handed out (it is deleted all the same).
//   KEYS[1] the blob's key; KEYS[2] the nonce keys' prefix (a key name to
//   ioredis, so a client's keyPrefix applies to it too)
//   ARGV[1] the claimant's clock (ms); ARGV[2] replayMarginMs; ARGV[3] the
//   longest a nonce is kept
// -> nil (no blob), {1, blob}, {2, nonce hex} (replay), {3} (not a blob).
const CLAIM_LUA = `
local blob = redis.call('GETDEL', KEYS[1])
if not blob then return nil end
if #blob < 45 or string.sub(blob, 1, 4) ~= 'NXSB' then return {3} end
local hex = {}
for i = 6, 21 do hex[#hex + 1] = string.format('%02x', string.byte(blob, i)) end
local nonce = table.concat(hex)
local expiresAt = 0
for i = 29, 22, -1 do expiresAt = expiresAt * 256 + string.byte(blob, i) end
local ms = math.max(expiresAt - tonumber(ARGV[1]), 0) + tonumber(ARGV[2])
ms = math.floor(math.min(ms, tonumber(ARGV[3])))
if ms < 1 then ms = 1 end
if redis.call('SET', KEYS[2] .. nonce, '1', 'NX', 'PX', ms) then return {1, blob} end
return {2, nonce}
`;
const CLAIM_COMMAND = 'nexusSuspensionClaim';

// Defaults for a client the store makes: a command fails (it does not wait
// for ever) when the server is down (two reconnection attempts, 50 and
// 100 ms apart), unreachable (connectTimeout) or does not answer
// (commandTimeout). A claim that times out may have taken the blob on the
// server all the same: the blob is then lost, never handed out twice.
const CLIENT_DEFAULTS = { maxRetriesPerRequest: 2, connectTimeout: 5000, commandTimeout: 5000 };

// A store on a Redis server (>= 6.2, for GETDEL), shared by any number of
// processes. Keys: <prefix>s:<id> holds a blob, <prefix>n:<nonce> a claimed
// nonce. The claim script reaches a key it is not given (the nonce's), so
// on Redis Cluster the prefix needs a hash tag ('{nexus}:suspension:').
class RedisSuspensionStore {
  #client;
  #owned;
  #margin;
  #prefix;

  // options: { redis } a connected ioredis client (the caller closes it),
  // or { url } and/or ioredis options (the store makes the client and
  // close() quits it); prefix; replayMarginMs.
  constructor(options) {
    if (options === undefined) options = {};
    if (options === null || typeof options !== 'object' || Array.isArray(options)) {
      throw new TypeError('the store options must be an object');
    }
    const { redis, url, prefix = DEFAULT_PREFIX, replayMarginMs, ...clientOptions } = options;
    this.#margin = storeOptions({ replayMarginMs }, []);
    if (typeof prefix !== 'string' || prefix === '') throw new TypeError('options.prefix must be a non-empty string');
    if (url !== undefined && typeof url !== 'string') throw new TypeError('options.url must be a string');
    this.#prefix = prefix;
    if (redis !== undefined) {
      if (url !== undefined || Object.keys(clientOptions).length) {
        throw new TypeError('options.redis is a client of the caller: give it, or url and client options, not both');
      }
      if (redis === null || typeof redis !== 'object' || typeof redis.defineCommand !== 'function') {
        throw new TypeError('options.redis must be an ioredis client');
      }
      this.#client = redis;
      this.#owned = false;
    } else {
      const Redis = require('ioredis');
      const opts = { ...CLIENT_DEFAULTS, ...clientOptions };
      this.#client = url === undefined ? new Redis(opts) : new Redis(url, opts);
      this.#owned = true;
      // Failures reach the caller as rejected commands; without a listener
      // ioredis would print each reconnection error.
      this.#client.on('error', () => {});
    }
    if (typeof this.#client[`${CLAIM_COMMAND}Buffer`] !== 'function') {
      this.#client.defineCommand(CLAIM_COMMAND, { numberOfKeys: 2, lua: CLAIM_LUA });
    }
  }

  get prefix() {
    return this.#prefix;
  }

  async put(id, blob, ttlMs) {
    checkId(id);
    checkBlob(blob);
    checkTtl(ttlMs);
    const b = Buffer.isBuffer(blob) ? blob : Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
    await this.#client.set(`${this.#prefix}s:${id}`, b, 'PX', ttlMs);
  }

  async claim(id) {
    checkId(id);
    const r = await this.#client[`${CLAIM_COMMAND}Buffer`](
      `${this.#prefix}s:${id}`,
      `${this.#prefix}n:`,
      Date.now(),
      this.#margin,
      MAX_NONCE_MS,
    );
    if (r === null) return null;
    if (r[0] === 1) return asUint8Array(r[1]);
    if (r[0] === 2) throw replayError(r[1].toString('latin1'));
    throw new InvalidSuspensionError('format', `the value under ${this.#prefix}s:${id} is not a suspension blob`);
  }

  async delete(id) {
    checkId(id);
    return (await this.#client.del(`${this.#prefix}s:${id}`)) > 0;
  }

  // Quits the client the store made; a client given as options.redis is
  // left to its owner.
  async close() {
    if (!this.#owned) return;
    const c = this.#client;
    if (c.status === 'end') return;
    if (c.status !== 'ready') {
      c.disconnect();
      return;
    }
    try {
      await c.quit();
    } catch {
      c.disconnect();
    }
  }
}

module.exports = { MemorySuspensionStore, RedisSuspensionStore };

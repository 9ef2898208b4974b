'use strict';
// The suspension stores (lib/stores.js) held to the SuspensionStore
// contract: exactly one claimant per blob (in one process, and for Redis
// across processes), nonce replay protection, TTLs, argument checks. The
// Redis store runs against a real redis-server started by test/redis.js.
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('crypto');
const path = require('path');
const { spawn } = require('child_process');
const Redis = require('ioredis');
const { MemorySuspensionStore, RedisSuspensionStore } = require('..');
const { sealSuspension, peekSuspension } = require('../lib/suspension');
const { startRedis, freePort } = require('./redis');

const KEYS = [crypto.randomBytes(32)];
const newId = () => crypto.randomBytes(16).toString('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');

function blobFor(id, expiresIn = 60_000) {
  return sealSuspension(KEYS, { build: 'test-build', suspensionId: id, expiresAt: Date.now() + expiresIn, payload: crypto.randomBytes(200) });
}

const isReplay = { name: 'InvalidSuspensionError', code: 'INVALID_SUSPENSION', check: 'replay' };

// A hang detector, not a speed check: fails the test instead of leaving it
// to node:test's own (absent) timeout.
function settlesWithin(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

// The contract every store keeps. make(options) -> a store.
function contractSuite(make) {
  test('claim returns the bytes put, once; a second claim gets null', async () => {
    const store = make();
    const id = newId();
    const blob = blobFor(id);
    const before = Buffer.from(blob);
    await store.put(id, blob, 10_000);
    blob.fill(0); // the store kept its own copy
    const got = await store.claim(id);
    assert.ok(got instanceof Uint8Array);
    assert.deepEqual(Buffer.from(got), before);
    assert.equal(await store.claim(id), null);
    assert.equal(await store.claim(newId()), null, 'an id never put');
  });

  test('put replaces what an id held', async () => {
    const store = make();
    const id = newId();
    const a = blobFor(id);
    const b = blobFor(id);
    await store.put(id, a, 10_000);
    await store.put(id, b, 10_000);
    assert.deepEqual(Buffer.from(await store.claim(id)), Buffer.from(b));
    assert.equal(await store.claim(id), null);
  });

  test('delete removes the blob and says whether there was one; it records no nonce', async () => {
    const store = make();
    const id = newId();
    const blob = blobFor(id);
    await store.put(id, blob, 10_000);
    assert.equal(await store.delete(id), true);
    assert.equal(await store.delete(id), false);
    assert.equal(await store.claim(id), null);
    await store.put(id, blob, 10_000);
    assert.deepEqual(Buffer.from(await store.claim(id)), Buffer.from(blob), 'a deleted blob was never handed out');
  });

  test('a blob past its ttl is gone', async () => {
    const store = make();
    const id = newId();
    await store.put(id, blobFor(id), 50);
    await sleep(200);
    assert.equal(await store.claim(id), null);
    assert.equal(await store.delete(id), false);
    const other = newId();
    await store.put(other, blobFor(other), 50);
    await sleep(200);
    assert.equal(await store.delete(other), false);
  });

  test('replay: a claimed blob put again, under its id or another, is refused and deleted', async () => {
    const store = make();
    const id = newId();
    const blob = blobFor(id);
    await store.put(id, blob, 10_000);
    assert.notEqual(await store.claim(id), null);

    await store.put(id, blob, 10_000);
    await assert.rejects(store.claim(id), { ...isReplay, message: new RegExp(peekSuspension(blob).nonce) });
    assert.equal(await store.claim(id), null, 'the refused blob is deleted');

    const other = newId();
    await store.put(other, blob, 10_000);
    await assert.rejects(store.claim(other), isReplay);
    assert.equal(await store.claim(other), null);

    // A new blob (a new nonce) under the same id is handed out.
    const fresh = blobFor(id);
    await store.put(id, fresh, 10_000);
    assert.deepEqual(Buffer.from(await store.claim(id)), Buffer.from(fresh));
  });

  test('a nonce is remembered until the blob expires plus replayMarginMs, not for ever', async () => {
    const store = make({ replayMarginMs: 0 });
    const id = newId();
    const blob = blobFor(id, 150);
    await store.put(id, blob, 10_000);
    assert.notEqual(await store.claim(id), null);
    await store.put(id, blob, 10_000);
    await assert.rejects(store.claim(id), isReplay, 'still remembered before expiresAt');
    await sleep(400);
    // Past expiresAt: the store forgets the nonce (openSuspension would
    // refuse the expired blob), so the blob is handed out again.
    await store.put(id, blob, 10_000);
    assert.deepEqual(Buffer.from(await store.claim(id)), Buffer.from(blob));
  });

  test('50 concurrent claims of one id: exactly one gets the blob', async () => {
    const store = make();
    for (let round = 0; round < 5; round++) {
      const id = newId();
      const blob = blobFor(id);
      await store.put(id, blob, 10_000);
      const got = await Promise.all(Array.from({ length: 50 }, () => store.claim(id)));
      const winners = got.filter((g) => g !== null);
      assert.equal(winners.length, 1);
      assert.deepEqual(Buffer.from(winners[0]), Buffer.from(blob));
    }
  });

  test('bad arguments are rejected with TypeError, RangeError or INVALID_SUSPENSION', async () => {
    const store = make();
    const id = newId();
    const blob = blobFor(id);
    for (const bad of [undefined, null, 42, Buffer.from(id, 'hex')]) {
      await assert.rejects(store.put(bad, blob, 1000), TypeError);
      await assert.rejects(store.claim(bad), TypeError);
      await assert.rejects(store.delete(bad), TypeError);
    }
    for (const bad of ['', id.slice(1), id + '0', id.toUpperCase(), 'g'.repeat(32), ` ${id.slice(1)}`]) {
      await assert.rejects(store.put(bad, blob, 1000), RangeError, bad);
      await assert.rejects(store.claim(bad), RangeError, bad);
      await assert.rejects(store.delete(bad), RangeError, bad);
    }
    for (const bad of [undefined, '1000', 1000n, null]) await assert.rejects(store.put(id, blob, bad), TypeError);
    for (const bad of [0, -1, 1.5, NaN, Infinity, 2 ** 31]) await assert.rejects(store.put(id, blob, bad), RangeError, String(bad));
    for (const bad of [undefined, 'blob', [1, 2, 3], blob.buffer, new DataView(blob.buffer)]) {
      await assert.rejects(store.put(id, bad, 1000), TypeError);
    }
    const notBlobs = [new Uint8Array(0), Buffer.from('not a suspension blob at all, just some bytes'.repeat(3)), blob.subarray(0, blob.length - 1)];
    for (const bad of notBlobs) await assert.rejects(store.put(id, bad, 1000), { code: 'INVALID_SUSPENSION', check: 'format' });
    assert.equal(await store.claim(id), null, 'nothing was stored by the refused puts');
    await store.put(id, blob, 2 ** 31 - 1);
    assert.equal(await store.delete(id), true, 'the largest ttl is accepted');
  });
}

describe('MemorySuspensionStore', () => {
  contractSuite((options) => new MemorySuspensionStore(options));

  test('constructor options are checked', () => {
    assert.throws(() => new MemorySuspensionStore(null), TypeError);
    assert.throws(() => new MemorySuspensionStore({ replayMarginMs: '1' }), TypeError);
    assert.throws(() => new MemorySuspensionStore({ replayMarginMs: -1 }), RangeError);
    assert.throws(() => new MemorySuspensionStore({ prefix: 'x' }), { name: 'TypeError', message: /options\.prefix is not a known option/ });
  });
});

describe('RedisSuspensionStore', () => {
  let redis;
  let raw; // a plain client, to look at the keys
  const stores = [];
  const make = (options) => {
    const s = new RedisSuspensionStore({ url: redis.url, ...options });
    stores.push(s);
    return s;
  };

  before(async () => {
    redis = await startRedis();
    raw = new Redis(redis.url);
  });
  after(async () => {
    for (const s of stores) await s.close();
    raw?.disconnect();
    await redis?.stop();
  });

  contractSuite(make);

  test('keys: the blob under <prefix>s:<id> with the ttl, the claimed nonce under <prefix>n:<nonce> until expiresAt + margin', async () => {
    const store = make({ prefix: 'layout:', replayMarginMs: 5000 });
    const id = newId();
    const blob = blobFor(id, 60_000);
    await store.put(id, blob, 30_000);
    assert.deepEqual(await raw.getBuffer(`layout:s:${id}`), Buffer.from(blob));
    const pttl = await raw.pttl(`layout:s:${id}`);
    assert.ok(pttl > 0 && pttl <= 30_000, String(pttl));
    assert.notEqual(await store.claim(id), null);
    assert.equal(await raw.exists(`layout:s:${id}`), 0);
    const { nonce, expiresAt } = peekSuspension(blob);
    const nttl = await raw.pttl(`layout:n:${nonce}`);
    assert.ok(nttl > 0 && nttl <= expiresAt - Date.now() + 5000 + 1000, String(nttl));
    assert.ok(nttl > 60_000, `kept past expiresAt by the margin: ${nttl}`);
  });

  test('prefix isolation: two stores with different prefixes on one server share nothing', async () => {
    const a = make({ prefix: 'tenant-a:' });
    const b = make({ prefix: 'tenant-b:' });
    const id = newId();
    const blobA = blobFor(id);
    const blobB = blobFor(id);
    await a.put(id, blobA, 10_000);
    assert.equal(await b.claim(id), null);
    assert.equal(await b.delete(id), false);
    await b.put(id, blobB, 10_000);
    assert.deepEqual(Buffer.from(await a.claim(id)), Buffer.from(blobA));
    assert.deepEqual(Buffer.from(await b.claim(id)), Buffer.from(blobB));
    // Nonces too: a blob claimed through a is new to b.
    await b.put(id, blobA, 10_000);
    assert.deepEqual(Buffer.from(await b.claim(id)), Buffer.from(blobA));
    await a.put(id, blobA, 10_000);
    await assert.rejects(a.claim(id), isReplay);
  });

  test('a value under the key that put did not write is refused as INVALID_SUSPENSION and deleted', async () => {
    const store = make();
    const id = newId();
    await raw.set(`${store.prefix}s:${id}`, 'hello');
    await assert.rejects(store.claim(id), { code: 'INVALID_SUSPENSION', check: 'format' });
    assert.equal(await raw.exists(`${store.prefix}s:${id}`), 0);
  });

  test('a caller-owned client: the store uses it and close() leaves it open', async () => {
    const client = new Redis(redis.url);
    try {
      const store = new RedisSuspensionStore({ redis: client, prefix: 'owned:' });
      const id = newId();
      const blob = blobFor(id);
      await store.put(id, blob, 10_000);
      assert.deepEqual(Buffer.from(await store.claim(id)), Buffer.from(blob));
      await store.close();
      assert.equal(await client.ping(), 'PONG');
      // A second store on the same client (the claim script is defined once).
      const again = new RedisSuspensionStore({ redis: client, prefix: 'owned:' });
      await again.put(id, blob, 10_000);
      await assert.rejects(again.claim(id), isReplay);
    } finally {
      client.disconnect();
    }
  });

  test('constructor options are checked', () => {
    assert.throws(() => new RedisSuspensionStore(null), TypeError);
    assert.throws(() => new RedisSuspensionStore({ redis: {} }), { name: 'TypeError', message: /ioredis client/ });
    assert.throws(() => new RedisSuspensionStore({ redis: raw, url: redis.url }), { name: 'TypeError', message: /not both/ });
    assert.throws(() => new RedisSuspensionStore({ url: 6379, lazyConnect: true }), TypeError);
    assert.throws(() => new RedisSuspensionStore({ prefix: '', lazyConnect: true }), TypeError);
    assert.throws(() => new RedisSuspensionStore({ replayMarginMs: 0.5, lazyConnect: true }), RangeError);
  });

  test('4 processes claim each of 20 ids at once: exactly one winner per id', async () => {
    const store = make({ prefix: 'race:' });
    const claimant = path.join(__dirname, 'stores-claimant.js');
    const kids = Array.from({ length: 4 }, () => {
      const child = spawn(process.execPath, [claimant, redis.url, 'race:'], { stdio: ['pipe', 'pipe', 'inherit'] });
      const lines = [];
      let waiting = null;
      let buf = '';
      child.stdout.on('data', (d) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          lines.push(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
        if (waiting) waiting();
      });
      const exited = new Promise((resolve) => child.once('exit', resolve));
      // -> the next line the claimant prints
      const next = async () => {
        while (!lines.length) await new Promise((r) => (waiting = r));
        return lines.shift();
      };
      return { child, next, exited };
    });
    try {
      for (const k of kids) assert.equal(await settlesWithin(k.next(), 20_000, 'a claimant start'), 'ready');
      for (let round = 0; round < 20; round++) {
        const id = newId();
        const blob = blobFor(id);
        await store.put(id, blob, 10_000);
        // The start signal: one line to each claimant, written back to back.
        for (const k of kids) k.child.stdin.write(`${round} ${id}\n`);
        const answers = await Promise.all(kids.map((k) => settlesWithin(k.next(), 20_000, 'a claim').then(JSON.parse)));
        for (const a of answers) assert.deepEqual([a.round, a.id], [round, id]);
        const got = answers.map((a) => a.got);
        assert.equal(got.filter((g) => g === sha(blob)).length, 1, `round ${round}: ${JSON.stringify(got)}`);
        assert.equal(got.filter((g) => g === null).length, 3, `round ${round}: ${JSON.stringify(got)}`);
      }
    } finally {
      for (const k of kids) k.child.stdin.end();
      const codes = await Promise.all(kids.map((k) => settlesWithin(k.exited, 20_000, 'a claimant exit')));
      assert.deepEqual(codes, [0, 0, 0, 0]);
    }
  });

  test('a port nothing listens on: put, claim and delete reject, they do not hang', async () => {
    const port = await freePort();
    const store = make({ url: `redis://127.0.0.1:${port}` });
    const id = newId();
    await assert.rejects(settlesWithin(store.claim(id), 30_000, 'claim'), (err) => !/did not settle/.test(err.message));
    await assert.rejects(settlesWithin(store.put(id, blobFor(id), 1000), 30_000, 'put'), (err) => !/did not settle/.test(err.message));
    await assert.rejects(settlesWithin(store.delete(id), 30_000, 'delete'), (err) => !/did not settle/.test(err.message));
  });

  test('a server that stops under a connected store: claim rejects, it does not hang', async () => {
    const own = await startRedis();
    const store = new RedisSuspensionStore({ url: own.url });
    try {
      const id = newId();
      await store.put(id, blobFor(id), 10_000);
      await own.stop();
      await assert.rejects(settlesWithin(store.claim(id), 30_000, 'claim'), (err) => !/did not settle/.test(err.message));
    } finally {
      await store.close();
      await own.stop();
    }
  });
});

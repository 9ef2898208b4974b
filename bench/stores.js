'use strict';
// Suspension store round trips: put and claim, one at a time, of a sealed
// blob, against a redis-server this script starts on a free loopback port
// (test/redis.js; REDIS_URL=redis://... uses that server instead), and the
// in-process MemorySuspensionStore for comparison. Run it as
//
//     node bench/stores.js       (STORES_N samples of each, default 1000;
//                                 STORES_PAYLOAD payload bytes, default 4096)
//
// Each put is of a fresh blob (a fresh nonce) under a fresh id, each claim
// takes it back: a claim is one EVALSHA (GETDEL + the nonce's SET NX), a put
// one SET. Figures are printed, never checked.
const crypto = require('crypto');
const { MemorySuspensionStore, RedisSuspensionStore } = require('..');
const { sealSuspension } = require('../lib/suspension');
const { startRedis } = require('../test/redis');
const { summarize } = require('./common');

const N = Number(process.env.STORES_N || 1000);
const PAYLOAD = Number(process.env.STORES_PAYLOAD || 4096);
const WARMUP = 50;
const KEYS = [crypto.randomBytes(32)];

function blobs(n) {
  return Array.from({ length: n }, () => {
    const id = crypto.randomBytes(16).toString('hex');
    // Random bytes do not deflate: the blob is about PAYLOAD bytes.
    const blob = sealSuspension(KEYS, { build: 'bench', suspensionId: id, expiresAt: Date.now() + 600_000, payload: crypto.randomBytes(PAYLOAD) });
    return { id, blob };
  });
}

async function measure(name, store) {
  for (const { id, blob } of blobs(WARMUP)) {
    await store.put(id, blob, 60_000);
    await store.claim(id);
  }
  const put = [];
  const claim = [];
  for (const { id, blob } of blobs(N)) {
    let t = process.hrtime.bigint();
    await store.put(id, blob, 60_000);
    put.push(Number(process.hrtime.bigint() - t) / 1000);
    t = process.hrtime.bigint();
    const got = await store.claim(id);
    claim.push(Number(process.hrtime.bigint() - t) / 1000);
    if (got === null || got.length !== blob.length) throw new Error(`${name}: claim lost the blob`);
  }
  const row = (op, s) => {
    const { p50, p99, mean } = summarize(s);
    return `  ${op.padEnd(6)} p50 ${p50.toFixed(0).padStart(6)} µs   p99 ${p99.toFixed(0).padStart(6)} µs   mean ${mean.toFixed(0).padStart(6)} µs`;
  };
  console.log(`${name} (${N} of each, ${blobs(1)[0].blob.length}-byte blobs)`);
  console.log(row('put', put));
  console.log(row('claim', claim));
}

async function main() {
  await measure('MemorySuspensionStore', new MemorySuspensionStore());
  const server = process.env.REDIS_URL ? null : await startRedis();
  const url = process.env.REDIS_URL || server.url;
  const store = new RedisSuspensionStore({ url, prefix: `nexus:bench:${process.pid}:` });
  try {
    await measure(`RedisSuspensionStore (${url}${server ? ', started by this script' : ''})`, store);
  } finally {
    await store.close();
    if (server) await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

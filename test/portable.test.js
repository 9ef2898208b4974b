'use strict';
// Portable suspensions: runtime.exportSuspension turns a parked execution
// into a signed blob, importSuspension parks it in another runtime (or
// another process) where it resumes as if it had never moved. Every check a
// blob goes through is refused here once, and forged-but-signed payloads
// run in a child process (test/security/harness.js) so that a crash in the
// native layer fails a test instead of the runner.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const zlib = require('zlib');
const { spawnSync } = require('child_process');
const { context, runtime } = require('./helpers');
const { runInChild } = require('./security/harness');
const { peekSuspension, sealSuspension } = require('../lib/suspension');
const { WEATHER, WEATHER_CONTEXT } = require('./fixtures/portable-child');

const KEY = 'portable-test-key-0123456789abcdef';
const OTHER_KEY = 'another-key-entirely-fedcba987654';
const KEYS = [KEY];
const REGISTRY = { kv: ['get'], http: ['get'] };
const CHILD = path.join(__dirname, 'fixtures', 'portable-child.js');
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const ctx = (over = {}) => context({ extensionRegistry: REGISTRY, ...over });
const invalid = (check) => ({ code: 'INVALID_SUSPENSION', check });
const NOT_FOUND = { code: 'SUSPENSION_NOT_FOUND' };

const made = [];
const rt = (config = {}) => {
  const r = runtime({ workers: 1, suspensionKeys: KEYS, ...config });
  made.push(r);
  return r;
};
const A = rt();
const B = rt();
const C = rt();
test.after(() => Promise.all(made.map((r) => r.shutdown())));

// What a result says, without its timings and the random suspension ids.
function comparable(r) {
  const out = {
    status: r.status,
    returnValue: r.returnValue,
    error: r.error && { code: r.error.code, message: r.error.message },
    stateMutations: r.stateMutations,
    events: r.events,
    viewCommands: r.viewCommands,
    logs: r.logs,
    hostCalls: r.metrics.hostCalls,
  };
  if (r.status === 'suspended') out.pendingCalls = r.pendingCalls.map(({ suspensionId, ...call }) => call);
  return out;
}

const answersFor = (r, answer) => r.pendingCalls.map((c) => ({ suspensionId: c.suspensionId, result: { success: true, value: answer(c) } }));

// Runs `code` on A and resumes it there until it ends: every result.
async function inProcess(code, over, answer, options) {
  const seen = [await A.executeHandler(code, ctx(over), undefined, options)];
  while (seen.at(-1).status === 'suspended') seen.push(await A.resumeAll(answersFor(seen.at(-1), answer)));
  return seen;
}

// The same, but every suspension is exported and imported into the next
// runtime of `hops` (round robin) before it is resumed there.
async function carried(code, over, answer, options, hops = [B]) {
  const seen = [await A.executeHandler(code, ctx(over), undefined, options)];
  let from = A;
  for (let i = 0; seen.at(-1).status === 'suspended'; i++) {
    const parked = seen.at(-1);
    const blob = await from.exportSuspension(parked.suspension.suspensionId);
    assert.ok(blob instanceof Uint8Array);
    await assert.rejects(from.resumeAll(answersFor(parked, answer)), NOT_FOUND, 'released where it was exported');
    const to = hops[i % hops.length];
    const imported = await to.importSuspension(blob, { result: true });
    assert.equal(imported.status, 'suspended');
    assert.deepEqual(imported.pendingCalls, parked.pendingCalls, 'the same pending calls, ids included');
    seen.push(await to.resumeAll(answersFor(imported, answer)));
    from = to;
  }
  return seen;
}

async function assertSame(code, over, answer, options, hops) {
  const here = await inProcess(code, over, answer, options);
  const there = await carried(code, over, answer, options, hops);
  assert.deepEqual(there.map(comparable), here.map(comparable));
  assert.equal(here.at(-1).status, 'success', JSON.stringify(here.at(-1).error));
  return there;
}

// A fresh parked execution of the trivial handler on `r`, and its blob.
const TRIVIAL = "$state.count++; $emit('changed', $state.count); const v = await $ext.kv.get('k'); return v + $state.count";
async function exported(r = A) {
  const s = await r.executeHandler(TRIVIAL, ctx({ stateSnapshot: { count: 1 } }));
  assert.equal(s.status, 'suspended');
  return { id: s.suspension.suspensionId, blob: await r.exportSuspension(s.suspension.suspensionId) };
}
const answer40 = (id) => ({ suspensionId: id, result: { success: true, value: 40 } });

// ---- a: export -> import -> resume is an in-process resume -------------

test('trivial handler: carried to a second runtime, it resumes to the in-process result', async () => {
  const r = await assertSame(TRIVIAL, { stateSnapshot: { count: 1 } }, () => 40);
  assert.deepEqual(r[0].stateMutations, [{ key: 'count', operation: 'set', value: 2 }], 'effects before the await come with the suspension');
  assert.deepEqual(r.at(-1).stateMutations, []);
  assert.equal(r.at(-1).returnValue, 42);
});

test('three parallel $ext calls (Promise.all) answered with resumeAll after the import', async () => {
  const code = `const [a, b, c] = await Promise.all([$ext.kv.get('a'), $ext.http.get('/b'), $ext.kv.get('c')]);
    $state.sum = a + b + c; $emit('all', [a, b, c]); return [a, b, c]`;
  const r = await assertSame(code, {}, (c) => `${c.method}:${c.args[0]}`);
  assert.equal(r[0].pendingCalls.length, 3);
  assert.deepEqual(r.at(-1).returnValue, ['get:a', 'get:/b', 'get:c']);
});

test('suspended twice: exported to a second runtime, again to a third, resumed to the end', async () => {
  const code = `const a = await $ext.kv.get('a'); $state.a = a; $emit('one', a);
    const b = await $ext.kv.get('b'); $state.b = b; return a + b`;
  const r = await assertSame(code, {}, (c) => c.args[0].toUpperCase(), undefined, [B, C]);
  assert.equal(r.length, 3);
  assert.equal(r.at(-1).returnValue, 'AB');
  assert.deepEqual(r.at(-1).stateMutations, [{ key: 'b', operation: 'set', value: 'B' }]);
});

test('a large createState (10 000 items) read before and after the move', async () => {
  const state = A.createState({ items: Array.from({ length: 10000 }, (_, i) => ({ id: i, name: `item-${i}` })) });
  const code = `const a = $state.items[1234]; const v = await $ext.kv.get(a.id);
    const b = $state.items[4321]; $state.picked = [a.name, b.name]; return { a, b, v, n: $state.items.length }`;
  const r = await assertSame(code, { stateSnapshot: state }, (c) => c.args[0] * 2);
  assert.deepEqual(r.at(-1).returnValue, { a: { id: 1234, name: 'item-1234' }, b: { id: 4321, name: 'item-4321' }, v: 2468, n: 10000 });
});

test('console.log and $log before and after the move', async () => {
  const code = `console.log('before', 1); $log.info('b2', { x: 1 }); const v = await $ext.kv.get('x');
    console.log('after', v); $log.error('e'); console.warn('w'); return v`;
  const r = await assertSame(code, {}, () => 'V');
  assert.equal(r[0].logs.length, 2);
  assert.equal(r[0].logs[0].message, 'before 1');
  assert.equal(r.at(-1).logs.length, 3);
  assert.equal(r.at(-1).logs[0].message, 'after V');
});

test('Math.random, Date.now and performance.now across the move stay sane', async () => {
  const code = `const r1 = Math.random(), d1 = Date.now(), p1 = performance.now();
    const v = await $ext.kv.get('x');
    const r2 = Math.random(), d2 = Date.now(), p2 = performance.now();
    return { r1, r2, d1, d2, p1, p2, v }`;
  const before = Date.now();
  const [s] = await carried(code, {}, () => 1).then((all) => [all.at(-1)]);
  const after = Date.now();
  assert.equal(s.status, 'success', JSON.stringify(s.error));
  const { r1, r2, d1, d2, p1, p2 } = s.returnValue;
  for (const r of [r1, r2]) assert.ok(r >= 0 && r < 1, String(r));
  assert.notEqual(r1, r2);
  for (const d of [d1, d2]) assert.ok(d >= before - 1000 && d <= after + 1000, `${d} not within [${before}, ${after}]`);
  assert.ok(d2 >= d1, `${d2} < ${d1}`);
  assert.ok(p2 >= p1, `performance.now() went back: ${p1} then ${p2}`);
});

test('a closure, a Map and a class instance kept across the move', async () => {
  const code = `class Acc { constructor() { this.items = new Map(); } add(k, v) { this.items.set(k, v); return this; }
      total() { let t = 0; for (const v of this.items.values()) t += v; return t; } }
    const acc = new Acc().add('a', 1); let hits = 0; const bump = () => ++hits; bump();
    const v = await $ext.kv.get('x');
    acc.add('b', v); bump();
    return { total: acc.total(), keys: [...acc.items.keys()], hits, isAcc: acc instanceof Acc }`;
  const r = await assertSame(code, {}, () => 41);
  assert.deepEqual(r.at(-1).returnValue, { total: 42, keys: ['a', 'b'], hits: 2, isAcc: true });
});

test('a TypeScript handler (language ts)', async () => {
  const code = `interface P { n: number }
    const p: P = { n: $state.count as number };
    const v: number = await $ext.kv.get('k');
    const sum = (a: number, b: number): number => a + b;
    return sum(p.n, v);`;
  const r = await assertSame(code, { stateSnapshot: { count: 2 } }, () => 40, { language: 'ts' });
  assert.equal(r.at(-1).returnValue, 42);
});

// ---- b: every refusal --------------------------------------------------

test('a truncated or padded blob: format', async () => {
  const { blob } = await exported();
  for (const len of [0, 10, 47, blob.length - 33, blob.length - 1]) {
    await assert.rejects(B.importSuspension(blob.subarray(0, len)), invalid('format'), `truncated to ${len}`);
  }
  await assert.rejects(B.importSuspension(Buffer.concat([blob, Buffer.from([0])])), invalid('format'), 'padded');
  const bad = Buffer.from(blob);
  bad[0] ^= 1;
  await assert.rejects(B.importSuspension(bad), invalid('format'), 'magic');
  // The untouched blob still imports: none of the above counted as a use.
  await B.importSuspension(blob);
});

test('one flipped byte in the payload, or in the HMAC: signature', async () => {
  const { blob } = await exported();
  const { payloadAt, payloadLen } = peekSuspension(blob);
  for (const at of [payloadAt, payloadAt + (payloadLen >> 1), blob.length - 1, blob.length - 32, 5, 25]) {
    const bad = Buffer.from(blob);
    bad[at] ^= 0x40;
    await assert.rejects(B.importSuspension(bad), invalid('signature'), `byte ${at}`);
  }
});

test('wrong key, and rotated keys: sign with the first, accept any', async () => {
  const other = rt({ suspensionKeys: [OTHER_KEY] });
  const rotated = rt({ suspensionKeys: [OTHER_KEY, KEY] });
  const onlyNew = rt({ suspensionKeys: [OTHER_KEY] });
  const { blob, id } = await exported(); // signed with KEY
  await assert.rejects(other.importSuspension(blob), invalid('signature'));
  assert.equal(await rotated.importSuspension(blob), id);
  const resumed = await rotated.resumeAll([answer40(id)]);
  assert.equal(resumed.returnValue, 42);
  await assert.rejects(onlyNew.importSuspension((await exported()).blob), invalid('signature'));
  // A blob the rotated runtime signs carries the new key: the runtime that
  // only knows the old one refuses it, the one that knows the new accepts.
  const fresh = await exported(rotated);
  await assert.rejects(A.importSuspension(fresh.blob), invalid('signature'));
  assert.equal(await onlyNew.importSuspension(fresh.blob), fresh.id);
  assert.equal(await onlyNew.cancelSuspended(fresh.id), true);
});

test('a blob past its suspension timeout: expiry', async () => {
  const quick = rt({ suspensionTimeoutMs: 50 });
  const { blob } = await exported(quick);
  assert.ok(peekSuspension(blob).expiresAt <= Date.now() + 50);
  await sleep(100);
  await assert.rejects(A.importSuspension(blob), invalid('expiry'));
});

test('a blob from another engine build (another memoryLimitBytes): build', async () => {
  const other = rt({ memoryLimitBytes: 16 << 20 });
  assert.notEqual(other.engineBuild, A.engineBuild);
  assert.equal(B.engineBuild, A.engineBuild);
  const { blob } = await exported(other);
  await assert.rejects(A.importSuspension(blob), invalid('build'));
  const back = await exported(A);
  await assert.rejects(other.importSuspension(back.blob), invalid('build'));
});

test('the same blob twice: replay; a new export of the same execution imports once more', async () => {
  const { blob, id } = await exported();
  assert.equal(await B.importSuspension(blob), id);
  await assert.rejects(B.importSuspension(blob), invalid('replay'));
  // Moved back out of B and in again: a new blob (new nonce), accepted once.
  const again = await B.exportSuspension(id);
  assert.equal(await B.importSuspension(again), id);
  await assert.rejects(B.importSuspension(again), invalid('replay'));
  // The first blob is still a replay here.
  await assert.rejects(B.importSuspension(blob), invalid('replay'));
  assert.equal((await B.resumeAll([answer40(id)])).returnValue, 42);
});

test('the same execution re-sealed with a fresh nonce while it is parked here: engine', async () => {
  const { blob, id } = await exported();
  const fields = peekSuspension(blob);
  const payload = zlib.inflateRawSync(Buffer.from(blob).subarray(fields.payloadAt, fields.payloadAt + fields.payloadLen));
  const twin = sealSuspension(KEYS, { ...fields, payload });
  assert.equal(await B.importSuspension(blob), id);
  await assert.rejects(B.importSuspension(twin), invalid('engine'));
  assert.equal((await B.resumeAll([answer40(id)])).returnValue, 42);
  // Once the first has ended, the twin is an execution like any other.
  assert.equal(await B.importSuspension(twin), id);
  assert.equal((await B.resumeAll([answer40(id)])).returnValue, 42);
});

test('argument errors: a blob that is not a Uint8Array, a runtime without suspensionKeys', async () => {
  for (const bad of [undefined, null, 'blob', [1, 2, 3], { length: 100 }, new ArrayBuffer(100)]) {
    await assert.rejects(B.importSuspension(bad), TypeError);
  }
  const keyless = runtime({ workers: 1 });
  made.push(keyless);
  const { blob } = await exported();
  await assert.rejects(keyless.importSuspension(blob), { name: 'TypeError', message: /suspensionKeys/ });
  const s = await keyless.executeHandler(TRIVIAL, ctx({ stateSnapshot: { count: 1 } }));
  await assert.rejects(keyless.exportSuspension(s.suspension.suspensionId), { name: 'TypeError', message: /suspensionKeys/ });
  assert.throws(() => keyless.shutdown({ drainTo: new MapStore() }), { name: 'TypeError', message: /suspensionKeys/ });
  assert.equal(await keyless.cancelSuspended(s.suspension.suspensionId), true, 'the refused export left it parked');
  assert.throws(() => runtime({ workers: 1, suspensionKeys: ['short'] }), RangeError);
  assert.throws(() => runtime({ workers: 1, suspensionKeys: [] }), TypeError);
  await assert.rejects(A.exportSuspension(42), TypeError);
});

test('export of an unknown id, an exported one, a resumed one: SUSPENSION_NOT_FOUND', async () => {
  await assert.rejects(A.exportSuspension('0'.repeat(32)), NOT_FOUND);
  await assert.rejects(A.exportSuspension('not an id'), NOT_FOUND);
  const { id } = await exported();
  await assert.rejects(A.exportSuspension(id), NOT_FOUND);
  const s = await A.executeHandler(TRIVIAL, ctx({ stateSnapshot: { count: 1 } }));
  await A.resumeAll([answer40(s.suspension.suspensionId)]);
  await assert.rejects(A.exportSuspension(s.suspension.suspensionId), NOT_FOUND);
});

test('cancelSuspended after an import frees it', async () => {
  const D = rt();
  const { blob, id } = await exported();
  assert.equal(D.getStats().suspendedExecutions, 0);
  assert.equal(await D.importSuspension(blob), id);
  assert.equal(D.getStats().suspendedExecutions, 1);
  assert.equal(await D.cancelSuspended(id), true);
  assert.equal(D.getStats().suspendedExecutions, 0);
  await assert.rejects(D.resumeAll([answer40(id)]), NOT_FOUND);
  assert.equal(await D.cancelSuspended(id), false);
});

// ---- f: stats and maxSuspended ----------------------------------------

test('getStats counts an imported execution; maxSuspended is honoured on import', async () => {
  const one = rt({ maxSuspended: 1 });
  const first = await exported();
  assert.equal(await one.importSuspension(first.blob), first.id);
  assert.equal(one.getStats().suspendedExecutions, 1);
  const second = await exported();
  // Not the blob's fault: RESOURCE_LIMIT, as for a handler that suspends
  // one past maxSuspended.
  await assert.rejects(one.importSuspension(second.blob), { code: 'RESOURCE_LIMIT', message: /maxSuspended is 1/ });
  assert.equal(one.getStats().suspendedExecutions, 1);
  // A refusal is no use of the blob: once there is room, the same blob
  // imports.
  assert.equal((await one.resumeAll([answer40(first.id)])).returnValue, 42);
  assert.equal(one.getStats().suspendedExecutions, 0);
  assert.equal(await one.importSuspension(second.blob), second.id);
  assert.equal((await one.resumeAll([answer40(second.id)])).returnValue, 42);
});

// ---- c: forged but signed payloads, in a child --------------------------

// The child gets a real payload, damages it in many ways, seals each with
// the keys and imports it: everything must be refused by the engine, or (a
// change that only lands in guest memory) be accepted and then resume to
// any result without taking the process down.
const FORGE = String.raw`
const zlib = require('zlib');
const { peekSuspension, sealSuspension } = require(process.env.NX_PKG + '/lib/suspension.js');
const KEYS = [${JSON.stringify(KEY)}];
const over = { stateSnapshot: { n: 1, list: [1, 2, 3], deep: { a: { b: 'c' } } }, extensionRegistry: { kv: ['get'] } };
const code = "$state.n = 2; const l = $state.list; const v = await $ext.kv.get('a'); $emit('done', { v, d: $state.deep.a.b }); return v + $state.n + l.length";
const s = await rt.executeHandler(code, ctx(over), 500);
const blob = await rt.exportSuspension(s.suspension.suspensionId);
const fields = peekSuspension(blob);
const payload = zlib.inflateRawSync(Buffer.from(blob).subarray(fields.payloadAt, fields.payloadAt + fields.payloadLen));
const len = payload.length;

// Where the length fields are: the memory runs from offset 76, then the
// execution's code and context.
const sizes = [76];
let at = 80;
for (;;) {
  const off = payload.readUInt32LE(at), n = payload.readUInt32LE(at + 4);
  sizes.push(at, at + 4);
  at += 8 + n;
  if (n === 0) break;
}
const memoryEnd = at;
sizes.push(at + 2);
sizes.push(at + 6 + payload.readUInt32LE(at + 2));

const damaged = [];
for (let i = 0; i < 100; i++) damaged.push(['truncate', Math.floor((i * len) / 100), payload.subarray(0, Math.floor((i * len) / 100))]);
damaged.push(['truncate', len - 1, payload.subarray(0, len - 1)]);
damaged.push(['append', len, Buffer.concat([payload, Buffer.from([0])])]);
for (let i = 0; i < 200; i++) {
  const p = Math.floor((i * len) / 200) + (i % 7);
  if (p >= len) continue;
  const b = Buffer.from(payload);
  b[p] ^= i % 2 ? 0xff : 0x01;
  damaged.push(['flip', p, b]);
}
// Every byte after the memory, too: the fields the engine parses.
for (let p = memoryEnd; p < len; p++) {
  const b = Buffer.from(payload);
  b[p] ^= 0xff;
  damaged.push(['flip tail', p, b]);
}
for (const p of sizes) {
  for (const v of [0xffffffff, 0x7fffffff, 0x10000, len]) {
    const b = Buffer.from(payload);
    b.writeUInt32LE(v, p);
    damaged.push(['size ' + v, p, b]);
  }
}
// The sandbox fields the engine cannot check against anything: the stack
// pointer and the scratch buffer (offset, capacity).
for (const p of [64, 68, 72]) {
  for (const v of [0xffffffff, 0xfffffff0, 0, 0x10]) {
    const b = Buffer.from(payload);
    b.writeUInt32LE(v, p);
    damaged.push(['sandbox field ' + v, p, b]);
  }
}
for (let p = memoryEnd; p + 4 <= len; p += 4) {
  const b = Buffer.from(payload);
  b.writeUInt32LE(0xffffffff, p);
  damaged.push(['ffffffff', p, b]);
}

const out = { cases: damaged.length, refused: {}, accepted: 0, resumed: {}, internal: [], unexpected: [] };
for (const [what, p, bytes] of damaged) {
  const forged = sealSuspension(KEYS, { ...fields, payload: bytes });
  let imported;
  try {
    imported = await rt.importSuspension(forged, { result: true });
  } catch (err) {
    if (err.code !== 'INVALID_SUSPENSION' || err.check !== 'engine') out.unexpected.push({ what, p, code: err.code, check: err.check, message: String(err.message) });
    else out.refused[err.message] = (out.refused[err.message] || 0) + 1;
    continue;
  }
  out.accepted++;
  let r;
  try {
    const ids = imported.pendingCalls.map((c) => c.suspensionId);
    r = await rt.resumeAll(ids.map((suspensionId) => ({ suspensionId, result: { success: true, value: 40 } })));
    const key = r.status + (r.error ? ' ' + r.error.code : '');
    out.resumed[key] = (out.resumed[key] || 0) + 1;
    if (r.error && r.error.code === 'INTERNAL_ERROR') out.internal.push(what + ' @' + p + ': ' + r.error.message);
  } catch (err) {
    out.resumed['rejected ' + err.code] = (out.resumed['rejected ' + err.code] || 0) + 1;
  }
  if (r && r.status === 'suspended') for (const c of r.pendingCalls) await rt.cancelSuspended(c.suspensionId);
  for (const c of imported.pendingCalls) await rt.cancelSuspended(c.suspensionId);
}
out.parkedAfter = rt.getStats().suspendedExecutions;
// The untouched payload, sealed again, still imports and resumes to the end.
const good = await rt.importSuspension(sealSuspension(KEYS, { ...fields, payload }));
out.good = strip(await rt.resumeHandler(good, { success: true, value: 40 }));
return out;
`;

test('forged but signed payloads (truncated, flipped, huge sizes): refused by the engine or harmless, in a child', async (t) => {
  const [r] = await runInChild([{ name: 'forge', script: FORGE, config: { workers: 1, maxInstances: 2, suspensionKeys: KEYS } }], { timeoutMs: 600000 });
  assert.equal(r.crashed, undefined, r.crashed);
  const out = r.result;
  assert.equal(out.threw, undefined, `${out.code}: ${out.threw}`);
  assert.deepEqual(out.unexpected, [], 'every refusal is INVALID_SUSPENSION engine');
  assert.ok(out.cases > 500, String(out.cases));
  const refused = Object.values(out.refused).reduce((a, b) => a + b, 0);
  assert.equal(refused + out.accepted, out.cases);
  assert.ok(refused > out.cases / 2, JSON.stringify(out));
  assert.equal(out.parkedAfter, 0, 'nothing stays parked');
  assert.equal(out.good.status, 'success');
  assert.equal(out.good.returnValue, 45);
  assert.equal(r.next, true, 'the runtime serves a normal execution afterwards');
  t.diagnostic(JSON.stringify({ cases: out.cases, refused, accepted: out.accepted, resumed: out.resumed, traps: out.internal.length }));
});

// ---- d, e: across processes --------------------------------------------

const childEnv = { ...process.env, NX_PORTABLE_KEY: KEY };
function child(...args) {
  const r = spawnSync(process.execPath, [CHILD, ...args], { env: childEnv, encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, `child ${args[0]} exited ${r.status} ${r.signal}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
function withFile(data, fn) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexus-portable-'));
  try {
    const file = path.join(dir, 'blobs.json');
    fs.writeFileSync(file, JSON.stringify(data));
    return fn(file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

test('cross-process: process A suspends the weather handler, process B resumes it like an in-process resume', async () => {
  const FORECAST = { ...(await require('../examples/weather-extensions').weather.forecast('Oslo')) };
  const { first, blob } = child('export');
  assert.equal(first.status, 'suspended');
  assert.deepEqual(first.pendingCalls.map((c) => [c.extensionName, c.method, c.args]), [['weather', 'forecast', ['Oslo']]]);
  const { results, stats } = withFile([{ blob, answer: FORECAST }], (file) => child('import', file));
  assert.equal(stats, 0);
  const here = await A.executeHandler(WEATHER, WEATHER_CONTEXT);
  assert.deepEqual(comparable(first), comparable(here));
  const done = await A.resumeHandler(here.suspension.suspensionId, { success: true, value: FORECAST });
  assert.equal(done.status, 'success');
  assert.deepEqual(done.returnValue, { city: 'Oslo', summary: 'rain, 3–9 °C' });
  assert.deepEqual(comparable(results[0]), comparable(done));
});

class MapStore {
  constructor() {
    this.map = new Map();
  }
  put(id, blob, ttlMs) {
    this.map.set(id, { blob, ttlMs });
  }
  claim(id) {
    const e = this.map.get(id);
    this.map.delete(id);
    return e ? e.blob : null;
  }
  delete(id) {
    return this.map.delete(id);
  }
}

test('shutdown({ drainTo }) exports every parked execution; a new process resumes all five', async () => {
  const D = rt();
  const ids = [];
  for (let i = 0; i < 5; i++) {
    const s = await D.executeHandler(TRIVIAL, ctx({ stateSnapshot: { count: i * 10 } }));
    ids.push(s.suspension.suspensionId);
  }
  assert.equal(D.getStats().suspendedExecutions, 5);
  const store = new MapStore();
  const { drained, failed } = await D.shutdown({ drainTo: store });
  assert.deepEqual(failed, []);
  assert.deepEqual([...drained].sort(), [...ids].sort());
  assert.deepEqual([...store.map.keys()].sort(), [...ids].sort());
  for (const { blob, ttlMs } of store.map.values()) {
    assert.ok(ttlMs > 0 && ttlMs <= 30000, String(ttlMs));
    assert.ok(blob instanceof Uint8Array);
  }
  await assert.rejects(D.importSuspension(store.map.get(ids[0]).blob), { code: 'SHUT_DOWN' });
  const items = ids.map((id) => ({ blob: Buffer.from(store.claim(id)).toString('base64'), answer: 100 }));
  const { results, stats } = withFile(items, (file) => child('import', file));
  assert.equal(stats, 0);
  assert.deepEqual(results.map((r) => [r.status, r.returnValue]), [0, 1, 2, 3, 4].map((i) => ['success', 100 + i * 10 + 1]));
  assert.deepEqual(results.map((r) => r.events), [0, 1, 2, 3, 4].map(() => []));
});

test('executor.resume: a claimed blob this runtime cannot take now (maxSuspended) goes back into the store, and resumes later', async () => {
  const { WasmSandboxExecutor, MemorySuspensionStore } = require('..');
  const store = new MemorySuspensionStore();
  const full = rt({ maxSuspended: 1 });
  const holder = await exported();
  await full.importSuspension(holder.blob); // the one slot is taken
  const waiting = await exported();
  await store.put(waiting.id, waiting.blob, 60_000);
  const executor = new WasmSandboxExecutor(full, { store });
  await assert.rejects(executor.resume(waiting.id, { success: true, value: 40 }, { state: {} }), { code: 'RESOURCE_LIMIT' });
  await full.resumeAll([answer40(holder.id)]); // the slot is free again
  // Claimable again: the store took it back (under a new nonce: the old
  // one is spent in this store).
  const state = { count: 2 };
  assert.equal(await executor.resume(waiting.id, { success: true, value: 40 }, { state }), 42);
  assert.deepEqual(state, { count: 2 }, 'nothing after the await changes the state');
});

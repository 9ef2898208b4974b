'use strict';
// Every execution starts from the pristine snapshot image: nothing one
// handler leaves behind (globals, patched built-ins, pending promises, memory
// contents) is visible to the next one, even on the very same instance
// (maxInstances: 1) and whatever way the previous execution ended.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { POOLED, SYNC_SKIP_WORKER_STACK, context, runtime } = require('./helpers');

const LIMIT = 16 * 1024 * 1024;
const rt = runtime({ workers: 1, maxInstances: 1, memoryLimitBytes: LIMIT });
test.after(() => rt.shutdown());
const run = (code, over, timeout, r = rt) => r.executeHandler(code, context(over), timeout);

// Leaves behind everything a handler can leave behind.
const POLLUTE = `
  globalThis.x = 'leaked';
  globalThis.leakFn = function () { return 'leak' };
  (0, eval)('function evalGlobal() { return "leak" } var evalVar = "leak"');
  const origMap = Array.prototype.map;
  Array.prototype.map = function () { return 'patched map' };
  Object.prototype.polluted = 'yes';
  JSON.stringify = function () { return 'patched stringify' };
  const origThen = Promise.prototype.then;
  Promise.prototype.then = function (a, b) { globalThis.thenCalls = (globalThis.thenCalls || 0) + 1; return origThen.call(this, a, b) };
  Math.random = () => 4;
  Date.now = () => 0;
  globalThis.pending = new Promise((resolve) => { globalThis.resolveLater = resolve });
  origThen.call(globalThis.pending, () => $emit('late-then', 1));
  (async () => { await new Promise(() => {}); $emit('late-await', 2) })();
  (async () => { await globalThis.pending; $emit('late-chain', 3) })();
  new FinalizationRegistry(() => $emit('late-finalizer', 4)).register({}, 1);
  globalThis.weak = new WeakRef({ v: 1 });
  globalThis.big = 'B'.repeat(4 << 20);
  Object.freeze(Object.prototype.constructor);
`;

// What a handler sees of the global environment; must equal a pristine run.
const CHECK = `
  const g = globalThis;
  const names = Object.getOwnPropertyNames(g).sort();
  const then = await new Promise((r) => r(5)).then((v) => v + 1);
  return {
    types: [typeof g.x, typeof g.leakFn, typeof g.evalGlobal, typeof g.evalVar, typeof g.pending,
      typeof g.resolveLater, typeof g.weak, typeof g.big, typeof g.thenCalls, typeof g.keep, typeof g.secret],
    map: [1, 2, 3].map((v) => v * 2),
    polluted: [({}).polluted, 'polluted' in {}, Object.prototype.hasOwnProperty('polluted')],
    json: JSON.stringify({ a: [1, 'b'] }),
    then,
    // Math.random is the bootstrap's (reseeded per execution), not native.
    native: [Promise.prototype.then, Array.prototype.map, JSON.stringify, Date.now]
      .map((f) => /\\[native code\\]/.test(Function.prototype.toString.call(f))),
    random: typeof Math.random() === 'number' && Math.random() >= 0 && Math.random() < 1,
    frozen: Object.isFrozen(Object),
    names,
  }`;

let baseline;
let baselineUsed;
let baselinePeak;

async function assertPristine(label, over = {}, r = rt, base = baseline) {
  const res = await run(CHECK, over, undefined, r);
  assert.equal(res.status, 'success', `${label}: ${JSON.stringify(res.error)}`);
  assert.deepEqual(res.returnValue, base, label);
  assert.deepEqual(res.events, [], `${label}: no late events`);
  assert.deepEqual(res.stateMutations, [], label);
  return res;
}

test('baseline: a pristine environment', async () => {
  await run(CHECK); // compile once so later runs take the same (cached) path
  const res = await run(CHECK);
  assert.equal(res.status, 'success');
  baseline = res.returnValue;
  baselineUsed = res.metrics.memoryUsedBytes;
  baselinePeak = res.metrics.memoryPeakBytes;
  assert.deepEqual(baseline.types, Array(11).fill('undefined'));
  assert.deepEqual(baseline.map, [2, 4, 6]);
  assert.deepEqual(baseline.polluted, [undefined, false, false]);
  assert.equal(baseline.json, '{"a":[1,"b"]}');
  assert.equal(baseline.then, 6);
  assert.deepEqual(baseline.native, [true, true, true, true]);
  assert.equal(baseline.frozen, false);
  if (POOLED) assert.equal(rt.getStats().liveInstances, 1);
});

test('globals, patched built-ins, pending promises and finalizers do not survive an execution', async () => {
  const a = await run(`${POLLUTE}
    return [typeof x, [1].map((v) => v), ({}).polluted, JSON.stringify({}), typeof evalGlobal]`);
  assert.equal(a.status, 'success', JSON.stringify(a.error));
  // the pollution really happened inside A
  assert.deepEqual(a.returnValue, ['string', 'patched map', 'yes', 'patched stringify', 'function']);
  assert.deepEqual(a.events, []);
  const before = rt.getStats().totalExecutions;
  // the next executions: same panel, another panel, another handler name
  const b1 = await assertPristine('same panel');
  await assertPristine('other panel', { panelId: 'panel-2', handlerName: 'other' });
  // the heap is back to what a pristine run uses (the 4 MiB string is gone)
  assert.equal(b1.metrics.memoryUsedBytes, baselineUsed);
  assert.equal(rt.getStats().totalExecutions, before + 2);
  if (POOLED) assert.equal(rt.getStats().liveInstances, 1);
});

test('a resolver stashed by one execution cannot be called by the next', async () => {
  await run(`globalThis.pending = new Promise((r) => { globalThis.resolveLater = r });
    globalThis.pending.then((v) => $emit('resolved', v))`);
  const r = await run(`if (typeof resolveLater === 'function') resolveLater(42);
    await null; await null; return typeof resolveLater`);
  assert.equal(r.returnValue, 'undefined');
  assert.deepEqual(r.events, []);
});

test('the handler function itself is fresh in every execution, though a hot one is read in ahead', async () => {
  // From its second run on, this handler's function is read in right after
  // the reset, before the execution that uses it (src/loader.c): what an
  // execution does to its own function must still be gone for the next.
  const code = `const f = arguments.callee; const seen = [f.mark, Object.getPrototypeOf(f).mark, f.length];
    f.mark = 1; Object.getPrototypeOf(f).mark = 2; f.length = 0; return seen`;
  for (let i = 0; i < 4; i++) {
    const r = await run(code);
    assert.equal(r.status, 'success', JSON.stringify(r.error));
    assert.deepEqual(r.returnValue, [undefined, undefined, 7], `execution ${i}`);
    assert.equal(r.metrics.cacheHit, i > 0, `execution ${i}`);
  }
  // Another handler in between gets its own function, and the hot one is
  // still fresh after it.
  assert.deepEqual((await run('return [arguments.callee.mark]')).returnValue, [undefined]);
  assert.deepEqual((await run(code)).returnValue, [undefined, undefined, 7]);
});

test('memory contents: a secret written by one handler is not readable by the next', async () => {
  const token = `TOPSECRET-${crypto.randomBytes(12).toString('hex')}`;
  const a = await run(
    `const s = $args.token;
     const buf = new ArrayBuffer(2 << 20);
     const u8 = new Uint8Array(buf);
     for (let j = 0; j < s.length; j++) u8[j] = s.charCodeAt(j);
     for (let n = s.length; n < u8.length; n *= 2) u8.copyWithin(n, 0, n);
     globalThis.keep = buf;
     globalThis.secret = (s + ';').repeat(20000);
     const arr = []; for (let i = 0; i < 2000; i++) arr.push(s + i); globalThis.arr = arr;
     const f = new Float64Array(1 << 16); f.fill(1.2345e300);
     return u8[0] === s.charCodeAt(0) && globalThis.secret.length`,
    { args: { token } },
  );
  assert.equal(a.status, 'success', JSON.stringify(a.error));
  assert.ok(a.returnValue > 0);

  const b = await run(
    `const found = [];
     // everything reachable from the global object
     const seen = new Set();
     const walk = (v, depth) => {
       if (depth > 4 || v === null || (typeof v !== 'object' && typeof v !== 'function')) {
         if (typeof v === 'string' && v.includes('TOPSECRET')) found.push('string');
         return;
       }
       if (seen.has(v)) return;
       seen.add(v);
       for (const k of Reflect.ownKeys(v)) {
         if (typeof k === 'string' && k.includes('TOPSECRET')) found.push('key');
         let d; try { d = Object.getOwnPropertyDescriptor(v, k) } catch { continue }
         if (d && 'value' in d) walk(d.value, depth + 1);
       }
     };
     walk(globalThis, 0);
     // fresh allocations of many sizes are all zero
     let nonZero = 0;
     const dirty = (u8) => {
       for (let i = 0; i < u8.length; i += 32768)
         if (/[^\0]/.test(String.fromCharCode.apply(null, u8.subarray(i, i + 32768)))) return true;
       return false;
     };
     for (const size of [16, 4096, 65536, 1 << 20, 2 << 20, 3 << 20]) if (dirty(new Uint8Array(new ArrayBuffer(size)))) nonZero++;
     if (dirty(new Uint8Array(new Float64Array(1 << 16).buffer))) nonZero++;
     const rs = new ArrayBuffer(16, { maxByteLength: 2 << 20 }); rs.resize(2 << 20);
     if (dirty(new Uint8Array(rs))) nonZero++;
     const dec = String.fromCharCode(...new Uint8Array(new ArrayBuffer(64)));
     return { found, nonZero, keep: typeof keep, arr: typeof arr, dec: dec === '\\0'.repeat(64) }`,
    { panelId: 'panel-other' },
  );
  assert.equal(b.status, 'success', JSON.stringify(b.error));
  assert.deepEqual(b.returnValue, { found: [], nonZero: 0, keep: 'undefined', arr: 'undefined', dec: true });
  assert.ok(!JSON.stringify(b).includes('TOPSECRET'));
  // the instance grew for A; the growth was dropped
  const c = await run(CHECK);
  assert.equal(c.metrics.memoryPeakBytes, baselinePeak);
  assert.equal(c.metrics.memoryUsedBytes, baselineUsed);
});

test('after a TIMEOUT the next execution is pristine', async () => {
  const r = await run(`${POLLUTE}\nwhile (true) {}`, {}, 100);
  assert.equal(r.status, 'error');
  assert.equal(r.error.code, 'TIMEOUT');
  await assertPristine('after timeout');
  if (POOLED) assert.equal(rt.getStats().liveInstances, 1);
});

test('after a MEMORY_LIMIT the next execution is pristine', async () => {
  const r = await run(`${POLLUTE}\nglobalThis.big = null; const a = []; for (;;) a.push('x'.repeat(4096) + a.length)`, {}, 5000);
  assert.equal(r.status, 'error');
  assert.equal(r.error.code, 'MEMORY_LIMIT');
  const b = await assertPristine('after memory limit');
  assert.equal(b.metrics.memoryPeakBytes, baselinePeak);
  if (POOLED) assert.equal(rt.getStats().liveInstances, 1);
});

test('after a thrown error the next execution is pristine', async () => {
  const r = await run(`${POLLUTE}\nthrow new Error('boom')`);
  assert.equal(r.status, 'error');
  assert.equal(r.error.code, 'EXECUTION_ERROR');
  assert.equal(r.error.message, 'Error: boom');
  await assertPristine('after throw');
});

test('after a handler that never settles the next execution is pristine', async () => {
  const r = await run(`${POLLUTE}\nawait globalThis.pending`);
  assert.equal(r.status, 'error');
  assert.equal(r.error.code, 'EXECUTION_ERROR');
  await assertPristine('after never settled');
});

test('after a wasm trap (call-depth exhaustion on a 1 MiB worker stack) the next execution is pristine', { skip: SYNC_SKIP_WORKER_STACK }, async () => {
  // A catch around the recursion tells the trap from QuickJS's own stack
  // check: on this file's default 8 MiB stack the check throws first and the
  // handler catches it; on a 1 MiB stack the generated code traps, and no
  // catch runs (limits.test.js).
  const RECURSE = `${POLLUTE}
    function f(n) { return f(n + 1) + 1 }
    try { return f(0) } catch (e) { return 'caught ' + e }`;
  const checked = await run(RECURSE, {}, 5000);
  assert.equal(checked.returnValue, 'caught RangeError: Maximum call stack size exceeded');
  const small = runtime({ workers: 1, maxInstances: 1, stackSizeBytes: 1024 * 1024, memoryLimitBytes: LIMIT });
  try {
    await small.executeHandler(CHECK, context());
    const base = (await small.executeHandler(CHECK, context())).returnValue;
    assert.deepEqual(base, baseline);
    const r = await small.executeHandler(RECURSE, context(), 5000);
    assert.equal(r.status, 'error', `not a trap, the catch ran: ${JSON.stringify(r.returnValue)}`);
    assert.equal(r.error.code, 'EXECUTION_ERROR');
    assert.equal(r.error.message, 'RangeError: Maximum call stack size exceeded');
    assert.equal(r.error.location, null);
    await assertPristine('after trap', {}, small, base);
    assert.equal(small.getStats().liveInstances, 1);
  } finally {
    await small.shutdown();
  }
});

test('after a suspended execution is resumed to its end the next one is pristine', async () => {
  const r1 = await run(`${POLLUTE}\nreturn await $ext.http.get('/x')`, { extensionRegistry: { http: ['get'] } });
  assert.equal(r1.status, 'suspended');
  const r2 = await rt.resumeHandler(r1.suspension.suspensionId, { success: true, value: 9 });
  assert.equal(r2.status, 'success');
  assert.equal(r2.returnValue, 9);
  await assertPristine('after suspension');
});

test('one instance served every execution, reset after each one', async () => {
  // The stats do not count resets; what a reset does is observable: each of
  // five executions in a row on the one instance leaves a global and a
  // patched prototype behind, and each finds none of its predecessor's.
  const before = rt.getStats().totalExecutions;
  for (let i = 0; i < 5; i++) {
    const r = await run(`const seen = [typeof globalThis.mark, ({}).mark];
      globalThis.mark = $args.i; Object.prototype.mark = $args.i; return seen`, { args: { i } });
    assert.deepEqual(r.returnValue, ['undefined', undefined], `execution ${i}`);
  }
  const s = rt.getStats();
  assert.equal(s.totalExecutions, before + 5);
  assert.equal(s.liveInstances, 1);
  assert.ok(s.avgResetUs > 0, `avgResetUs ${s.avgResetUs}`);
  assert.ok(s.snapshotBytes > 0);
  assert.ok(s.snapshotCreateUs > 0);
});

test('Date works after resets: the clock is current and advances', async () => {
  const t0 = Date.now();
  const a = await run('return [Date.now(), new Date().getTime(), typeof new Date().toISOString()]');
  await new Promise((resolve) => setTimeout(resolve, 20));
  const b = await run('return [Date.now(), new Date().getTime(), typeof new Date().toISOString()]');
  const t1 = Date.now();
  for (const r of [a, b]) {
    assert.equal(r.returnValue[2], 'string');
    assert.ok(r.returnValue[0] >= t0 - 1000 && r.returnValue[0] <= t1 + 1000, `clock ${r.returnValue[0]} vs ${t0}`);
  }
  assert.ok(b.returnValue[0] - a.returnValue[0] >= 15, `clock advanced ${b.returnValue[0] - a.returnValue[0]} ms`);
});

test('Math.random works within one execution', async () => {
  const r = await run('const v = []; for (let i = 0; i < 100; i++) v.push(Math.random()); return v');
  assert.ok(r.returnValue.every((v) => typeof v === 'number' && v >= 0 && v < 1));
  assert.ok(new Set(r.returnValue).size > 90);
});

test('Math.random is not replayed: executions restored from the same image draw different numbers', async () => {
  // Every execution starts from the snapshot; if the PRNG state is part of
  // the image, every execution draws the same sequence (predictable "random"
  // ids, identical shuffles on every call).
  const seqs = [];
  for (let i = 0; i < 5; i++) seqs.push((await run('return [Math.random(), Math.random()]')).returnValue);
  const firsts = new Set(seqs.map((s) => s[0]));
  assert.ok(firsts.size > 1, `every execution drew the same sequence: ${JSON.stringify(seqs)}`);
});

test('2 workers, maxInstances 2: interleaved panels never see each other', async () => {
  const r2 = runtime({ workers: 2, maxInstances: 2, memoryLimitBytes: LIMIT });
  try {
    const code = `
      const seen = [typeof globalThis.owner, ({}).owner, typeof globalThis.stash, [1].map((v) => v + 1)[0]];
      globalThis.owner = $args.panel;
      Object.prototype.owner = $args.panel;
      Array.prototype.map = () => ['patched'];
      globalThis.stash = 'S'.repeat(1 << 16) + $args.panel;
      const t = Date.now(); while (Date.now() - t < 2) {}
      await null;
      const after = [globalThis.owner, ({}).owner];
      return { seen, after }`;
    const runs = [];
    for (let i = 0; i < 40; i++) {
      const panel = i % 2 ? 'panel-a' : 'panel-b';
      runs.push(r2.executeHandler(code, context({ panelId: panel, args: { panel } })));
    }
    const results = await Promise.all(runs);
    results.forEach((r, i) => {
      const panel = i % 2 ? 'panel-a' : 'panel-b';
      assert.equal(r.status, 'success', JSON.stringify(r.error));
      assert.deepEqual(r.returnValue, { seen: ['undefined', undefined, 'undefined', 2], after: [panel, panel] }, `run ${i}`);
    });
    const s = r2.getStats();
    if (POOLED) assert.ok(s.liveInstances >= 1 && s.liveInstances <= 2, `liveInstances ${s.liveInstances}`);
    assert.ok(s.avgResetUs > 0);
  } finally {
    await r2.shutdown();
  }
});

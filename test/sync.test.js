'use strict';
// executeHandlerSync: what only the sync path has (its $ext refusal, running
// on the calling thread, its own sandboxes). The semantic suites also run
// through it (NEXUS_TEST_PATH=sync, scripts/test.js).
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { Worker } = require('worker_threads');
const { NexusRuntime } = require('..');
const { SYNC_REFUSAL } = require('./paths');
const { context, testConfig } = require('./helpers');

const LIMIT = 16 * 1024 * 1024;
const rt = new NexusRuntime(testConfig({ workers: 2, maxInstances: 2, memoryLimitBytes: LIMIT }));
test.after(() => rt.shutdown());

// A result without the figures that differ between any two runs.
function stable(r) {
  const { metrics, ...rest } = r;
  return { ...rest, metrics: Object.keys(metrics).sort() };
}

const CASES = [
  ['a return value', 'return { n: $args.n + 1, list: [1, "two", null, true] }', { args: { n: 41 } }],
  ['state, events, view commands and logs', "$state.count = ($state.count || 0) + 1; $emit('changed', { count: $state.count }); $view.custom('c', [1]); $log('hi', 2); return $state.count", { stateSnapshot: { count: 4 } }],
  ['a thrown error', "throw new TypeError('bad ' + $args.x)", { args: { x: 'input' } }],
  ['a syntax error', 'return (', {}],
  ['a denied capability', "$emit('x', 1)", { capabilities: [] }],
  ['typed arrays and undefined', 'return [new Uint8Array([1, 2, 3]), undefined, $args.buf]', { args: { buf: new Uint8Array([9]) } }],
  ['an unsettled promise', 'await new Promise(() => {})', {}],
];

for (const [name, code, over] of CASES) {
  test(`the same result as executeHandler: ${name}`, async () => {
    const a = await rt.executeHandler(code, context(over));
    const s = rt.executeHandlerSync(code, context(over));
    assert.deepEqual(stable(s), stable(a));
  });
}

test('a precompiled { bytecode } gives what its source gives', async () => {
  const code = "$state.v = $args.v * 2; $emit('e', $state.v); return typeof $ext";
  const bytecode = await rt.precompileHandler(code);
  const over = { args: { v: 21 } };
  const fromSource = rt.executeHandlerSync(code, context(over));
  const fromBytecode = rt.executeHandlerSync({ bytecode }, context(over));
  assert.equal(fromBytecode.status, 'success');
  assert.deepEqual(stable(fromBytecode), stable(fromSource));
  assert.deepEqual(stable(fromBytecode), stable(await rt.executeCompiledHandler(bytecode, context(over))));
  const bad = rt.executeHandlerSync({ bytecode: new Uint8Array(16) }, context());
  assert.equal(bad.error.code, 'INVALID_HANDLER');
});

test('an $ext call ends the execution with EXECUTION_ERROR naming it; nothing after the call runs', () => {
  const r = rt.executeHandlerSync(
    "$emit('before', 1); try { await $ext.http.get('/x') } catch (e) { $emit('caught', 1) } $emit('after', 1); return 1",
    context({ extensionRegistry: { http: ['get'] } }),
  );
  assert.equal(r.status, 'error');
  assert.equal(r.error.code, 'EXECUTION_ERROR');
  assert.equal(r.error.message, 'executeHandlerSync cannot run a handler that calls an extension ($ext.http.get): use executeHandler');
  assert.match(r.error.message, SYNC_REFUSAL);
  // The refusal cannot be caught: neither the catch nor the code after it ran.
  assert.ok(r.events.every((e) => e.name === 'before'), JSON.stringify(r.events));
  // A handler that only looks at $ext is not refused.
  const look = rt.executeHandlerSync('return [typeof $ext.http, typeof $ext.http.get]', context({ extensionRegistry: { http: ['get'] } }));
  assert.deepEqual(look.returnValue, ['object', 'function']);
});

test('timeoutMs and the default timeout end a sync execution with TIMEOUT; the next one runs', async () => {
  const r = rt.executeHandlerSync('for (;;) {}', context(), 50);
  assert.equal(r.status, 'error');
  assert.deepEqual([r.error.code, r.error.message], ['TIMEOUT', 'Execution timed out after 50 ms']);
  const short = new NexusRuntime(testConfig({ workers: 1, defaultTimeoutMs: 60 }));
  try {
    assert.equal(short.executeHandlerSync('while (true) {}', context()).error.code, 'TIMEOUT');
    assert.equal(short.executeHandlerSync('return $args.n', context({ args: { n: 3 } })).returnValue, 3);
  } finally {
    await short.shutdown();
  }
  assert.equal(rt.executeHandlerSync('return 7', context()).returnValue, 7);
});

test('memoryLimitBytes ends a sync execution with MEMORY_LIMIT; the sandbox comes back pristine', () => {
  const r = rt.executeHandlerSync("globalThis.leak = 1; const a = []; for (;;) a.push('x'.repeat(4096) + a.length)", context(), 5000);
  assert.equal(r.status, 'error');
  assert.equal(r.error.code, 'MEMORY_LIMIT');
  assert.equal(r.error.message, `Memory limit of ${LIMIT} bytes exceeded`);
  // Every sync sandbox, several times over: none keeps the global.
  for (let i = 0; i < 12; i++) assert.equal(rt.executeHandlerSync('return typeof leak', context()).returnValue, 'undefined');
});

test('deep recursion on the calling thread is a RangeError, not a crash', () => {
  const r = rt.executeHandlerSync('function f(n) { return f(n + 1) + 1 } try { return f(0) } catch (e) { return String(e) }', context(), 5000);
  // The depth budget is measured on this thread's stack: QuickJS's own
  // check comes first, so the handler catches it.
  assert.equal(r.status, 'success', JSON.stringify(r.error));
  assert.equal(r.returnValue, 'RangeError: Maximum call stack size exceeded');
});

test('runs inside worker threads, several at once, recursion included', async () => {
  const code = `const { parentPort, workerData } = require('worker_threads');
    const { NexusRuntime } = require(${JSON.stringify(path.join(__dirname, '..'))});
    const { testConfig } = require(${JSON.stringify(path.join(__dirname, 'helpers.js'))});
    const rt = new NexusRuntime(testConfig({ workers: 1 }));
    const ctx = (args) => ({ panelId: 'p', handlerName: 'h', stateSnapshot: {}, args, scope: {}, capabilities: [] });
    const out = [];
    for (let i = 0; i < 20; i++) out.push(rt.executeHandlerSync('return $args.n * 10 + $args.i', ctx({ n: workerData, i })).returnValue);
    const deep = rt.executeHandlerSync('function f(n) { return f(n + 1) + 1 } try { return f(0) } catch (e) { return String(e) }', ctx({}), 5000);
    rt.shutdown().then(() => parentPort.postMessage({ out, deep: deep.returnValue ?? deep.error.message }));`;
  const results = await Promise.all([1, 2, 3].map((n) => new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: n });
    w.once('message', resolve);
    w.once('error', reject);
  })));
  results.forEach((r, k) => {
    assert.deepEqual(r.out, Array.from({ length: 20 }, (_, i) => (k + 1) * 10 + i));
    assert.equal(r.deep, 'RangeError: Maximum call stack size exceeded');
  });
});

test('sync and async executions interleave on one runtime', async () => {
  const pending = [];
  for (let i = 0; i < 10; i++) {
    pending.push(rt.executeHandler('const t = Date.now(); while (Date.now() - t < 2) {} return $args.i', context({ args: { i } })));
    assert.equal(rt.executeHandlerSync('return -$args.i', context({ args: { i } })).returnValue, -i);
  }
  assert.deepEqual((await Promise.all(pending)).map((r) => r.returnValue), [...Array(10).keys()]);
});

test('sync executions are counted in getStats() like any other', () => {
  const before = rt.getStats();
  rt.executeHandlerSync('return 1', context());
  rt.executeHandlerSync('throw 1', context());
  const after = rt.getStats();
  assert.equal(after.totalExecutions, before.totalExecutions + 2);
  assert.equal(after.executionsByStatus.success, before.executionsByStatus.success + 1);
  assert.equal(after.executionsByStatus.error, before.executionsByStatus.error + 1);
});

test('bad arguments are TypeErrors (RangeError for an out-of-range timeout), thrown before anything runs', () => {
  const before = rt.getStats().totalExecutions;
  for (const handler of [undefined, null, 42, {}, { bytecode: 'abc' }, { bytecode: [1, 2] }, ['return 1']]) {
    assert.throws(() => rt.executeHandlerSync(handler, context()), TypeError, String(handler));
  }
  for (const ctx of [undefined, null, 'ctx', [], { ...context(), panelId: 1 }, { ...context(), stateSnapshot: null }, { ...context(), capabilities: 'all' }]) {
    assert.throws(() => rt.executeHandlerSync('return 1', ctx), TypeError);
  }
  assert.throws(() => rt.executeHandlerSync('return 1', context(), '100'), TypeError);
  assert.throws(() => rt.executeHandlerSync('return 1', context(), -1), RangeError);
  assert.throws(() => rt.executeHandlerSync('return 1', context(), 1.5), RangeError);
  assert.throws(() => rt.executeHandlerSync('return 1', context({ args: { f() {} } })), TypeError);
  assert.equal(rt.getStats().totalExecutions, before);
});

test('after shutdown() executeHandlerSync throws SHUT_DOWN', async () => {
  const r2 = new NexusRuntime(testConfig({ workers: 1 }));
  assert.equal(r2.executeHandlerSync('return 1', context()).returnValue, 1);
  const done = r2.shutdown();
  assert.throws(() => r2.executeHandlerSync('return 1', context()), { code: 'SHUT_DOWN' });
  await done;
  assert.throws(() => r2.executeHandlerSync('return 1', context()), { code: 'SHUT_DOWN', message: 'NexusRuntime has been shut down' });
});

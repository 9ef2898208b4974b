'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { SYNC_SKIP_WORKER_STACK, context, runtime } = require('./helpers');

const rt = runtime({ workers: 2, maxInstances: 2, memoryLimitBytes: 16 * 1024 * 1024, defaultTimeoutMs: 300 });
test.after(() => rt.shutdown());
const run = (code, timeout, over) => rt.executeHandler(code, context(over), timeout);

async function stillServes() {
  const r = await run('return $args.n + 1', 0, { args: { n: 1 } });
  assert.equal(r.status, 'success');
  assert.equal(r.returnValue, 2);
}

test('an infinite loop hits the timeout', async () => {
  const r = await run('while (true) {}', 100);
  assert.equal(r.status, 'error');
  assert.equal(r.error.code, 'TIMEOUT');
  assert.equal(r.error.message, 'Execution timed out after 100 ms');
  await stillServes();
});

test('timeoutMs 0 or omitted uses config.defaultTimeoutMs', async () => {
  // The message names the limit that applied: 300 ms, this runtime's default.
  for (const timeout of [0, undefined]) {
    const r = await run('for (;;) {}', timeout);
    assert.equal(r.error.code, 'TIMEOUT');
    assert.equal(r.error.message, 'Execution timed out after 300 ms');
  }
});

test('a loop inside promise jobs hits the timeout', async () => {
  const r = await run('const spin = () => Promise.resolve().then(spin); spin(); await new Promise(() => {})', 100);
  assert.equal(r.error.code, 'TIMEOUT');
  await stillServes();
});

test('catastrophic regular-expression backtracking hits the timeout', async () => {
  const r = await run("return /^(a+)+$/.test('a'.repeat(40) + 'b')", 100);
  assert.equal(r.error.code, 'TIMEOUT');
  await stillServes();
});

test('a timeout cannot be caught by the handler', async () => {
  const r = await run('try { while (true) {} } catch (e) { return "caught" }', 100);
  assert.equal(r.error.code, 'TIMEOUT');
});

test('allocating without bound hits the memory limit', async () => {
  const r = await run("const a = []; for (;;) a.push('x'.repeat(4096) + a.length)", 5000);
  assert.equal(r.status, 'error');
  assert.equal(r.error.code, 'MEMORY_LIMIT');
  assert.equal(r.error.message, `Memory limit of ${16 * 1024 * 1024} bytes exceeded`);
  await stillServes();
});

test('memoryLimitBytes bounds the QuickJS heap: 15 MiB fit in this runtime\'s 16 MiB, 16 MiB (plus the heap in use) do not', async () => {
  const fits = await run('return new ArrayBuffer(15 << 20).byteLength', 5000);
  assert.equal(fits.returnValue, 15 << 20, JSON.stringify(fits.error));
  const over = await run('return new ArrayBuffer(16 << 20).byteLength', 5000);
  assert.deepEqual([over.error?.code, over.error?.message], ['MEMORY_LIMIT', `Memory limit of ${16 * 1024 * 1024} bytes exceeded`]);
});

test('one huge allocation hits the memory limit', async () => {
  const r = await run('return new ArrayBuffer(64 * 1024 * 1024).byteLength', 5000);
  assert.equal(r.error.code, 'MEMORY_LIMIT');
  await stillServes();
});

test('deep recursion is a RangeError, never a native stack overflow', async () => {
  const r = await run('function f(n) { return f(n + 1) + 1 } return f(0)', 5000);
  assert.equal(r.error.code, 'EXECUTION_ERROR');
  assert.equal(r.error.message, 'RangeError: Maximum call stack size exceeded');
  await stillServes();
});

test('deep recursion through getters, JSON, sort, the parser and proxies', async () => {
  for (const code of [
    'const o = {}; Object.defineProperty(o, "x", { get() { return this.x } }); return o.x',
    'let a = []; for (let i = 0; i < 100000; i++) a = [a]; return JSON.stringify(a).length',
    'const a = [3, 1, 2]; const cmp = (x, y) => { a.sort(cmp); return x - y }; a.sort(cmp)',
    // 20 000 nested array literals for the parser (built with repeat(): a
    // concatenation loop spent most of the budget building the string)
    'const s = "[".repeat(20000) + "1" + "]".repeat(20000); return eval(s).length',
    'const p = new Proxy({}, { get(t, k, r) { return r[k] } }); return p.x',
  ]) {
    const r = await run(code, 5000);
    assert.equal(r.status, 'error', code);
    assert.equal(r.error.code, 'EXECUTION_ERROR', code);
    assert.equal(r.error.message, 'RangeError: Maximum call stack size exceeded', code);
  }
  await stillServes();
});

test('deeply nested return values are refused, not overflowed', async () => {
  const r = await run('let a = []; for (let i = 0; i < 1000; i++) a = [a]; return a', 5000);
  assert.equal(r.error.code, 'EXECUTION_ERROR');
  assert.match(r.error.message, /nested too deeply/);
});

test('output volume is bounded by config.maxResultBytes, and the handler cannot catch it', async () => {
  const r = await run("const s = 'x'.repeat(1 << 20); for (;;) { try { $emit('big', s) } catch (e) {} }", 5000, {
    capabilities: ['events:emit:*'],
  });
  assert.equal(r.error.code, 'RESOURCE_LIMIT');
  assert.equal(r.error.message,
    'Result too large: config.maxResultBytes (8388608 bytes) was reached while encoding events[7].payload');
  assert.deepEqual(r.events, []);
  await stillServes();
});

test('log volume counts against config.maxResultBytes; the logs written so far are kept', async () => {
  const r = await run("const s = 'y'.repeat(1 << 20); for (let i = 0; i < 40; i++) $log(s); return 'done'", 5000);
  assert.equal(r.error.code, 'RESOURCE_LIMIT');
  assert.equal(r.error.message,
    'Result too large: config.maxResultBytes (8388608 bytes) was reached while encoding logs[7]');
  assert.equal(r.logs.length, 7);
  assert.equal(r.logs[6].message.length, 1 << 20);
  await stillServes();
});

// The same recursion, with a catch: QuickJS's own stack check throws a
// RangeError that the handler catches; a wasm trap unwinds the whole
// segment, so no handler code (no catch) runs after it, and the error has no
// handler location.
const CAUGHT_RECURSION = `let depth = 0;
  function f(n) { depth = n; return f(n + 1) + 1 }
  try { return f(0) } catch (e) { return ['caught', String(e), depth > 100] }`;

test('stackSizeBytes sets the wasm call-depth budget: on a 1 MiB worker stack recursion is a wasm trap (uncatchable, no location), the sandbox is reset, the runtime carries on', { skip: SYNC_SKIP_WORKER_STACK }, async () => {
  // On this file's runtime (the default 8 MiB stack) QuickJS's own check
  // comes first: a RangeError the handler catches.
  const checked = await run(CAUGHT_RECURSION, 5000);
  assert.equal(checked.status, 'success', JSON.stringify(checked.error));
  assert.deepEqual(checked.returnValue, ['caught', 'RangeError: Maximum call stack size exceeded', true]);
  // With a 1 MiB worker stack the wasm call-depth budget runs out first: the
  // generated code traps.
  const small = runtime({ workers: 1, maxInstances: 1, stackSizeBytes: 1024 * 1024 });
  try {
    const before = await small.executeHandler('return 1', context());
    assert.equal(before.returnValue, 1);
    assert.equal(small.getStats().liveInstances, 1);
    const r = await small.executeHandler(CAUGHT_RECURSION, context(), 5000);
    assert.equal(r.status, 'error', `the catch ran: ${JSON.stringify(r.returnValue)}`);
    assert.deepEqual(r.error, {
      code: 'EXECUTION_ERROR', message: 'RangeError: Maximum call stack size exceeded', stack: null, location: null, snippet: null,
    });
    // The trapped instance is reset to the snapshot like any other: kept.
    assert.equal(small.getStats().liveInstances, 1);
    const after = await small.executeHandler('return $args.n', context({ args: { n: 5 } }));
    assert.equal(after.returnValue, 5);
    // Re-entrant host calls (a getter that emits the object it belongs to)
    // and engine-internal recursion stay inside the budget too.
    for (const code of [
      'const o = { get x() { $emit("e", o); return 1 } }; $emit("e", o)',
      'function g() { return $state.a + g() } return g()',
      'let a = []; for (let i = 0; i < 100000; i++) a = [a]; return JSON.stringify(a).length',
      'function* gen(n) { yield* gen(n + 1) } return [...gen(0)]',
    ]) {
      const deep = await small.executeHandler(code, context({ stateSnapshot: { a: 1 } }), 5000);
      assert.equal(deep.error.message, 'RangeError: Maximum call stack size exceeded', code);
    }
    assert.equal(small.getStats().liveInstances, 1);
    assert.equal((await small.executeHandler('return $args.n', context({ args: { n: 6 } }))).returnValue, 6);
  } finally {
    await small.shutdown();
  }
});

test('config.maxHostCalls: that many host calls of one execution, every kind and every segment counted, succeed; one more is RESOURCE_LIMIT', async () => {
  const limited = runtime({ workers: 1, maxHostCalls: 7 });
  try {
    const ctx = context({ stateSnapshot: { a: 1 }, extensionRegistry: { kv: ['get'] } });
    // one call of each kind before the suspension (6, the $ext call included), `extra` after it
    const code = (extra) => `const a = $state.a; $state.b = a; $emit('e'); $view.focus('f'); $log('l');
      const v = await $ext.kv.get(1); ${extra} return v`;
    for (const [extra, calls] of [['', 6], ["$log('m');", 7], ["'a' in $state;", 7]]) {
      const s = await limited.executeHandler(code(extra), ctx);
      assert.equal(s.status, 'suspended', JSON.stringify(s.error));
      const r = await limited.resumeHandler(s.suspension.suspensionId, { success: true, value: 5 });
      assert.equal(r.status, 'success', `${calls} calls: ${JSON.stringify(r.error)}`);
      assert.equal(r.returnValue, 5);
    }
    for (const extra of ["$log('m'); $log('n');", "$state.c = 1; $emit('g');", "$view.focus('g'); delete $state.b;",
      'await $ext.kv.get(2); await $ext.kv.get(3);']) {
      let r = await limited.executeHandler(code(extra), ctx);
      while (r.status === 'suspended') r = await limited.resumeHandler(r.suspension.suspensionId, { success: true, value: 5 });
      assert.equal(r.status, 'error', extra);
      assert.deepEqual([r.error.code, r.error.message],
        ['RESOURCE_LIMIT', 'Too many host calls: an execution may make config.maxHostCalls (7)'], extra);
    }
    // one segment: 7 reads pass, the eighth does not, and no catch can keep it
    const one = (n) => limited.executeHandler(`let s = 0; for (let i = 0; i < ${n}; i++) { try { s += $state.a } catch (e) {} } return s`, ctx);
    assert.equal((await one(7)).returnValue, 7);
    assert.equal((await one(8)).error.code, 'RESOURCE_LIMIT');
  } finally {
    await limited.shutdown();
  }
});

test('config.maxResultBytes is exact: a result of that many bytes passes, one byte more is RESOURCE_LIMIT', async () => {
  const limited = runtime({ workers: 1, maxResultBytes: 65536 });
  try {
    const LIMIT_HIT = (where) => `Result too large: config.maxResultBytes (65536 bytes) was reached while encoding ${where}`;
    // A string of n < 65536 bytes is str16: 3 bytes of header. The return
    // value alone: 3 + 65533 bytes. A state write plus the undefined return
    // value (3 bytes, ext 0): 3 + 65530 + 3.
    for (const [code, n, where] of [['return s', 65533, 'returnValue'], ['$state.s = s', 65530, 'stateMutations[0].value']]) {
      const fits = await limited.executeHandler(`const s = 'x'.repeat(${n}); ${code}`, context());
      assert.equal(fits.status, 'success', `${n}: ${JSON.stringify(fits.error)}`);
      const over = await limited.executeHandler(`const s = 'x'.repeat(${n + 1}); ${code}`, context());
      assert.equal(over.status, 'error', String(n + 1));
      assert.deepEqual([over.error.code, over.error.message], ['RESOURCE_LIMIT', LIMIT_HIT(where)]);
    }
  } finally {
    await limited.shutdown();
  }
});

'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { context, runtime } = require('./helpers');

const rt = runtime({ workers: 2, maxInstances: 2, memoryLimitBytes: 16 * 1024 * 1024, defaultTimeoutMs: 300 });
test.after(() => rt.shutdown());
const run = (code, timeout, over) => rt.executeHandler(code, context(over), timeout);

async function stillServes() {
  const r = await run('return $args.n + 1', 0, { args: { n: 1 } });
  assert.equal(r.status, 'success');
  assert.equal(r.returnValue, 2);
}

test('an infinite loop hits the timeout', async () => {
  const t = Date.now();
  const r = await run('while (true) {}', 100);
  assert.equal(r.status, 'error');
  assert.equal(r.error.code, 'TIMEOUT');
  assert.equal(r.error.message, 'Execution timed out after 100 ms');
  assert.ok(Date.now() - t < 2000);
  await stillServes();
});

test('timeoutMs 0 or omitted uses config.defaultTimeoutMs', async () => {
  for (const timeout of [0, undefined]) {
    const t = Date.now();
    const r = await run('for (;;) {}', timeout);
    assert.equal(r.error.code, 'TIMEOUT');
    assert.equal(r.error.message, 'Execution timed out after 300 ms');
    assert.ok(Date.now() - t >= 290);
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
    'let s = "1"; for (let i = 0; i < 20000; i++) s = "[" + s + "]"; return eval(s).length',
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

test('a wasm trap (call-depth exhaustion on a small worker stack) resets the sandbox to the pristine image; the runtime carries on', async () => {
  // With a 1 MiB worker stack the wasm call-depth budget (about 1000 calls)
  // runs out before QuickJS's own stack check: the generated code traps.
  const small = runtime({ workers: 1, maxInstances: 1, stackSizeBytes: 1024 * 1024 });
  try {
    const before = await small.executeHandler('return 1', context());
    assert.equal(before.returnValue, 1);
    assert.equal(small.getStats().liveInstances, 1);
    const r = await small.executeHandler('function f(n) { return f(n + 1) + 1 } return f(0)', context(), 5000);
    assert.equal(r.status, 'error');
    assert.equal(r.error.code, 'EXECUTION_ERROR');
    assert.equal(r.error.message, 'RangeError: Maximum call stack size exceeded');
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
  } finally {
    await small.shutdown();
  }
});

'use strict';
// config.memoryCheck: a fault in a sandbox (made on purpose through the
// addon's injectFault test hook, as a bug in the engine would make it) ends
// that execution with the documented error and the sandbox serves the next
// one, in both modes, on worker threads and on the calling thread
// (executeSync). In guard mode the process's other SIGSEGV users keep
// working: V8's own wasm out-of-bounds trap, node:vm, worker_threads, and a
// fault that is not ours still reaches the handler installed before us.
// Each case runs in a child process: a containment bug would end it.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { spawnSync } = require('child_process');

const PKG = path.join(__dirname, '..');
const OOB = 'Sandbox trapped (out-of-bounds memory access); it was reset';
const STACK = 'RangeError: Maximum call stack size exceeded';

// A wasm module for V8: f() loads i32 at 0x20000, past its one 64 KiB page.
const V8_OOB_WASM = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f,
  0x03, 0x02, 0x01, 0x00, 0x05, 0x03, 0x01, 0x00, 0x01, 0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00,
  0x0a, 0x0b, 0x01, 0x09, 0x00, 0x41, 0x80, 0x80, 0x08, 0x28, 0x02, 0x00, 0x0b];

// The child: runs `body` (an async function's text) with `native`, `run`
// (execute through a worker), `runSync` (executeSync) and `out` (one JSON
// line to the parent) in scope.
function child(body, env = {}) {
  const script = `
    const native = require(${JSON.stringify(path.join(PKG, 'lib', 'native'))});
    const { pack, unpack } = require('msgpackr');
    const ctx = pack({ panelId: 'p', handlerName: 'h', stateSnapshot: {}, args: { n: 6 }, scope: {}, capabilities: [] });
    const run = async (rt, code) => short(unpack(await rt.execute(code, ctx, 5000)));
    const runSync = (rt, code) => short(unpack(rt.executeSync(code, ctx, 5000, 0)));
    const short = (r) => ({ status: r.status, value: r.returnValue, code: r.error && r.error.code, message: r.error && r.error.message });
    const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
    const wasmOob = () => {
      const inst = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(${JSON.stringify(V8_OOB_WASM)})));
      try { inst.exports.f(); return 'no trap'; } catch (e) { return e.constructor.name + ': ' + e.message; }
    };
    (async () => { ${body} })().catch((e) => { out({ failed: String(e && e.stack || e) }); process.exitCode = 1; });`;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: PKG, env: { ...process.env, ...env }, timeout: 60000, encoding: 'utf8' });
  const lines = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return { status: r.status, signal: r.signal, stderr: r.stderr, lines };
}

const FIB = 'function f(n) { return n < 2 ? n : f(n - 1) + f(n - 2) } return f($args.n)';

for (const mode of ['bounds', 'guard']) {
  test(`${mode}: an out-of-bounds access fails its execution (INTERNAL_ERROR), the next one succeeds, on a worker and on the calling thread`, () => {
    const r = child(`
      const rt = new native.Runtime({ workers: 1, maxInstances: 1, memoryCheck: ${JSON.stringify(mode)} });
      out({ mode: rt.stats().memoryCheck });
      for (let i = 0; i < 2; i++) {
        rt.injectFault('oob');
        out(await run(rt, ${JSON.stringify(FIB)}));
        out(await run(rt, ${JSON.stringify(FIB)}));
      }
      rt.injectFault('oob');
      out(runSync(rt, ${JSON.stringify(FIB)}));
      out(runSync(rt, ${JSON.stringify(FIB)}));
      out(await run(rt, ${JSON.stringify(FIB)}));
      out({ live: rt.stats().liveInstances });
      await rt.shutdown();`);
    assert.equal(r.status, 0, r.stderr);
    const failed = { status: 'error', code: 'INTERNAL_ERROR', message: OOB };
    const ok = { status: 'success', value: 8 };
    assert.deepEqual(r.lines, [{ mode }, failed, ok, failed, ok, failed, ok, ok, { live: 1 }]);
  });
}

test('guard: a native stack overflow under a sandbox is its RangeError, not the end of the process, on a worker and on the calling thread', () => {
  const r = child(`
    const rt = new native.Runtime({ workers: 1, maxInstances: 1, memoryCheck: 'guard' });
    rt.injectFault('stack');
    out(await run(rt, ${JSON.stringify(FIB)}));
    out(await run(rt, ${JSON.stringify(FIB)}));
    rt.injectFault('stack');
    out(runSync(rt, ${JSON.stringify(FIB)}));
    out(runSync(rt, ${JSON.stringify(FIB)}));
    await rt.shutdown();`);
  assert.equal(r.status, 0, r.stderr);
  const failed = { status: 'error', code: 'EXECUTION_ERROR', message: STACK };
  const ok = { status: 'success', value: 8 };
  assert.deepEqual(r.lines, [failed, ok, failed, ok]);
});

test('bounds: injectFault refuses a stack overflow (no handler would catch it) and unknown kinds', () => {
  const native = require('../lib/native');
  const rt = new native.Runtime({ workers: 1, memoryCheck: 'bounds' });
  const message = "injectFault(kind): 'oob', or 'stack' with guard pages, on a live runtime";
  assert.throws(() => rt.injectFault('stack'), { name: 'RangeError', message });
  assert.throws(() => rt.injectFault('segv'), { name: 'RangeError', message });
  assert.throws(() => rt.injectFault(1), { name: 'RangeError', message });
  return rt.shutdown();
});

test('guard: V8 wasm traps, node:vm and worker_threads behave beside guard-page sandboxes that fault', () => {
  const r = child(`
    const vm = require('vm');
    const { Worker } = require('worker_threads');
    out({ before: wasmOob() });
    const rt = new native.Runtime({ workers: 2, memoryCheck: 'guard' });
    rt.injectFault('oob');
    out(await run(rt, ${JSON.stringify(FIB)}));
    out({ after: wasmOob(), vm: vm.runInNewContext('a + b', { a: 2, b: 3 }) });
    // A worker thread with a guard runtime of its own: its faults, its V8
    // wasm trap, and its sync executions on its own (JS) thread.
    const w = new Worker(\`
      const { parentPort } = require('worker_threads');
      \${wasmOob.toString().replace('() =>', 'const wasmOob = () =>')}
      (async () => {
        const native = require(${JSON.stringify(path.join(PKG, 'lib', 'native'))});
        const { pack, unpack } = require('msgpackr');
        const ctx = pack({ panelId: 'p', handlerName: 'h', stateSnapshot: {}, args: {}, scope: {}, capabilities: [] });
        const rt = new native.Runtime({ workers: 1, memoryCheck: 'guard' });
        rt.injectFault('oob');
        const a = unpack(rt.executeSync('return 1', ctx, 5000, 0)).status;
        const b = unpack(rt.executeSync('return 2', ctx, 5000, 0)).returnValue;
        rt.injectFault('oob');
        const c = unpack(await rt.execute('return 3', ctx, 5000)).status;
        const d = unpack(await rt.execute('return 4', ctx, 5000)).returnValue;
        parentPort.postMessage({ a, b, c, d, wasm: wasmOob() });
        await rt.shutdown();
      })();\`, { eval: true });
    out(await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); }));
    await new Promise((resolve) => w.once('exit', resolve));
    out(await run(rt, ${JSON.stringify(FIB)}));
    out({ stats: rt.stats().memoryCheck, wasm: wasmOob() });
    await rt.shutdown();`);
  assert.equal(r.status, 0, r.stderr);
  const v8 = 'RuntimeError: memory access out of bounds';
  assert.deepEqual(r.lines, [
    { before: v8 },
    { status: 'error', code: 'INTERNAL_ERROR', message: OOB },
    { after: v8, vm: 5 },
    { a: 'error', b: 2, c: 'error', d: 4, wasm: v8 },
    { status: 'success', value: 8 },
    { stats: 'guard', wasm: v8 },
  ]);
});

test('guard: a SIGSEGV that is not a sandbox\'s goes on to the handler installed before ours (the process dies of it)', () => {
  const r = child(`
    const rt = new native.Runtime({ workers: 1, memoryCheck: 'guard' });
    out(await run(rt, 'return 1'));
    process.kill(process.pid, 'SIGSEGV');
    await new Promise((resolve) => setTimeout(resolve, 2000));
    out({ survived: true });`);
  assert.deepEqual(r.lines, [{ status: 'success', value: 1 }]);
  assert.equal(r.signal, 'SIGSEGV');
});

test('the default is guard; the suite\'s runtimes use NEXUS_TEST_MEMORY_CHECK when set (npm test runs both)', async () => {
  const { runtime, MEMORY_CHECK } = require('./helpers');
  const { NexusRuntime } = require('..');
  const plain = new NexusRuntime({ workers: 1 }); // memoryCheck left to its default on purpose
  assert.equal(plain.config.memoryCheck, 'guard');
  assert.equal(plain.getStats().memoryCheck, 'guard');
  const rt = runtime({ workers: 1 });
  assert.equal(rt.getStats().memoryCheck, MEMORY_CHECK ?? 'guard');
  await Promise.all([plain.shutdown(), rt.shutdown()]);
});

test('config.memoryCheck is checked by both layers', () => {
  const { validateConfig } = require('..');
  const native = require('../lib/native');
  const message = "config.memoryCheck must be 'guard' or 'bounds'";
  assert.throws(() => validateConfig({ memoryCheck: 'none' }), { name: 'RangeError', message: `${message}, got "none"` });
  assert.throws(() => validateConfig({ memoryCheck: 1 }), { name: 'TypeError', message: 'config.memoryCheck must be a string' });
  assert.throws(() => new native.Runtime({ memoryCheck: 'Guard' }), { name: 'RangeError', message });
  assert.throws(() => new native.Runtime({ memoryCheck: 'g'.repeat(100) }), { name: 'RangeError', message });
  assert.throws(() => new native.Runtime({ memoryCheck: true }), { name: 'TypeError', message: 'config.memoryCheck must be a string' });
  assert.equal(validateConfig({ memoryCheck: 'bounds' }).memoryCheck, 'bounds');
});

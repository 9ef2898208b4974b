'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { inspect } = require('util');
const { Worker } = require('worker_threads');
const { NexusRuntime, validateConfig } = require('..');
const contract = require('../src/contract');
const { context, runtime, testConfig } = require('./helpers');

test('config: defaults', async () => {
  const rt = runtime({});
  const c = rt.config;
  assert.equal(c.workers, os.availableParallelism ? os.availableParallelism() : os.cpus().length);
  assert.equal(c.maxInstances, c.workers * 2);
  assert.equal(c.minInstances, 0);
  assert.equal(c.memoryLimitBytes, 32 * 1024 * 1024);
  assert.equal(c.stackSizeBytes, 8 * 1024 * 1024);
  assert.equal(c.defaultTimeoutMs, 5000);
  assert.equal(c.maxResultBytes, 8 * 1024 * 1024);
  assert.equal(c.maxHostCalls, 10000);
  assert.equal(c.enableAOT, true);
  assert.equal(c.quickjsModulePath, require.resolve('quickjs-wasi/quickjs.wasm'));
  assert.equal(rt.getStats().workers, c.workers);
  await rt.shutdown();
});

test('config: every field is validated (types, integers, booleans, strings, names, cross-field rules)', () => {
  // The bounds of every integer field, each minus and plus one, are
  // contract.test.js's ("lib applies the contract defaults, and refuses each
  // bound plus or minus one"); this test holds everything else.
  const cases = [
    [null, TypeError, 'config must be an object'],
    [[], TypeError, 'config must be an object'],
    [5, TypeError, 'config must be an object'],
    ['workers', TypeError, 'config must be an object'],
    [{ nope: 1 }, TypeError, 'config.nope is not a known option'],
    [{ constructor: 1 }, TypeError, 'config.constructor is not a known option'],
    [{ minInstances: 5, maxInstances: 2 }, RangeError, 'config.minInstances (5) must not exceed config.maxInstances (2)'],
    // maxInstances defaults to twice the workers
    [{ workers: 1, minInstances: 3 }, RangeError, 'config.minInstances (3) must not exceed config.maxInstances (2)'],
    [{ quickjsModulePath: '/tmp/other.wasm' }, RangeError, /^config\.quickjsModulePath: only the built-in engine \(/],
  ];
  for (const [key, { min, max }] of Object.entries(contract.config)) {
    for (const wrong of ['2', true, null, 2n, {}, [1]]) cases.push([{ [key]: wrong }, TypeError, `config.${key} must be a number`]);
    for (const v of [min + 0.5, NaN, Infinity, -Infinity]) {
      cases.push([{ [key]: v }, RangeError, `config.${key} must be an integer in [${min}, ${max}], got ${v}`]);
    }
  }
  for (const key of ['enableSIMD', 'enableBulkMemory', 'enableAOT']) {
    for (const wrong of ['yes', 1, 0, null, {}]) cases.push([{ [key]: wrong }, TypeError, `config.${key} must be a boolean`]);
  }
  for (const key of ['cacheDir', 'quickjsModulePath']) {
    for (const wrong of [3, '', null, true, {}]) cases.push([{ [key]: wrong }, TypeError, `config.${key} must be a non-empty string`]);
  }
  for (const [config, type, message] of cases) {
    assert.throws(() => new NexusRuntime(config), (err) => {
      assert.equal(err.constructor, type, `${inspect(config)}: ${err}`);
      if (message instanceof RegExp) assert.match(err.message, message);
      else assert.equal(err.message, message);
      return true;
    });
  }
  // undefined is "not given"; every valid type is accepted
  const c = validateConfig({ workers: undefined, enableSIMD: false, enableBulkMemory: false, enableAOT: true, cacheDir: 'rel' });
  assert.equal(c.enableSIMD, false);
  assert.equal(c.enableBulkMemory, false);
  assert.equal(c.cacheDir, path.resolve('rel'));
  assert.equal(c.maxInstances, 2 * c.workers);
});

test('config: accepted seed options; cacheDir is created if missing', async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nx-api-'));
  const cacheDir = path.join(tmp, 'made', 'by', 'the', 'runtime');
  try {
    const rt = runtime({
      workers: 1, enableSIMD: true, enableBulkMemory: true, enableAOT: false,
      quickjsModulePath: require.resolve('quickjs-wasi/quickjs.wasm'), cacheDir,
    });
    assert.equal(rt.config.enableAOT, true); // always ahead of time: the engine is compiled in
    assert.equal(rt.config.cacheDir, cacheDir);
    const r = await rt.executeHandler('return 1', context());
    assert.equal(r.returnValue, 1);
    await rt.shutdown();
    assert.match(fs.readdirSync(cacheDir).join(), /^[0-9a-f]{64}\.nxc$/); // the one compiled source
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('minInstances: that many sandboxes are created up front, before any execution', { timeout: 30000 }, async (t) => {
  const rt = runtime({ workers: 2, maxInstances: 4, minInstances: 3 });
  try {
    // created in the background: wait until they are ready (idle), until the
    // test's timeout (liveInstances counts one as soon as its creation starts)
    while (rt.getStats().availableInstances < 3 && !t.signal.aborted) await new Promise((r) => setTimeout(r, 5));
    const s = rt.getStats();
    assert.equal(s.totalExecutions, 0);
    assert.equal(s.liveInstances, 3);
    assert.equal(s.availableInstances, 3);
    assert.equal(s.totalMemoryBytes, 3 * s.snapshotBytes);
  } finally {
    await rt.shutdown();
  }
});

test('executeHandler rejects bad arguments with TypeErrors', async () => {
  const rt = runtime({ workers: 1 });
  const ok = context();
  const cases = [
    [[42, ok], 'handler code must be a string'],
    [[null, ok], 'handler code must be a string'],
    [['1', undefined], 'context must be an object'],
    [['1', 'ctx'], 'context must be an object'],
    [['1', { ...ok, panelId: 1 }], 'context.panelId must be a string'],
    [['1', { ...ok, handlerName: undefined }], 'context.handlerName must be a string'],
    [['1', { ...ok, stateSnapshot: undefined }], 'context.stateSnapshot must be an object or a NexusState'],
    [['1', { ...ok, stateSnapshot: [] }], 'context.stateSnapshot must be an object or a NexusState'],
    [['1', { ...ok, args: null }], 'context.args must be an object'],
    [['1', { ...ok, scope: 3 }], 'context.scope must be an object'],
    [['1', { ...ok, capabilities: 'state:read:*' }], 'context.capabilities must be an array of strings'],
    [['1', { ...ok, extensionRegistry: { http: 'get' } }], 'context.extensionRegistry.http must be an array of method names'],
    [['1', ok, '100'], 'timeoutMs must be a number'],
  ];
  for (const [args, message] of cases) {
    await assert.rejects(rt.executeHandler(...args), { name: 'TypeError', message });
  }
  await assert.rejects(rt.executeHandler('1', ok, -1), { name: 'RangeError' });
  await assert.rejects(rt.executeHandler('1', ok, 1.5), { name: 'RangeError' });
  await rt.shutdown();
});

test('the native layer checks its own arguments too', async () => {
  const native = require('../lib/native');
  assert.throws(() => new native.Runtime(), { name: 'TypeError', message: 'Runtime(config): config must be an object' });
  assert.throws(() => new native.Runtime({ workers: -3 }), { name: 'RangeError', message: 'config.workers must be an integer in [1, 256]' });
  for (const [key, { min, max }] of Object.entries(contract.config)) {
    assert.throws(() => new native.Runtime({ [key]: String(min) }), { name: 'TypeError', message: `config.${key} must be a number` });
    assert.throws(() => new native.Runtime({ [key]: min + 0.5 }), { name: 'RangeError', message: `config.${key} must be an integer in [${min}, ${max}]` });
  }
  assert.throws(() => new native.Runtime({ minInstances: 3, maxInstances: 2 }),
    { name: 'RangeError', message: 'config.minInstances must not exceed config.maxInstances' });
  assert.throws(() => new native.Runtime({ cacheDir: `/tmp/${'d'.repeat(5000)}` }), { name: 'RangeError', message: 'config.cacheDir is too long' });
  const n = new native.Runtime(testConfig({ workers: 1 }));
  const USAGE = 'execute(code, context, timeoutMs): ';
  assert.throws(() => n.execute(1, Buffer.alloc(0), 0), { name: 'TypeError', message: `${USAGE}code must be a string` });
  assert.throws(() => n.execute('1', {}, 0), { name: 'TypeError', message: `${USAGE}context must be a Buffer` });
  assert.throws(() => n.execute('1', Buffer.alloc(0), -5), { name: 'RangeError', message: `${USAGE}timeoutMs out of range` });
  assert.throws(() => n.execute.call({}, '1', Buffer.alloc(0), 0), { name: 'TypeError', message: 'Illegal invocation' });
  // Bytes that are not the lib's MessagePack still produce a result, never a crash.
  const { unpack } = require('msgpackr');
  for (const bytes of [Buffer.alloc(0), Buffer.from([0xc1]), Buffer.from([0x93, 1]), Buffer.from('not msgpack'),
    // Declared sizes far beyond the bytes present: refused before any allocation.
    Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x01]), Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61]),
    Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61]), Buffer.from([0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01]),
    Buffer.from([0x81, 0xa1, 0x61, 0x01, 0x00]), // trailing byte
    Buffer.alloc(40, 0x91)]) { // 40 nested arrays
    const r = unpack(await n.execute('return 1', bytes, 0));
    assert.equal(r.status, 'error');
    assert.equal(r.error.code, 'INTERNAL_ERROR');
  }
  // The language arguments (lib/index.js sends them for TypeScript).
  const E = Buffer.alloc(0);
  assert.throws(() => n.execute('1', E, 0, 0, 'ts'), { name: 'TypeError', message: 'execute: language must be a number' });
  for (const bad of [-1, 2, 0.5, NaN]) {
    assert.throws(() => n.execute('1', E, 0, 0, bad, 'x'), { name: 'RangeError', message: "execute: language must be an index into the contract's languages" });
  }
  assert.throws(() => n.execute('1', E, 0, 0, 0, 'return 1'), { name: 'TypeError', message: 'execute: JavaScript takes no stripped source' });
  const NEEDS = 'execute: TypeScript needs its stripped source, or { message, line, column } saying why it has none';
  for (const bad of [undefined, 1, {}, { message: 1 }, { message: 'm', line: 'x' }]) {
    assert.throws(() => n.execute('1', E, 0, 0, 1, bad), { name: 'TypeError', message: NEEDS }, JSON.stringify(bad));
  }
  assert.throws(() => n.execute(new Uint8Array(4), E, 0, 1, 1, 'x'), { name: 'TypeError', message: 'execute: precompiled bytecode has no language' });
  // The stripped source is what runs; the source as given is what errors show.
  const C = require('msgpackr').pack(context());
  let r = unpack(await n.execute('return 1 as number', C, 0, 0, 1, 'return 1          '));
  assert.equal(r.returnValue, 1);
  r = unpack(await n.execute('const a: T = 1;\nenum E {}', C, 0, 0, 1, { message: 'SyntaxError: no', line: 2, column: 1 }));
  assert.deepEqual([r.error.code, r.error.message, r.error.location, r.error.snippet], ['COMPILATION_ERROR', 'SyntaxError: no', { line: 2, column: 1 }, 'enum E {}\n^']);
  r = unpack(await n.execute('x', C, 0, 0, 1, { message: 'SyntaxError: failed', line: 0, column: 0 }));
  assert.deepEqual([r.error.code, r.error.location, r.error.snippet], ['COMPILATION_ERROR', null, null]);
  await n.shutdown();
});

test('executions are queued FIFO beyond maxInstances', async () => {
  const rt = runtime({ workers: 2, maxInstances: 1 });
  const order = [];
  const runs = Array.from({ length: 6 }, (_, i) =>
    rt.executeHandler('const t = Date.now(); while (Date.now() - t < 5) {} return $args.i', context({ args: { i } }))
      .then((r) => order.push(r.returnValue)));
  await Promise.all(runs);
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5]);
  const s = rt.getStats();
  assert.equal(s.liveInstances, 1);
  assert.equal(s.totalExecutions, 6);
  await rt.shutdown();
});

test('stats count executions by status and code', async () => {
  const rt = runtime({ workers: 1 });
  await rt.executeHandler('return 1', context());
  await rt.executeHandler('throw new Error()', context());
  await rt.executeHandler("$emit('x')", context({ capabilities: [] }));
  const s = rt.getStats();
  assert.equal(s.totalExecutions, 3);
  assert.deepEqual(s.executionsByStatus, { success: 1, error: 2, suspended: 0 });
  assert.deepEqual(s.errorsByCode, { EXECUTION_ERROR: 1, PERMISSION_DENIED: 1 });
  assert.equal(s.activeInstances, 0);
  assert.equal(s.availableInstances, 1);
  assert.equal(s.queuedExecutions, 0);
  assert.ok(s.avgExecutionTimeUs > 0);
  assert.ok(s.totalMemoryBytes >= 1 << 20);
  assert.equal(s.cacheHitRate, 0);
  await rt.shutdown();
});

test('shutdown lets in-flight executions finish, then rejects new calls; idempotent', async () => {
  const rt = runtime({ workers: 1 });
  const inflight = rt.executeHandler('const t = Date.now(); while (Date.now() - t < 50) {} return "done"', context());
  // In flight means started: wait until a worker runs it (queued ones end
  // with an error result instead, see metrics.test.js).
  while (rt.getStats().activeInstances === 0) await new Promise((r) => setTimeout(r, 1));
  const first = rt.shutdown();
  const second = rt.shutdown();
  assert.equal(first, second);
  await assert.rejects(rt.executeHandler('return 1', context()), { code: 'SHUT_DOWN' });
  assert.equal((await inflight).returnValue, 'done');
  await first;
  await assert.rejects(rt.executeHandler('return 1', context()), { code: 'SHUT_DOWN' });
  await rt.shutdown();
});

test('a runtime that is never shut down does not keep the process alive', async () => {
  const { execFileSync } = require('child_process');
  const script = `const { NexusRuntime } = require(${JSON.stringify(path.join(__dirname, '..'))});
    const rt = new NexusRuntime(require(${JSON.stringify(path.join(__dirname, 'helpers.js'))}).testConfig({ workers: 2, minInstances: 1 }));
    rt.executeHandler('return 7', { panelId: 'p', handlerName: 'h', stateSnapshot: {}, args: {}, scope: {}, capabilities: [] })
      .then((r) => console.log('result', r.returnValue));`;
  const out = execFileSync(process.execPath, ['-e', script], { timeout: 10000 }).toString();
  assert.equal(out.trim(), 'result 7');
});

test('the addon loads in several worker threads at once', async () => {
  const code = `const { parentPort, workerData } = require('worker_threads');
    const { NexusRuntime } = require(${JSON.stringify(path.join(__dirname, '..'))});
    (async () => {
      const rt = new NexusRuntime(require(${JSON.stringify(path.join(__dirname, 'helpers.js'))}).testConfig({ workers: 1 }));
      const r = await rt.executeHandler('return $args.n * 10', { panelId: 'p', handlerName: 'h', stateSnapshot: {},
        args: { n: workerData }, scope: {}, capabilities: [] });
      await rt.shutdown();
      parentPort.postMessage(r.returnValue);
    })();`;
  const results = await Promise.all([1, 2, 3].map((n) => new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: n });
    w.once('message', resolve);
    w.once('error', reject);
  })));
  assert.deepEqual(results, [10, 20, 30]);
});

test('terminating a worker thread mid-execution is clean', async () => {
  // The worker reports only once its handler is running (activeInstances 1);
  // terminate() must then resolve (exit code 1) however long the handler
  // would still run: the test's own timeout is what fails a hang.
  const code = `const { parentPort } = require('worker_threads');
    const { NexusRuntime } = require(${JSON.stringify(path.join(__dirname, '..'))});
    const rt = new NexusRuntime(require(${JSON.stringify(path.join(__dirname, 'helpers.js'))}).testConfig({ workers: 1 }));
    rt.executeHandler('while (true) {}', { panelId: 'p', handlerName: 'h', stateSnapshot: {}, args: {}, scope: {},
      capabilities: [] }, 60000).then((r) => parentPort.postMessage('finished ' + r.status));
    const poll = () => (rt.getStats().activeInstances === 1 ? parentPort.postMessage('running') : setTimeout(poll, 1));
    poll();`;
  const w = new Worker(code, { eval: true });
  const messages = [];
  await new Promise((resolve, reject) => {
    w.on('message', (m) => { messages.push(m); resolve() });
    w.once('error', reject);
  });
  assert.equal(await w.terminate(), 1);
  assert.deepEqual(messages, ['running']);
});

test('random and mutated context bytes never crash the native layer', async () => {
  const native = require('../lib/native');
  const { pack, unpack } = require('msgpackr');
  const n = new native.Runtime(testConfig({ workers: 2 }));
  const valid = pack({ panelId: 'p', handlerName: 'h', stateSnapshot: { a: [1, { b: 'c' }], d: new Date(0) },
    args: { x: new Uint16Array([1, 2]) }, scope: {}, capabilities: ['state:read:*'] });
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const inputs = [];
  for (let i = 0; i < 400; i++) {
    const b = Buffer.from(valid);
    for (let k = 0; k < 1 + Math.floor(rand() * 4); k++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
    inputs.push(rand() < 0.2 ? b.subarray(0, Math.floor(rand() * b.length)) : b);
  }
  for (let i = 0; i < 100; i++) inputs.push(Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256))));
  const results = await Promise.all(inputs.map((b) => n.execute('return [$state.a, $state.d, $args.x]', b, 1000)));
  for (const buf of results) {
    const r = unpack(buf);
    assert.ok(r.status === 'success' || r.status === 'error');
    if (r.status === 'error') assert.ok(['INTERNAL_ERROR', 'EXECUTION_ERROR', 'PERMISSION_DENIED'].includes(r.error.code), r.error.code);
  }
  await n.shutdown();
});

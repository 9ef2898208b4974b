'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { context, runtime } = require('./helpers');

const rt = runtime();
test.after(() => rt.shutdown());
const run = (code, over) => rt.executeHandler(code, context(over));

test('host globals do not exist in the sandbox', async () => {
  const r = await run(`return ['require', 'process', 'module', 'exports', 'std', 'os', 'Buffer', 'global',
    'setTimeout', 'setInterval', 'fetch', 'XMLHttpRequest', 'WebAssembly', 'SharedArrayBuffer', 'Atomics',
    '__filename', 'print', 'scriptArgs'].filter((n) => typeof globalThis[n] !== 'undefined')`);
  assert.deepEqual(r.returnValue, []);
});

test('standard built-ins are there', async () => {
  const r = await run(`return [typeof JSON.parse, Math.max(1, 2), new Map([[1, 2]]).get(1), /a(b)/.exec('ab')[1],
    typeof Promise.all, new Uint8Array(2).length, typeof Date.now(), typeof Proxy, typeof Reflect.ownKeys,
    typeof Symbol.iterator, typeof WeakRef, [3, 1, 2].toSorted().join(), typeof Intl]`);
  assert.deepEqual(r.returnValue, ['function', 2, 2, 'b', 'function', 2, 'number', 'function', 'function', 'symbol', 'function', '1,2,3', 'undefined']);
});

test('constructor-chain escapes reach only the sandbox', async () => {
  const r = await run(`const F = (() => {}).constructor;
    const g = F('return this')();
    const viaProto = ({}).__proto__.constructor.constructor('return typeof process')();
    const viaState = $state.constructor; // not a state key: no way out through the proxy
    const viaEmit = $emit.constructor('return typeof process')();
    return [g === globalThis, viaProto, viaState, viaEmit, Object.getOwnPropertyNames(globalThis).includes('stateGet')]`);
  assert.deepEqual(r.returnValue, [true, 'undefined', undefined, 'undefined', false]);
});

test('import() of anything is rejected', async () => {
  for (const spec of ['fs', 'node:child_process', './x.js', 'data:text/javascript,export default 1']) {
    const r = await run(`try { await import(${JSON.stringify(spec)}); return 'loaded' } catch (e) { return e.name }`);
    assert.equal(r.status, 'success');
    assert.notEqual(r.returnValue, 'loaded');
  }
  const r = await run('await import("fs")');
  assert.equal(r.error.code, 'EXECUTION_ERROR');
});

test('host functions are not reachable from the handler globals', async () => {
  const r = await run(`const seen = [];
    for (const v of [$state, $emit, $view, $log, $ext, globalThis]) {
      for (const k of Reflect.ownKeys(v)) if (/state(Get|Set)|host/.test(String(k))) seen.push(String(k));
    }
    return [seen, $emit.toString().includes('[native code]'), Object.keys($ext)]`);
  assert.deepEqual(r.returnValue, [[], false, []]);
});

test('prototype tricks on $state cannot reach the host', async () => {
  const r = await run(`const out = [];
    try { Object.setPrototypeOf($state, null); out.push('set') } catch (e) { out.push(e.name) }
    try { Object.preventExtensions($state); out.push('prevented') } catch (e) { out.push(e.name) }
    $state.__proto__ = { evil: 1 };
    out.push(typeof ({}).evil);
    return out`);
  assert.equal(r.status, 'success');
  assert.deepEqual(r.returnValue, ['TypeError', 'TypeError', 'undefined']);
  assert.deepEqual(r.stateMutations, [{ key: '__proto__', operation: 'set', value: { evil: 1 } }]);
  assert.equal({}.evil, undefined);
});

test('the timezone is UTC and the clock works', async () => {
  const r = await run('return [new Date(0).getTimezoneOffset(), Date.now() > 1.7e12, typeof Math.random()]');
  assert.deepEqual(r.returnValue, [0, true, 'number']);
});

test('Atomics.wait cannot block the worker', async () => {
  const r = await run('return typeof Atomics === "undefined" && typeof SharedArrayBuffer === "undefined"');
  assert.equal(r.returnValue, true);
});

test('hostile code values passed as the handler itself', async () => {
  for (const code of ['\u0000', '\uD800', 'return "\\u{10FFFF}"', '/*'.repeat(1000), 'x'.repeat(200000) + ';']) {
    const r = await run(code);
    assert.ok(['success', 'error'].includes(r.status));
  }
});

'use strict';
// Reaching the host: nothing of Node, the process or the host functions is
// reachable from a handler, whatever path it takes (constructor chains,
// import(), the globals it is given, $state's Proxy). Moved here from
// test/security.test.js so that hostile sources run in a child process.
const test = require('node:test');
const assert = require('node:assert/strict');
const { suite } = require('./harness');

const ok = (value) => (r) => {
  assert.equal(r.status, 'success', JSON.stringify(r.error));
  assert.deepEqual(r.returnValue, value);
};

const CASES = [
  {
    name: 'host globals do not exist in the sandbox',
    code: `return ['require', 'process', 'module', 'exports', 'std', 'os', 'Buffer', 'global',
      'setTimeout', 'setInterval', 'fetch', 'XMLHttpRequest', 'WebAssembly', 'SharedArrayBuffer', 'Atomics',
      '__filename', 'print', 'scriptArgs'].filter((n) => typeof globalThis[n] !== 'undefined')`,
    expect: ok([]),
  },
  {
    // console is the bootstrap's object, in the guest: every path from it
    // ends in the sandbox, and a handler cannot change it for later code.
    name: 'console is a frozen guest object: its functions reach only the sandbox',
    code: `const F = console.log.constructor;
      const before = console.log;
      console.log = () => 'replaced'; console.fresh = 1; delete console.warn;
      return [Object.isFrozen(console), Object.getPrototypeOf(console) === Object.prototype, F === Function,
        F('return typeof process')(), console.error.constructor('return typeof require')(),
        console.log === before, console.fresh, typeof console.warn,
        Object.getOwnPropertyNames(globalThis).includes('log'), Object.keys(globalThis).includes('console')]`,
    expect: ok([true, true, true, 'undefined', 'undefined', true, undefined, 'function', false, false]),
  },
  {
    name: 'standard built-ins are there',
    code: `return [typeof JSON.parse, Math.max(1, 2), new Map([[1, 2]]).get(1), /a(b)/.exec('ab')[1],
      typeof Promise.all, new Uint8Array(2).length, typeof Date.now(), typeof Proxy, typeof Reflect.ownKeys,
      typeof Symbol.iterator, typeof WeakRef, [3, 1, 2].toSorted().join(), typeof Intl]`,
    expect: ok(['function', 2, 2, 'b', 'function', 2, 'number', 'function', 'function', 'symbol', 'function', '1,2,3', 'undefined']),
  },
  {
    name: 'constructor-chain escapes reach only the sandbox',
    code: `const F = (() => {}).constructor;
      const g = F('return this')();
      const viaProto = ({}).__proto__.constructor.constructor('return typeof process')();
      const viaState = $state.constructor; // not a state key: no way out through the proxy
      const viaEmit = $emit.constructor('return typeof process')();
      return [g === globalThis, viaProto, viaState, viaEmit, Object.getOwnPropertyNames(globalThis).includes('stateGet')]`,
    expect: ok([true, 'undefined', undefined, 'undefined', false]),
  },
  {
    name: 'import() of anything is rejected',
    code: `const out = [];
      for (const spec of ['fs', 'node:child_process', './x.js', 'data:text/javascript,export default 1']) {
        try { await import(spec); out.push('loaded') } catch (e) { out.push(e.name) }
      }
      return out.includes('loaded')`,
    expect: ok(false),
  },
  {
    name: 'an uncaught import() is an EXECUTION_ERROR',
    code: 'await import("fs")',
    expect: (r) => assert.equal(r.error.code, 'EXECUTION_ERROR'),
  },
  {
    name: 'host functions are not reachable from the handler globals',
    code: `const seen = [];
      for (const v of [$state, $emit, $view, $log, $ext, globalThis]) {
        for (const k of Reflect.ownKeys(v)) if (/state(Get|Set)|host|kind|extCall/.test(String(k))) seen.push(String(k));
      }
      return [seen, $emit.toString().includes('[native code]'), Object.keys($ext)]`,
    expect: ok([[], false, []]),
  },
  {
    name: 'prototype tricks on $state cannot reach the host',
    code: `const out = [];
      try { Object.setPrototypeOf($state, null); out.push('set') } catch (e) { out.push(e.name) }
      try { Object.preventExtensions($state); out.push('prevented') } catch (e) { out.push(e.name) }
      $state.__proto__ = { evil: 1 };
      out.push(typeof ({}).evil);
      return out`,
    expect: (r) => {
      ok(['TypeError', 'TypeError', 'undefined'])(r);
      assert.deepEqual(r.stateMutations, [{ key: '__proto__', operation: 'set', value: { evil: 1 } }]);
    },
  },
  {
    name: 'the timezone is UTC and the clock works',
    code: 'return [new Date(0).getTimezoneOffset(), Date.now() > 1.7e12, typeof Math.random()]',
    expect: ok([0, true, 'number']),
  },
  {
    name: 'Atomics.wait cannot block the worker',
    code: 'return typeof Atomics === "undefined" && typeof SharedArrayBuffer === "undefined"',
    expect: ok(true),
  },
  ...['\u0000', '\uD800', 'return "\\u{10FFFF}"', '/*'.repeat(1000), 'x'.repeat(200000) + ';', '}); (async function () {', '`${'].map((code, i) => ({
    name: `hostile source #${i} as the handler itself gives a result`,
    code,
    expect: (r) => assert.ok(['success', 'error'].includes(r.status)),
  })),
  {
    name: 'bootstrap helpers handed to the guest are not reachable through the globals they build',
    code: `const seen = [];
      const visit = (o, d) => { if (d > 3 || o === null || (typeof o !== 'object' && typeof o !== 'function')) return;
        for (const k of Reflect.ownKeys(o)) { let v; try { v = o[k] } catch { continue } if (typeof v === 'function' && /^(copy|describe|settle|run|error|kind)$/.test(v.name)) seen.push(String(k)); visit(v, d + 1) } };
      visit($view, 0); visit($log, 0); visit($emit, 0);
      return seen`,
    expect: ok([]),
  },
];

if (require.main === module) suite(test, assert, CASES);
module.exports = { CASES };

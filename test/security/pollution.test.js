'use strict';
// Pollution: what a handler patches stays in its sandbox for one execution,
// cannot change what the bootstrap does for it (its helpers were captured
// before any handler ran), and nothing it returns can patch the host's
// prototypes.
const test = require('node:test');
const assert = require('node:assert/strict');
const { suite } = require('./harness');

const CASES = [
  {
    name: 'patched Function.prototype.call/bind, Map methods, Object.keys and Array.isArray do not change how a getter payload is copied',
    code: `Function.prototype.call = () => { throw new Error('call') }; Function.prototype.bind = () => { throw new Error('bind') };
      Map.prototype.get = () => 'forged'; Map.prototype.set = () => { throw new Error('set') };
      Object.keys = () => ['hacked']; Array.isArray = () => false; String = () => 'S';
      $emit('e', { get a() { return [1, { b: 2 }] }, c: [3] }); return 1`,
    expect: (r) => assert.deepEqual(r.events, [{ name: 'e', payload: { a: [1, { b: 2 }], c: [3] } }]),
  },
  {
    name: 'patched JSON.stringify does not change what $log writes',
    script: `const r = await rt.executeHandler("JSON.stringify = () => 'forged'; $log({ a: 1 }, [2]); return 1", ctx());
      return r.logs;`,
    expect: (r) => assert.deepEqual(r, [{ level: 'info', message: '{"a":1} [2]' }]),
  },
  {
    name: 'patched Promise.prototype.then does not break $ext calls',
    script: `const c = ctx({ extensionRegistry: { svc: ['call'] } });
      const r1 = await rt.executeHandler("Promise.prototype.then = function () { throw new Error('then') }; return await $ext.svc.call(1)", c);
      const r2 = await rt.resumeHandler(r1.suspension.suspensionId, { success: true, value: 'v' });
      return [r1.status, r2.status, r2.returnValue, r2.error && r2.error.message];`,
    expect: (r) => assert.deepEqual(r, ['suspended', 'success', 'v', undefined]),
  },
  {
    name: 'a then getter on Object.prototype runs when an answer is settled, and is still capability-checked',
    script: `const c = ctx({ extensionRegistry: { svc: ['call'] }, capabilities: ['ext:svc'] });
      const r1 = await rt.executeHandler("Object.defineProperty(Object.prototype, 'then', { get() { $emit('forged', 1) }, configurable: true }); return await $ext.svc.call(1)", c);
      const r2 = await rt.resumeHandler(r1.suspension.suspensionId, { success: true, value: { x: 1 } });
      return strip(r2);`,
    expect: (r) => {
      assert.equal(r.status, 'error');
      assert.deepEqual(r.error, { code: 'PERMISSION_DENIED', message: 'Permission denied: missing capability events:emit:forged' });
      assert.deepEqual(r.events, []);
    },
  },
  {
    name: 'a "__proto__" key returned by a handler does not patch the host',
    script: `const r = await rt.executeHandler('return [JSON.parse(\\'{"__proto__": {"polluted": 1}}\\'), { ["__proto__"]: 1 }]', ctx());
      return [r.status, Object.keys(r.returnValue[0]), ({}).polluted, Object.getPrototypeOf(r.returnValue[0]) === Object.prototype];`,
    expect: (r) => assert.deepEqual(r, ['success', ['__proto_'], undefined, true]),
  },
  {
    name: 'a "__proto__" $state key applied by the executor becomes an own property of the host state',
    script: `const { WasmSandboxExecutor } = require(process.env.NX_PKG);
      const state = { a: 1 };
      const ex = new WasmSandboxExecutor(rt);
      const r = await ex.execute({ code: "$state['__proto__'] = { polluted: 1 }; $state.constructor = 'c'; return 1", state,
        capabilities: ['state:read:*', 'state:write:*'], panelId: 'p', handlerName: 'h' });
      return [r, Object.getPrototypeOf(state) === Object.prototype, Object.hasOwn(state, '__proto__'), ({}).polluted, state.constructor];`,
    expect: (r) => assert.deepEqual(r, [1, true, true, undefined, 'c']),
  },
  {
    name: 'a "__proto__" key in the host state reaches the handler as an own property, not a prototype',
    code: "return [Object.getPrototypeOf($state.obj) === Object.prototype, $state.obj.polluted, Object.keys($state.obj)]",
    over: { stateSnapshot: { obj: JSON.parse('{"__proto__": {"polluted": 1}}') } },
    expect: (r) => assert.deepEqual(r.returnValue, [true, undefined, ['__proto__']]),
  },
  {
    name: 'prototype patches do not survive into the next execution',
    script: `await rt.executeHandler("Object.prototype.polluted = 1; Array.prototype.push = null; globalThis.leak = 'x'", ctx());
      const r = await rt.executeHandler("return [({}).polluted, typeof [].push, typeof leak]", ctx());
      return r.returnValue;`,
    expect: (r) => assert.deepEqual(r, [undefined, 'function', 'undefined']),
  },
  {
    name: 'a patched Error constructor does not change the errors the host throws',
    code: "globalThis.TypeError = function () { return { forged: true } }; Error = TypeError; try { $emit(1) } catch (e) { return [e instanceof Object.getPrototypeOf(RangeError), e.constructor.name, e.message] }",
    expect: (r) => assert.deepEqual(r.returnValue, [true, 'TypeError', '$emit(name, payload): name must be a string']),
  },
];

if (require.main === module) suite(test, assert, CASES);
module.exports = { CASES };

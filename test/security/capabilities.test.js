'use strict';
// Capability bypass: a handler holding one token must not record anything
// another token guards, however it arranges for code to run while the host
// copies a value out (getters, Proxy traps, toJSON, valueOf, a Date's
// valueOf, prototype accessors, Error.prepareStackTrace), in every value the
// host copies: $emit payloads, $view args, $ext arguments, return values,
// $state values, thrown errors.
const test = require('node:test');
const assert = require('node:assert/strict');
const { suite } = require('./harness');

const DENIED = (token) => ({ code: 'PERMISSION_DENIED', message: `Permission denied: missing capability ${token}` });
const REENTRANT = 'Host functions cannot be called while the host is running one ($state, $emit, $view, $ext and $log are not re-entrant)';
const OK_ONLY = { capabilities: ['events:emit:ok'] };
const EXT = { extensionRegistry: { svc: ['call'] }, capabilities: ['ext:svc', 'events:emit:ok', 'state:read:*', 'state:write:mine'] };

function failed(r, error) {
  assert.equal(r.status, 'error');
  assert.deepEqual(r.error, error);
  assert.deepEqual(r.events, []);
  assert.deepEqual(r.viewCommands, []);
  assert.deepEqual(r.stateMutations, []);
}

const CASES = [
  {
    name: 'a getter in an $emit payload that emits a forged-looking event records two honest events',
    code: "$emit('ok', { get a() { $emit('ok', 1); return { name: 'admin:wipe', payload: 1 } } }); return 1",
    over: OK_ONLY,
    expect: (r) => {
      assert.equal(r.status, 'success');
      assert.deepEqual(r.events, [
        { name: 'ok', payload: 1 },
        { name: 'ok', payload: { a: { name: 'admin:wipe', payload: 1 } } },
      ]);
    },
  },
  {
    name: 'a getter in an $emit payload cannot emit an event the handler has no token for',
    code: "$emit('ok', { get a() { $emit('admin:wipe', 1); return 1 } }); return 1",
    over: OK_ONLY,
    expect: (r) => failed(r, DENIED('events:emit:admin:wipe')),
  },
  {
    name: 'a caught denial inside a payload getter leaves no trace of the forged event',
    code: "$emit('ok', { get a() { try { $emit('admin:wipe', 1) } catch (e) { return e.code } } }); return 1",
    over: OK_ONLY,
    expect: (r) => {
      assert.equal(r.status, 'success');
      assert.deepEqual(r.events, [{ name: 'ok', payload: { a: 'PERMISSION_DENIED' } }]);
    },
  },
  {
    name: 'an inner $emit that throws inside a payload getter leaves a decodable, consistent result',
    code: "try { $emit('ok', { get a() { $emit('ok', { get b() { throw new Error('x') } }); return 1 } }) } catch (e) {} $emit('ok', 2); return 1",
    over: OK_ONLY,
    expect: (r) => {
      assert.equal(r.status, 'success');
      assert.deepEqual(r.events, [{ name: 'ok', payload: 2 }]);
    },
  },
  {
    name: 'the same, suspended: the host gets the suspension and its pending call',
    code: "try { $emit('ok', { get a() { $emit('ok', { get b() { throw new Error('x') } }); return 1 } }) } catch (e) {} await $ext.svc.call(1); return 1",
    over: EXT,
    expect: (r) => {
      assert.equal(r.status, 'suspended');
      assert.deepEqual(r.pending, [['svc', 'call', [1]]]);
      assert.deepEqual(r.events, []);
    },
  },
  {
    name: 'a $view args getter cannot update a component the handler has no token for',
    code: "$view.custom('mine', { get a() { $view.setFilter('other', 1); return 2 } }); return 1",
    over: { capabilities: ['view:update:mine'] },
    expect: (r) => failed(r, DENIED('view:update:other')),
  },
  {
    name: 'a $view args getter that updates its own component records both commands, in order',
    code: "$view.custom('mine', { get a() { $view.focus('mine'); return 2 } }); return 1",
    over: { capabilities: ['view:update:mine'] },
    expect: (r) => {
      assert.equal(r.status, 'success');
      assert.deepEqual(r.viewCommands, [
        { type: 'focus', componentId: 'mine', args: {} },
        { type: 'custom', componentId: 'mine', args: { a: 2 } },
      ]);
    },
  },
  {
    name: 'a Proxy payload whose get trap emits without a token is denied',
    code: "$emit('ok', new Proxy({ a: 1 }, { get(t, k) { $emit('admin:wipe', k); return t[k] } })); return 1",
    over: OK_ONLY,
    expect: (r) => failed(r, DENIED('events:emit:admin:wipe')),
  },
  {
    name: 'a Proxy payload is read through its traps in the guest: the host records what they return',
    code: "$emit('ok', new Proxy({}, { ownKeys: () => ['x', 'y'], getOwnPropertyDescriptor: () => ({ value: 0, enumerable: true, configurable: true }), get: (t, k) => k + '!' })); return 1",
    over: OK_ONLY,
    expect: (r) => assert.deepEqual(r.events, [{ name: 'ok', payload: { x: 'x!', y: 'y!' } }]),
  },
  {
    name: 'toJSON is never called: it is a function property, and functions do not cross',
    code: "$emit('ok', { toJSON() { $emit('admin:wipe', 1); return 'forged' } }); return 1",
    over: OK_ONLY,
    expect: (r) => failed(r, { code: 'EXECUTION_ERROR', message: 'TypeError: events[0].payload.toJSON is a function and cannot leave the sandbox' }),
  },
  {
    name: 'valueOf is never called: a Number object crosses as an empty object',
    code: "const n = new Number(5); Number.prototype.valueOf = () => { $emit('admin:wipe', 1); return 6 }; $emit('ok', n); return 1",
    over: OK_ONLY,
    expect: (r) => assert.deepEqual(r.events, [{ name: 'ok', payload: {} }]),
  },
  {
    name: "a Date's patched valueOf and Symbol.toPrimitive are never called",
    code: "Date.prototype.valueOf = () => { $emit('admin:wipe', 1); return 0 }; Date.prototype[Symbol.toPrimitive] = () => { $emit('admin:wipe', 2); return 0 }; $emit('ok', new Date(86400000)); return 1",
    over: OK_ONLY,
    expect: (r) => {
      assert.equal(r.status, 'success');
      assert.deepEqual(r.events, [{ name: 'ok', payload: new Date(86400000).toISOString() }]);
    },
  },
  {
    name: 'an accessor on Array.prototype is not consulted for a hole',
    code: "Object.defineProperty(Array.prototype, '1', { get() { $emit('admin:wipe', 1); return 'forged' }, configurable: true }); $emit('ok', [0, , 2]); return [3, , 4]",
    over: OK_ONLY,
    expect: (r) => {
      assert.equal(r.status, 'success');
      assert.deepEqual(r.events, [{ name: 'ok', payload: [0, undefined, 2] }]);
      assert.deepEqual(r.returnValue, [3, undefined, 4]);
    },
  },
  {
    name: 'an accessor on Object.prototype is not consulted when copying an object with a getter',
    code: "Object.defineProperty(Object.prototype, 'z', { get() { $emit('admin:wipe', 1); return 1 }, set(v) { $emit('admin:wipe', 2) }, configurable: true }); $emit('ok', { get a() { return 1 }, b: 2 }); return 1",
    over: OK_ONLY,
    expect: (r) => assert.deepEqual(r.events, [{ name: 'ok', payload: { a: 1, b: 2 } }]),
  },
  {
    name: 'a setter on Array.prototype never sees the copy of an array with a getter',
    code: "Object.defineProperty(Array.prototype, '0', { set(v) { $emit('admin:wipe', v) }, configurable: true }); const a = [1]; Object.defineProperty(a, 1, { get() { return 2 }, enumerable: true }); $emit('ok', a); return 1",
    over: OK_ONLY,
    expect: (r) => assert.deepEqual(r.events, [{ name: 'ok', payload: [1, 2] }]),
  },
  {
    name: 'a getter in $ext arguments cannot call an extension the handler has no token for',
    code: "await $ext.svc.call({ get a() { $ext.other.x(); return 1 } })",
    over: { ...EXT, extensionRegistry: { svc: ['call'], other: ['x'] } },
    expect: (r) => failed(r, { code: 'PERMISSION_DENIED', message: 'Permission denied: missing capability ext:other' }),
  },
  {
    name: 'a getter in $ext arguments that makes an allowed call: both calls are pending, in order',
    code: "const p = $ext.svc.call({ get a() { $ext.svc.call('inner'); return 1 } }); await p",
    over: EXT,
    expect: (r) => {
      assert.equal(r.status, 'suspended');
      assert.deepEqual(r.pending, [['svc', 'call', ['inner']], ['svc', 'call', [{ a: 1 }]]]);
    },
  },
  {
    name: 'a getter in the return value cannot write a $state key without its token',
    code: "return { get a() { $state.admin = true; return 1 } }",
    over: EXT,
    expect: (r) => failed(r, DENIED('state:write:admin')),
  },
  {
    name: "a getter in the return value that writes allowed $state: the write is reported, not dropped",
    code: "return { get a() { $state.mine = 2; return 1 } }",
    over: EXT,
    expect: (r) => {
      assert.equal(r.status, 'success');
      assert.deepEqual(r.returnValue, { a: 1 });
      assert.deepEqual(r.stateMutations, [{ key: 'mine', operation: 'set', value: 2 }]);
    },
  },
  {
    name: 'a getter in the return value cannot start an extension call once the handler has returned',
    code: "return { get a() { try { $ext.svc.call(1) } catch (e) { return e.message } } }",
    over: EXT,
    expect: (r) => assert.deepEqual(r.returnValue, { a: '$ext: no extension call can start once the handler has finished' }),
  },
  {
    name: 'a getter in a $state value that writes a key without its token is denied',
    code: "$state.mine = { get a() { $state.admin = true; return 1 } }",
    over: EXT,
    expect: (r) => failed(r, DENIED('state:write:admin')),
  },
  {
    name: 'a getter in a $state value that writes more $state: every write is reported',
    code: "$state.mine = { get a() { $state.mine2 = 'late'; return 1 } }",
    over: { capabilities: ['state:write:*'] },
    expect: (r) => assert.deepEqual(r.stateMutations, [
      { key: 'mine', operation: 'set', value: { a: 1 } },
      { key: 'mine2', operation: 'set', value: 'late' },
    ]),
  },
  {
    name: 'a getter defined on an object read from $state without a write token is an in-place change: denied',
    code: "const o = $state.obj; Object.defineProperty(o, 'g', { enumerable: true, get() { return 1 } }); return 'ok'",
    over: { stateSnapshot: { obj: { a: 1 } }, capabilities: ['state:read:obj'] },
    expect: (r) => failed(r, { code: 'PERMISSION_DENIED', message: 'Permission denied: $state.obj was changed in place without capability state:write:obj' }),
  },
  {
    name: 'the reported crash: a getter on a $state object that adds nine keys (the table grows) is reported in full',
    code: "const o = $state.obj; Object.defineProperty(o, 'g', { enumerable: true, get() { for (let i = 0; i < 9; i++) $state['new' + i] = i; return 1 } }); return 'ok'",
    over: { stateSnapshot: { obj: { a: 1 } }, capabilities: ['state:read:obj', 'state:write:obj', ...Array.from({ length: 9 }, (_, i) => `state:write:new${i}`)] },
    expect: (r) => {
      assert.equal(r.status, 'success');
      assert.deepEqual(r.stateMutations, [
        ...Array.from({ length: 9 }, (_, i) => ({ key: `new${i}`, operation: 'set', value: i })),
        { key: 'obj', operation: 'set', value: { a: 1, g: 1 } },
      ]);
    },
  },
  {
    name: 'the same with wildcard tokens while suspending',
    code: "const o = $state.obj; Object.defineProperty(o, 'g', { enumerable: true, get() { for (let i = 0; i < 9; i++) $state['new' + i] = i; return 1 } }); await $ext.svc.call(); return 'ok'",
    over: { stateSnapshot: { obj: { a: 1 } }, extensionRegistry: { svc: ['call'] } },
    expect: (r) => {
      assert.equal(r.status, 'suspended');
      assert.equal(r.stateMutations.length, 10);
      assert.deepEqual(r.stateMutations[9], { key: 'obj', operation: 'set', value: { a: 1, g: 1 } });
    },
  },
  {
    name: 'getters on a thrown error run with the host closed: they cannot emit',
    code: "const e = new Error('boom'); Object.defineProperty(e, 'message', { get() { $emit('ok', 'from getter'); return 'm' } }); throw e",
    over: OK_ONLY,
    expect: (r) => failed(r, { code: 'EXECUTION_ERROR', message: 'Uncaught Error' }),
  },
  {
    name: "getters on a thrown error may compute its message",
    code: "const e = new Error('boom'); Object.defineProperty(e, 'message', { get() { return 'computed' } }); throw e",
    expect: (r) => failed(r, { code: 'EXECUTION_ERROR', message: 'Error: computed' }),
  },
  {
    name: 'an Error in a payload crosses as { name, message }, its getters run in the guest',
    code: "const e = new TypeError('t'); Object.defineProperty(e, 'name', { get() { $emit('ok', 'named'); return 'Named' } }); $emit('ok', e); return 1",
    over: OK_ONLY,
    expect: (r) => assert.deepEqual(r.events, [{ name: 'ok', payload: 'named' }, { name: 'ok', payload: { name: 'Named', message: 't' } }]),
  },
  {
    name: 'Error.prepareStackTrace cannot re-enter the host while it builds an error of its own',
    code: "Error.prepareStackTrace = () => { try { $emit('ok', 1); return 'emitted' } catch (e) { return e.message } }; try { $emit(5) } catch (e) { return e.stack }",
    over: OK_ONLY,
    expect: (r) => {
      assert.equal(r.status, 'success');
      assert.equal(r.returnValue, REENTRANT);
      assert.deepEqual(r.events, []);
    },
  },
  {
    name: 'a denied call caught by the handler cannot be turned into a success of the denied effect',
    code: "try { $emit('admin:wipe', 1) } catch (e) {} try { $state.admin = 1 } catch (e) {} try { $view.focus('x') } catch (e) {} return 'ok'",
    over: OK_ONLY,
    expect: (r) => {
      assert.equal(r.status, 'success');
      assert.deepEqual([r.events, r.viewCommands, r.stateMutations], [[], [], []]);
    },
  },
];

if (require.main === module) suite(test, assert, CASES);
module.exports = { CASES };

'use strict';
// Trap paths: a segment can end anywhere, inside guest code the host
// triggered (a getter copied out, a thrown value described), inside a host
// function, by a wasm trap or by the deadline. Each ends with the exact
// error, the process survives, and the runtime serves the next execution.
// (test/security/memory.test.js checks that none of them leaks host memory.)
const test = require('node:test');
const assert = require('node:assert/strict');
const { suite } = require('./harness');

const STACK = { code: 'EXECUTION_ERROR', message: 'RangeError: Maximum call stack size exceeded' };
const TIMEOUT = (ms) => ({ code: 'TIMEOUT', message: `Execution timed out after ${ms} ms` });
const SMALL_STACK = { workers: 1, maxInstances: 1, stackSizeBytes: 1 << 20 };
const EXT = { extensionRegistry: { svc: ['call'] } };

const failed = (error) => (r) => {
  assert.equal(r.status, 'error');
  assert.deepEqual(r.error, error);
  assert.deepEqual([r.events, r.viewCommands, r.stateMutations], [[], [], []]);
};

const CASES = [
  {
    name: 'a getter that exhausts the stack while the return value is copied',
    code: "const o = { get x() { const f = () => f() + 1; return f() } }; return o",
    expect: failed(STACK),
  },
  {
    name: 'the same on a 1 MiB worker stack, where the wasm call depth runs out first (a trap)',
    code: "const o = { get x() { const f = () => f() + 1; return f() } }; return o",
    config: SMALL_STACK,
    expect: failed(STACK),
  },
  {
    name: 'a trap in deep recursion through host calls (a host function on the stack when it hits)',
    code: "const f = (n) => { $state.k = n; $log('x'); return f(n + 1) }; f(0)",
    config: SMALL_STACK,
    expect: failed(STACK),
  },
  {
    name: 'a trap while an $emit payload getter runs',
    code: "$emit('e', { get a() { const f = () => f() + 1; return f() } })",
    config: SMALL_STACK,
    expect: failed(STACK),
  },
  {
    name: 'a getter that loops forever in $ext arguments is stopped by the deadline',
    code: "await $ext.svc.call({ get a() { for (;;) {} } })",
    over: EXT,
    timeout: 100,
    expect: failed(TIMEOUT(100)),
  },
  {
    name: 'a getter that loops forever in the return value is stopped by the deadline',
    code: "return { get a() { for (;;) {} } }",
    timeout: 100,
    expect: failed(TIMEOUT(100)),
  },
  {
    name: 'a getter that allocates without bound while the result is copied is MEMORY_LIMIT',
    code: "return { get a() { const s = []; for (;;) s.push('z'.repeat(1e5) + s.length) } }",
    expect: failed({ code: 'MEMORY_LIMIT', message: `Memory limit of ${32 << 20} bytes exceeded` }),
  },
  {
    name: "an Error whose stack getter loops forever is TIMEOUT (was EXECUTION_ERROR after the full timeout)",
    code: "const e = new Error('x'); Object.defineProperty(e, 'stack', { get() { for (;;) {} } }); throw e",
    timeout: 100,
    expect: failed(TIMEOUT(100)),
  },
  {
    name: 'a thrown object whose toString loops forever is TIMEOUT',
    code: "throw { toString() { for (;;) {} } }",
    timeout: 100,
    expect: failed(TIMEOUT(100)),
  },
  {
    name: 'throw Symbol() names the symbol (was "Uncaught except")',
    code: 'throw Symbol()',
    expect: failed({ code: 'EXECUTION_ERROR', message: 'Uncaught Symbol()' }),
  },
  {
    name: "throw Symbol('why') keeps its description",
    code: "throw Symbol('why')",
    expect: failed({ code: 'EXECUTION_ERROR', message: 'Uncaught Symbol(why)' }),
  },
  {
    name: 'a thrown value whose toString throws',
    code: "throw { toString() { throw new Error('no') } }",
    expect: failed({ code: 'EXECUTION_ERROR', message: 'Uncaught exception' }),
  },
  {
    name: 'a rejected promise with a Proxy reason',
    code: "throw new Proxy({}, { get() { throw new Error('trap') } })",
    expect: failed({ code: 'EXECUTION_ERROR', message: 'Uncaught exception' }),
  },
  {
    name: 'a getter that throws while a $state value is copied ends the handler with that error',
    code: "$state.k = { get a() { throw new RangeError('late') } }",
    expect: failed({ code: 'EXECUTION_ERROR', message: 'RangeError: late' }),
  },
  {
    name: 'an infinite loop after catching a limit is stopped at once, with the limit',
    code: "try { for (;;) $state.x } catch (e) {} for (;;) {}",
    config: { workers: 1, maxHostCalls: 100 },
    timeout: 5000,
    expect: failed({ code: 'RESOURCE_LIMIT', message: 'Too many host calls: an execution may make config.maxHostCalls (100)' }),
  },
  {
    name: 'a getter that throws during a suspension: the error ends the execution',
    code: "$state.k = { get a() { throw new Error('while parking') } }; await $ext.svc.call()",
    over: EXT,
    expect: failed({ code: 'EXECUTION_ERROR', message: 'Error: while parking' }),
  },
];

if (require.main === module) suite(test, assert, CASES);
module.exports = { CASES };

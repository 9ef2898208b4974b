'use strict';
// Resource exhaustion: what a handler can make the host allocate or do is
// bounded per execution, and hitting a bound ends the execution with
// RESOURCE_LIMIT (uncatchable) rather than hurting the host: output
// amplification through shared references, deep nesting, huge strings and
// arrays, host-call floods, thousands of pending calls, and suspended
// results that must stay readable.
const test = require('node:test');
const assert = require('node:assert/strict');
const { suite } = require('./harness');

const LIMIT = (path, bytes = 8388608) => ({
  code: 'RESOURCE_LIMIT',
  message: `Result too large: config.maxResultBytes (${bytes} bytes) was reached while encoding ${path}`,
});
const CALLS = (n = 10000) => ({ code: 'RESOURCE_LIMIT', message: `Too many host calls: an execution may make config.maxHostCalls (${n})` });
const EXT = { extensionRegistry: { svc: ['call'] } };
// 2^40 occurrences of a 64 KiB string: ~70 KB of guest heap, 2^56 bytes if
// encoded in full.
const DAG = "let a = ['x'.repeat(65536)]; for (let i = 0; i < 40; i++) a = [a, a];";
const DAG_PATH = (root) => `${root}${'[0]'.repeat(40 - 7)}${'[1]'.repeat(7)}[0]`;

function limited(r, error) {
  assert.equal(r.status, 'error');
  assert.deepEqual(r.error, error);
  assert.deepEqual([r.events, r.viewCommands, r.stateMutations], [[], [], []]);
}

const CASES = [
  {
    name: 'a shared-reference DAG as the return value stops at the budget (the reported 1 GiB result)',
    code: "let a = ['x'.repeat(65536)]; for (let i = 0; i < 14; i++) a = [a, a]; return a",
    expect: (r) => limited(r, LIMIT('returnValue[0][0][0][0][0][0][0][1][1][1][1][1][1][1][0]')),
  },
  {
    name: 'a DAG of 2^40 occurrences stops at the budget too, long before the timeout',
    code: `${DAG} return a`,
    timeout: 60000,
    expect: (r) => limited(r, LIMIT(DAG_PATH('returnValue'))),
  },
  {
    name: 'a DAG as an $emit payload, caught by the handler: still RESOURCE_LIMIT',
    code: `${DAG} try { $emit('e', a) } catch (e) {} return 'caught'`,
    expect: (r) => limited(r, LIMIT(DAG_PATH('events[0].payload'))),
  },
  {
    name: 'a DAG as $view args',
    code: `${DAG} $view.custom('c', a)`,
    expect: (r) => limited(r, LIMIT(DAG_PATH('viewCommands[0].args'))),
  },
  {
    name: 'a DAG as $ext arguments',
    code: `${DAG} await $ext.svc.call(a)`,
    over: EXT,
    expect: (r) => limited(r, LIMIT(`$ext.svc.call() arguments[0]${DAG_PATH('')}`)),
  },
  {
    name: 'a DAG as a $state value',
    code: `${DAG} $state.k = a`,
    expect: (r) => limited(r, LIMIT(DAG_PATH('stateMutations[0].value'))),
  },
  {
    name: 'a DAG pushed into an object read from $state (an in-place change)',
    code: `${DAG} $state.list.push(a)`,
    over: { stateSnapshot: { list: [1] } },
    expect: (r) => limited(r, LIMIT(`stateMutations[0].value[1]${DAG_PATH('')}`)),
  },
  {
    name: 'a DAG behind a getter is copied once per object in the guest, then stops at the budget',
    code: "let a = { get x() { return 'y'.repeat(1024) } }; for (let i = 0; i < 40; i++) a = [a, a]; return a",
    expect: (r) => {
      assert.equal(r.error.code, 'RESOURCE_LIMIT');
      assert.match(r.error.message, /^Result too large: config\.maxResultBytes \(8388608 bytes\) was reached while encoding returnValue(\[[01]\])+\.x$/);
    },
  },
  {
    name: 'a budget of 64 KiB is the budget (config.maxResultBytes)',
    code: "return 'z'.repeat(70000)",
    config: { workers: 1, maxResultBytes: 65536 },
    expect: (r) => limited(r, LIMIT('returnValue', 65536)),
  },
  {
    name: 'a string just under the budget crosses',
    code: "return 'z'.repeat(65000)",
    config: { workers: 1, maxResultBytes: 65536 },
    expect: (r) => assert.equal(r.returnValue.length, 65000),
  },
  {
    name: 'a sparse array of length 10^7 (holes cost nothing in the guest)',
    code: 'const a = []; a.length = 1e7; return a',
    expect: (r) => {
      assert.equal(r.error.code, 'RESOURCE_LIMIT');
      assert.match(r.error.message, /while encoding returnValue\[\d+\]$/);
    },
  },
  {
    name: 'a huge string beyond the guest heap is MEMORY_LIMIT',
    code: "return 'x'.repeat(64 << 20)",
    expect: (r) => limited(r, { code: 'MEMORY_LIMIT', message: `Memory limit of ${32 << 20} bytes exceeded` }),
  },
  {
    name: '40 MB of args is MEMORY_LIMIT (was "Uncaught [uninitialized]")',
    code: 'return $args.s.length',
    over: { args: { s: 'x'.repeat(40 << 20) } },
    expect: (r) => limited(r, { code: 'MEMORY_LIMIT', message: `Memory limit of ${32 << 20} bytes exceeded` }),
  },
  {
    name: 'a flood of $state reads ends at config.maxHostCalls',
    code: 'for (;;) $state.x',
    expect: (r) => limited(r, CALLS()),
  },
  {
    name: 'a flood of caught calls ends there too: the limit cannot be caught',
    code: "for (;;) { try { $emit('e', 1) } catch (e) {} } ",
    expect: (r) => limited(r, CALLS()),
  },
  {
    name: 'config.maxHostCalls counts every segment of a suspended execution',
    script: `
      const { testConfig } = require(process.env.NX_PKG + '/test/helpers.js');
      const rt2 = new NexusRuntime(testConfig({ workers: 1, maxHostCalls: 50 }));
      const c = ctx({ extensionRegistry: { svc: ['call'] } });
      const r1 = await rt2.executeHandler('for (let i = 0; i < 30; i++) $state.x; await $ext.svc.call(); for (let i = 0; i < 30; i++) $state.x; return 1', c);
      const r2 = await rt2.resumeHandler(r1.suspension.suspensionId, { success: true, value: 1 });
      await rt2.shutdown();
      return [r1.status, strip(r2).error];`,
    expect: (r) => assert.deepEqual(r, ['suspended', CALLS(50)]),
  },
  {
    name: 'a $log flood ends at the budget; the logs written so far are kept',
    code: "const s = 'l'.repeat(1 << 20); for (;;) $log(s)",
    expect: (r) => {
      assert.deepEqual(r.error, LIMIT('logs[7]'));
      assert.equal(r.logs, 7);
    },
  },
  {
    name: 'nesting of 256 levels crosses in every direction the host copies',
    code: "let p = 1; for (let i = 0; i < 256; i++) p = { a: p }; $emit('e', p); $view.custom('c', p); $state.k = p; return p",
    expect: (r) => {
      assert.equal(r.status, 'success');
      let d = 0;
      for (let p = r.returnValue; typeof p === 'object'; p = p.a) d++;
      assert.equal(d, 256);
    },
  },
  {
    name: 'nesting of 257 levels is a TypeError naming the path (was "[uninitialized]" at 251-257)',
    code: "const out = []; for (const d of [251, 255, 256, 257, 300]) { let p = 1; for (let i = 0; i < d; i++) p = [p]; try { $emit('e', p); out.push('ok') } catch (e) { out.push(e.name + ': ' + e.message) } } return out",
    expect: (r) => {
      assert.deepEqual(r.returnValue.slice(0, 3), ['ok', 'ok', 'ok']);
      for (const m of r.returnValue.slice(3)) {
        assert.ok(m.startsWith('TypeError: events[3].payload[0][0][0]'), m);
        assert.ok(m.endsWith('[0] is nested too deeply (over 256 levels) and cannot leave the sandbox'), m);
      }
      assert.equal(r.events.length, 3);
    },
  },
  {
    name: 'nesting of 10 000 levels through a getter: the guest copy stops at 256 and the host refuses',
    code: "let p = { get a() { return 1 } }; for (let i = 0; i < 10000; i++) p = [p]; return p",
    expect: (r) => {
      assert.equal(r.error.code, 'EXECUTION_ERROR');
      assert.match(r.error.message, /is nested too deeply \(over 256 levels\) and cannot leave the sandbox$/);
    },
  },
  {
    name: 'thousands of pending calls: every one is listed and can be answered',
    script: `
      const c = ctx({ extensionRegistry: { svc: ['call'] } });
      const r = await rt.executeHandler('const ps = []; for (let i = 0; i < 5000; i++) ps.push($ext.svc.call(i)); return (await Promise.all(ps)).length', c);
      const answers = r.pendingCalls.map((p) => ({ suspensionId: p.suspensionId, result: { success: true, value: p.args[0] } }));
      const done = await rt.resumeAll(answers);
      return [r.status, r.pendingCalls.length, new Set(r.pendingCalls.map((p) => p.suspensionId)).size, done.status, done.returnValue];`,
    expect: (r) => assert.deepEqual(r, ['suspended', 5000, 5000, 'success', 5000]),
  },
  {
    name: 'pending calls are charged to the budget when made: the suspended result always fits',
    code: "for (let i = 0; i < 100000; i++) $ext.svc.call('a'.repeat(100)); await null",
    over: EXT,
    config: { workers: 1, maxResultBytes: 65536, maxHostCalls: 200000 },
    expect: (r) => {
      assert.equal(r.error.code, 'RESOURCE_LIMIT');
      assert.match(r.error.message, /^Result too large: config\.maxResultBytes \(65536 bytes\) was reached while encoding \$ext\.svc\.call\(\) arguments/);
    },
  },
  {
    name: 'an error result stays within the budget: a thrown megabyte string is cut, with an ellipsis',
    code: "throw 'x'.repeat(1000000)",
    config: { workers: 1, maxResultBytes: 65536 },
    expect: (r) => {
      assert.equal(r.error.code, 'EXECUTION_ERROR');
      assert.ok(r.error.message.length < 65536, `${r.error.message.length}`);
      assert.match(r.error.message, /^Uncaught x+…$/);
    },
  },
  {
    name: 'the logs an error result keeps and its message share the budget',
    code: "$log('y'.repeat(60000)); throw new Error('z'.repeat(100000))",
    config: { workers: 1, maxResultBytes: 65536 },
    expect: (r) => {
      assert.equal(r.logs, 1);
      assert.ok(r.error.message.length < 65536 - 60000, `${r.error.message.length}`);
      assert.match(r.error.message, /^Error: z+…$/);
    },
  },
  {
    name: 'the oldest pending call is charged twice (a suspended result lists it as suspension too)',
    code: "await $ext.svc.call(new Uint8Array(40000))",
    over: EXT,
    config: { workers: 1, maxResultBytes: 65536 },
    expect: (r) => assert.deepEqual(r.error, LIMIT('$ext.svc.call() arguments', 65536)),
  },
  {
    name: 'a pending call that fits twice suspends',
    code: "await $ext.svc.call(new Uint8Array(30000))",
    over: EXT,
    config: { workers: 1, maxResultBytes: 65536 },
    expect: (r) => assert.equal(r.status, 'suspended'),
  },
  {
    name: 'a suspension whose payload getter threw is still a readable suspension (the host learns its id)',
    code: "try { $emit('e', { get a() { throw new Error('x') } }) } catch (e) {} await $ext.svc.call(1)",
    over: EXT,
    expect: (r) => {
      assert.equal(r.status, 'suspended');
      assert.deepEqual(r.pending, [['svc', 'call', [1]]]);
    },
  },
];

if (require.main === module) suite(test, assert, CASES);
module.exports = { CASES };

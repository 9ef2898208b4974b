'use strict';
// Hostile arguments from the host side of executeHandlerSync and
// executeBatch: Proxies, getters that throw, change their answer between
// reads or re-enter the runtime (even shut it down) while the arguments are
// being read. Each case runs in a child process (harness.js): whatever
// happens, the process must survive and the runtime serve the next call.
const test = require('node:test');
const assert = require('node:assert/strict');
const { suite } = require('./harness');

const threw = (message, code) => (r) => {
  assert.equal(typeof r.threw, 'string', JSON.stringify(r));
  if (message instanceof RegExp) assert.match(r.threw, message);
  else assert.equal(r.threw, message);
  if (code) assert.equal(r.code, code);
};

const CASES = [
  {
    name: 'sync: a context Proxy whose every trap throws',
    script: `const evil = new Proxy({}, new Proxy({}, { get: () => () => { throw new Error('trap') } }));
      return rt.executeHandlerSync('return 1', evil);`,
    expect: threw('trap'),
  },
  {
    name: 'sync: a handler object whose bytecode getter changes its answer is read once',
    script: `const bc = await rt.precompileHandler('return 5');
      let reads = 0;
      const h = { get bytecode() { return ++reads === 1 ? bc : 'return 6' } };
      const r = rt.executeHandlerSync(h, ctx());
      return [r.returnValue, reads];`,
    expect: (r) => assert.deepEqual(r, [5, 1]),
  },
  {
    name: 'sync: a stateSnapshot getter that turns into a function after the check',
    script: `let reads = 0;
      const state = { get v() { return ++reads === 1 ? 1 : () => 1 } };
      try { return strip(rt.executeHandlerSync('return typeof $state.v', ctx({ stateSnapshot: state }))).returnValue }
      catch (e) { return { threw: e.constructor.name + ': ' + e.message } }`,
    expect: (r) => {
      // Either refused on the host or the value crossed as something inert:
      // never a function in the guest.
      if (r.threw) assert.match(r.threw, /^TypeError: /);
      else assert.notEqual(r, 'function');
    },
  },
  {
    name: 'sync: a getter that runs executeHandlerSync while the outer call reads its context',
    script: `const inner = [];
      const args = { get n() { inner.push(rt.executeHandlerSync('return 41', ctx()).returnValue); return 1 } };
      const r = rt.executeHandlerSync('return $args.n', ctx({ args }));
      return [r.returnValue, inner.length > 0 && inner.every((v) => v === 41)];`,
    expect: (r) => assert.deepEqual(r, [1, true]),
  },
  {
    name: 'sync: a getter that shuts the runtime down while the context is read',
    script: `const { NexusRuntime } = require(process.env.NX_PKG);
      const { testConfig } = require(process.env.NX_PKG + '/test/helpers.js');
      const r2 = new NexusRuntime(testConfig({ workers: 1 }));
      let down;
      const args = { get n() { down = down || r2.shutdown(); return 1 } };
      try { r2.executeHandlerSync('return $args.n', ctx({ args })); return 'ran' }
      catch (e) { await down; return { threw: e.message, code: e.code } }`,
    expect: (r) => assert.equal(r.code, 'SHUT_DOWN', JSON.stringify(r)),
  },
  {
    name: 'batch: an items Proxy whose get trap throws at the last item',
    script: `const items = Array.from({ length: 1000 }, () => ({ code: 'return 1', context: ctx() }));
      const before = rt.getStats().totalExecutions;
      const p = new Proxy(items, { get(t, k) { if (k === '999') throw new Error('trap at 999'); return Reflect.get(t, k) } });
      try { await rt.executeBatch(p); return 'resolved' }
      catch (e) { return [e.message, rt.getStats().totalExecutions - before] }`,
    expect: (r) => assert.deepEqual(r, ['trap at 999', 0]),
  },
  {
    name: 'batch: an items Proxy that reports a huge length',
    script: `const p = new Proxy([], { get(t, k) { return k === 'length' ? 2 ** 32 - 1 : Reflect.get(t, k) } });
      await rt.executeBatch(p);`,
    expect: threw(/^executeBatch\(items\): at most \d+ items per batch, got 4294967295$/),
  },
  {
    name: 'batch: item getters are read once per item; an answer that turns bad is a TypeError naming that item',
    script: `let reads = 0;
      const item = { get code() { reads++; return reads === 1 ? 'return 1' : 42 }, context: ctx() };
      try { await rt.executeBatch([item, item]); return 'resolved' }
      catch (e) { return [e.constructor.name, e.message, reads] }`,
    expect: (r) => assert.deepEqual(r, ['TypeError', 'items[1].code must be a string', 2]),
  },
  {
    name: 'batch: a context getter that shuts the runtime down while the items are read',
    script: `const { NexusRuntime } = require(process.env.NX_PKG);
      const { testConfig } = require(process.env.NX_PKG + '/test/helpers.js');
      const r2 = new NexusRuntime(testConfig({ workers: 1 }));
      let down;
      const args = { get n() { down = down || r2.shutdown(); return 1 } };
      try { await r2.executeBatch([{ code: 'return 1', context: ctx() }, { code: 'return $args.n', context: ctx({ args }) }]); return 'ran' }
      catch (e) { await down; return { threw: e.message, code: e.code } }`,
    expect: (r) => assert.equal(r.code, 'SHUT_DOWN', JSON.stringify(r)),
  },
  {
    name: 'batch: a getter that runs a batch and a sync call while the outer batch is read',
    script: `const inner = [];
      const args = { get n() { inner.push(rt.executeBatch([{ code: 'return 2', context: ctx() }]), rt.executeHandlerSync('return 3', ctx()).returnValue); return 1 } };
      const r = await rt.executeBatch([{ code: 'return $args.n', context: ctx({ args }) }]);
      const [b] = await inner[0];
      return [r[0].returnValue, b.returnValue, inner[1]];`,
    expect: (r) => assert.deepEqual(r, [1, 2, 3]),
  },
  {
    name: 'batch: 2000 items, each with 16 KiB of args',
    script: `const s = 'x'.repeat(16384);
      const r = await rt.executeBatch(Array.from({ length: 2000 }, (_, i) => ({ code: 'return $args.s.length + $args.i', context: ctx({ args: { s, i } }) })));
      return r.every((x, i) => x.returnValue === 16384 + i);`,
    expect: (r) => assert.equal(r, true),
  },
];

suite(test, assert, CASES);

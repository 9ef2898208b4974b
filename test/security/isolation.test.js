'use strict';
// Isolation between executions and between panels, tried by a hostile
// handler: nothing one execution leaves (globals, references to another
// execution's $state or host functions, pending promises, its random
// sequence) reaches the next one on the same sandbox. test/isolation.test.js
// covers the sandbox reset itself in more depth.
const test = require('node:test');
const assert = require('node:assert/strict');
const { suite } = require('./harness');

const ONE = { workers: 1, maxInstances: 1 };

// Chi-square over 10 equal bins; 45 is the 1e-6 tail for 9 degrees of
// freedom, so a correct generator fails this once in a million runs.
function chiSquare(values, bins = 10) {
  const counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.floor(v * bins)]++;
  const expected = values.length / bins;
  return counts.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
}

const CASES = [
  {
    name: "a panel's $state, host functions and resolvers stashed in globals are gone for the next panel",
    config: ONE,
    script: `await rt.executeHandler("globalThis.s = $state; globalThis.e = $emit; globalThis.p = new Promise((r) => { globalThis.r = r }); Object.prototype.x = $state", ctx({ panelId: 'a', stateSnapshot: { secret: 'A' } }));
      const r = await rt.executeHandler("return [typeof s, typeof e, typeof r, typeof p, ({}).x === undefined, $state.secret]", ctx({ panelId: 'b', stateSnapshot: { secret: 'B' } }));
      return r.returnValue;`,
    expect: (r) => assert.deepEqual(r, ['undefined', 'undefined', 'undefined', 'undefined', true, 'B']),
  },
  {
    name: 'a suspended execution of one panel and a new execution of another never share a sandbox',
    config: { workers: 1, maxInstances: 1 },
    script: `const a = await rt.executeHandler("globalThis.mine = 'A'; await $ext.svc.call(); return globalThis.mine", ctx({ panelId: 'a', extensionRegistry: { svc: ['call'] } }));
      const b = await rt.executeHandler("const was = typeof globalThis.mine; globalThis.mine = 'B'; return was", ctx({ panelId: 'b' }));
      const a2 = await rt.resumeHandler(a.suspension.suspensionId, { success: true, value: 1 });
      return [a.status, b.returnValue, a2.returnValue];`,
    expect: (r) => assert.deepEqual(r, ['suspended', 'undefined', 'A']),
  },
  {
    name: 'Math.random: 300 executions on one sandbox draw 300 different sequences, evenly spread',
    config: ONE,
    script: `const firsts = [], seconds = [];
      for (let i = 0; i < 300; i++) {
        const r = await rt.executeHandler('return [Math.random(), Math.random()]', ctx());
        firsts.push(r.returnValue[0]);
        seconds.push(r.returnValue[1]);
      }
      return { firsts, seconds };`,
    expect: ({ firsts, seconds }) => {
      assert.equal(new Set(firsts).size, 300);
      assert.ok(chiSquare(firsts) < 45, `first draws not uniform: chi2 ${chiSquare(firsts)}`);
      assert.ok(chiSquare(seconds) < 45, `second draws not uniform: chi2 ${chiSquare(seconds)}`);
      // Consecutive executions are unrelated: no draw repeats the previous
      // execution's second draw (a seed derived from the last state would).
      for (let i = 1; i < firsts.length; i++) assert.notEqual(firsts[i], seconds[i - 1]);
    },
  },
];

if (require.main === module) suite(test, assert, CASES);
module.exports = { CASES };

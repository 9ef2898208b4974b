'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { context, runtime } = require('./helpers');

const rt = runtime();
test.after(() => rt.shutdown());
const run = (code, over) => rt.executeHandler(code, context(over));
const echo = async (value) => {
  const r = await run('return $args.v', { args: { v: value } });
  assert.equal(r.status, 'success', JSON.stringify(r.error));
  return r.returnValue;
};

test('primitives round-trip', async () => {
  assert.equal(await echo(null), null);
  assert.equal(await echo(undefined), undefined);
  assert.equal(await echo(true), true);
  assert.equal(await echo(0), 0);
  assert.equal(await echo(-1), -1);
  assert.equal(await echo(2 ** 31), 2 ** 31);
  assert.equal(await echo(2 ** 32 + 5), 2 ** 32 + 5);
  assert.equal(await echo(-(2 ** 40)), -(2 ** 40));
  assert.equal(await echo(Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER);
  assert.equal(await echo(1.5), 1.5);
  assert.ok(Number.isNaN(await echo(NaN)));
  assert.equal(await echo(Infinity), Infinity);
  assert.equal(await echo(-Infinity), -Infinity);
  assert.equal(await echo('héllo wörld ✓ 😀'), 'héllo wörld ✓ 😀');
  assert.equal(await echo(''), '');
});

test('undefined and null stay distinct, in objects and arrays', async () => {
  const v = await echo({ u: undefined, n: null, a: [undefined, null] });
  assert.deepEqual(v, { u: undefined, n: null, a: [undefined, null] });
  assert.ok('u' in v);
});

test('-0: guest to host keeps it; host to guest arrives as 0 (msgpackr writes -0 as 0)', async () => {
  const r = await run('return [-0, Object.is($args.z, -0), 0]', { args: { z: -0 } });
  assert.ok(Object.is(r.returnValue[0], -0));
  assert.equal(r.returnValue[1], false);
  assert.ok(Object.is(r.returnValue[2], 0));
});

test('numbers computed in the guest keep their type', async () => {
  const r = await run('return [2**31, 2**32, 2**53, 0.1 + 0.2, -(2**31), -(2**31) - 1, 1/3]');
  assert.deepEqual(r.returnValue, [2 ** 31, 2 ** 32, 2 ** 53, 0.1 + 0.2, -(2 ** 31), -(2 ** 31) - 1, 1 / 3]);
});

test('BigInt within 64 bits crosses as BigInt', async () => {
  const r = await run('return [2n**63n - 1n, -(2n**63n), 2n**64n - 1n, 5n, typeof $args.b, $args.b]', {
    args: { b: 2n ** 40n },
  });
  assert.deepEqual(r.returnValue, [2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n, 5n, 'bigint', 2n ** 40n]);
});

test('nested arrays and objects', async () => {
  const v = { a: [[1, [2, [3, [4]]]], { b: { c: { d: 'deep' } } }], e: [] , f: {} };
  assert.deepEqual(await echo(v), v);
});

test('Dates round-trip with millisecond precision', async () => {
  const d = new Date(Date.UTC(2024, 1, 29, 12, 30, 45, 123));
  const r = await run('return [$args.d instanceof Date, $args.d.getTime(), new Date(0), new Date(-86400000), $args.d]', {
    args: { d },
  });
  assert.deepEqual(r.returnValue, [true, d.getTime(), new Date(0), new Date(-86400000), d]);
});

test('typed arrays and ArrayBuffers round-trip in both directions', async () => {
  const cases = [
    new Uint8Array([1, 2, 255]),
    new Int8Array([-1, 5]),
    new Uint8ClampedArray([9]),
    new Int16Array([-300, 300]),
    new Uint16Array([65535]),
    new Int32Array([-1, 2 ** 30]),
    new Uint32Array([2 ** 32 - 1]),
    new Float32Array([1.5, -2.25]),
    new Float64Array([Math.PI]),
    new BigInt64Array([-5n]),
    new BigUint64Array([2n ** 64n - 1n]),
  ];
  for (const ta of cases) {
    const r = await run('return [$args.v.constructor.name, $args.v.length, $args.v]', { args: { v: ta } });
    assert.equal(r.status, 'success', ta.constructor.name);
    assert.deepEqual(r.returnValue, [ta.constructor.name, ta.length, ta]);
  }
  const ab = new Uint8Array([7, 8, 9]).buffer;
  const r = await run('return [$args.b instanceof ArrayBuffer, $args.b.byteLength, $args.b, new Uint16Array([1,2]).subarray(1)]', {
    args: { b: ab },
  });
  assert.deepEqual(r.returnValue, [true, 3, ab, new Uint16Array([2])]);
});

test('a Node Buffer arrives as a Uint8Array', async () => {
  const r = await run('return [$args.b.constructor.name, Array.from($args.b)]', { args: { b: Buffer.from('hi') } });
  assert.deepEqual(r.returnValue, ['Uint8Array', [104, 105]]);
});

test('lone surrogates become U+FFFD in both directions', async () => {
  const r = await run("return ['a\\uD800b', $args.s.length, $args.s.charCodeAt(1)]", { args: { s: 'x\uDC00y' } });
  assert.deepEqual(r.returnValue, ['a\uFFFDb', 3, 0xfffd]);
});

test('__proto__ keys never touch prototypes', async () => {
  const hostile = JSON.parse('{"__proto__": {"polluted": 1}, "ok": 2}');
  const r = await run(
    `const o = $args.o; return [Object.keys(o), ({}).polluted, Object.getPrototypeOf(o) === Object.prototype,
      o.__proto__ === Object.prototype, JSON.parse('{"__proto__": {"x": 1}}')]`,
    { args: { o: hostile } },
  );
  assert.equal(r.status, 'success');
  assert.deepEqual(r.returnValue.slice(0, 3), [['__proto__', 'ok'], undefined, true]);
  assert.equal(r.returnValue[3], false); // own property, not the prototype
  // msgpackr renames __proto__ keys on the host side (its pollution guard).
  assert.deepEqual(Object.keys(r.returnValue[4]), ['__proto_']);
  assert.equal({}.polluted, undefined);
  assert.equal({}.x, undefined);
});

test('class instances and Errors from the guest', async () => {
  const r = await run('class P { constructor() { this.x = 1 } get y() { return 2 } }; return [new P(), new TypeError("bad")]');
  assert.deepEqual(r.returnValue, [{ x: 1 }, { name: 'TypeError', message: 'bad' }]);
});

test('guest values that cannot cross name their path', async () => {
  const cases = [
    ['return { a: { b: () => 1 } }', 'returnValue.a.b is a function and cannot leave the sandbox'],
    ['return [1, Symbol("s")]', 'returnValue[1] is a Symbol and cannot leave the sandbox'],
    ['const o = { a: {} }; o.a.self = o; return o', 'returnValue.a.self is a circular reference and cannot leave the sandbox'],
    ['return { big: 2n ** 64n }', 'returnValue.big is a BigInt outside the 64-bit range and cannot leave the sandbox'],
    ['return new Map()', 'returnValue is a Map and cannot leave the sandbox'],
    ['return { p: Promise.resolve(1) }', 'returnValue.p is a Promise (await it first) and cannot leave the sandbox'],
    ["$state.x = { a: { b: function () {} } }", 'stateMutations[0].value.a.b is a function and cannot leave the sandbox'],
    ["$state.list.push(new Set())", 'stateMutations[0].value[1] is a Set and cannot leave the sandbox'],
  ];
  for (const [code, message] of cases) {
    const r = await run(code, { stateSnapshot: { list: [0] } });
    assert.equal(r.status, 'error', code);
    assert.equal(r.error.code, 'EXECUTION_ERROR', code);
    assert.equal(r.error.message, message);
  }
});

test('$emit of an uncrossable payload throws a TypeError inside the handler', async () => {
  const r = await run(`try { $emit('e', { f: () => 1 }) } catch (e) { return [e.name, e.message] }`);
  assert.deepEqual(r.returnValue, ['TypeError', 'events[0].payload.f is a function and cannot leave the sandbox']);
  assert.deepEqual(r.events, []);
});

test('host values that cannot cross are rejected with their path', async () => {
  const circ = { a: {} };
  circ.a.back = circ;
  const cases = [
    [{ stateSnapshot: { user: { save() {} } } }, 'context.stateSnapshot.user.save is a function and cannot cross into the sandbox'],
    [{ args: { s: Symbol('x') } }, 'context.args.s is a Symbol and cannot cross into the sandbox'],
    [{ args: circ }, 'context.args.a.back is a circular reference and cannot cross into the sandbox'],
    [{ scope: { n: 2n ** 70n } }, 'context.scope.n is a BigInt outside the 64-bit range and cannot cross into the sandbox'],
    [{ args: { m: new Map() } }, 'context.args.m is a Map and cannot cross into the sandbox'],
    [{ args: { list: [1, [2, () => 3]] } }, 'context.args.list[1][1] is a function and cannot cross into the sandbox'],
  ];
  for (const [over, message] of cases) {
    await assert.rejects(run('return 1', over), { name: 'TypeError', message });
  }
});

test('context values nest up to 30 levels; deeper is a TypeError, not an internal error', async () => {
  const nest = (depth) => {
    let v = 1;
    for (let i = 0; i < depth; i++) v = { v };
    return v;
  };
  const r = await run('let d = 0, x = $args.root; while (typeof x === "object") { x = x.v; d++ } return d', {
    args: { root: nest(30) },
  });
  assert.equal(r.returnValue, 30);
  await assert.rejects(run('return 1', { args: { root: nest(31) } }), {
    name: 'TypeError',
    message: `context.args.root${'.v'.repeat(30)} is nested deeper than 30 levels and cannot cross into the sandbox`,
  });
});

test('guest values nest up to 256 levels on the way out', async () => {
  const r = await run('let a = 1; for (let i = 0; i < 200; i++) a = [a]; return a');
  assert.equal(r.status, 'success');
  let d = 0;
  for (let x = r.returnValue; Array.isArray(x); x = x[0]) d++;
  assert.equal(d, 200);
});

test('an empty-string key crosses both ways (msgpack-c gives it a NULL pointer; found by fuzz_mpack)', async () => {
  assert.deepEqual(await echo({ '': 1, a: { '': [2] } }), { '': 1, a: { '': [2] } });
  const r = await run("$state[''] = $state[''] + 1; return Object.keys($state)", { stateSnapshot: { '': 41 } });
  assert.deepEqual(r.returnValue, ['']);
  assert.deepEqual(r.stateMutations, [{ key: '', operation: 'set', value: 42 }]);
});

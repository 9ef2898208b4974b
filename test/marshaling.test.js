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

test('host BigInts in [-2^31, 2^32) arrive as numbers (the wire keeps no integer width), outside it as BigInts', async () => {
  const b = { a: 5n, b: 2n ** 32n - 1n, c: 2n ** 32n, d: -(2n ** 31n), e: -(2n ** 31n) - 1n, f: 0n };
  const r = await run('return Object.entries($args.b).map(([k, v]) => [k, typeof v, String(v)])', { args: { b } });
  assert.deepEqual(r.returnValue, [
    ['a', 'number', '5'], ['b', 'number', '4294967295'], ['c', 'bigint', '4294967296'],
    ['d', 'number', '-2147483648'], ['e', 'bigint', '-2147483649'], ['f', 'number', '0'],
  ]);
  // so a snapshot BigInt in that range, written back, comes back a number
  const w = await run('$state.n = $state.n; $state.m = $state.m', { stateSnapshot: { n: 7n, m: 2n ** 40n } });
  assert.deepEqual(w.stateMutations, [{ key: 'n', operation: 'set', value: 7 }, { key: 'm', operation: 'set', value: 2n ** 40n }]);
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
  // A detached ArrayBuffer has byteLength 0 in JS: it leaves as an empty one.
  const d = await run('const b = new ArrayBuffer(8); b.transfer(); return b');
  assert.deepEqual(d.returnValue, new ArrayBuffer(0));
});

test('a Node Buffer arrives as a Uint8Array', async () => {
  const r = await run('return [$args.b.constructor.name, Array.from($args.b)]', { args: { b: Buffer.from('hi') } });
  assert.deepEqual(r.returnValue, ['Uint8Array', [104, 105]]);
  // read from $state and left alone, it still counts as changed (bin in the
  // snapshot, ext 0x74 re-encoded) and comes back a Uint8Array
  const s = await run('return $state.buf.length', { stateSnapshot: { buf: Buffer.from('hi') } });
  assert.deepEqual(s.stateMutations, [{ key: 'buf', operation: 'set', value: new Uint8Array([104, 105]) }]);
  assert.equal(Buffer.isBuffer(s.stateMutations[0].value), false);
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
    ['return [new WeakMap()]', 'returnValue[0] is a weak collection or reference and cannot leave the sandbox'],
    ['return { w: new WeakSet() }', 'returnValue.w is a weak collection or reference and cannot leave the sandbox'],
    ['return { r: new WeakRef({}) }', 'returnValue.r is a weak collection or reference and cannot leave the sandbox'],
    ['return { re: /x/ }', 'returnValue.re is a RegExp and cannot leave the sandbox'],
    ['return { v: new DataView(new ArrayBuffer(2)) }', 'returnValue.v is a DataView and cannot leave the sandbox'],
    ['return { f: new Float16Array(2) }', 'returnValue.f is a Float16Array and cannot leave the sandbox'],
    ['return { d: new Date(NaN) }', 'returnValue.d is an invalid Date and cannot leave the sandbox'],
    ['const b = new ArrayBuffer(8), u = new Uint8Array(b); b.transfer(); return { u }', 'returnValue.u is a detached or invalid buffer and cannot leave the sandbox'],
    ['const b = new ArrayBuffer(8, { maxByteLength: 8 }), u = new Uint8Array(b, 4, 4); b.resize(2); return [u]', 'returnValue[0] is a detached or invalid buffer and cannot leave the sandbox'],
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

test('$view args likewise; the index counts the entries recorded so far; uncaught, it is EXECUTION_ERROR with its location', async () => {
  const r = await run(`$view.focus('a'); try { $view.custom('c', { a: () => 1 }) } catch (e) { return [e.name, e.message] }`);
  assert.deepEqual(r.returnValue, ['TypeError', 'viewCommands[1].args.a is a function and cannot leave the sandbox']);
  assert.deepEqual(r.viewCommands, [{ type: 'focus', componentId: 'a', args: {} }]);
  const u = await run("$emit('ok', 1); $view.focus('x');\n  $emit('e', { x: Symbol() })");
  assert.equal(u.status, 'error');
  assert.deepEqual([u.error.code, u.error.message, u.error.location.line],
    ['EXECUTION_ERROR', 'TypeError: events[1].payload.x is a Symbol and cannot leave the sandbox', 2]);
  assert.deepEqual([u.events, u.viewCommands], [[], []]);
  // a getter or trap that throws while the value is copied: its own error, the same way
  const g = await run('const o = { get g() { throw new SyntaxError("getter") } }; try { $emit("e", o) } catch (e) { return [e.name, e.message] }');
  assert.deepEqual(g.returnValue, ['SyntaxError', 'getter']);
  const t = await run("$view.custom('x', { p: new Proxy({}, { ownKeys() { throw new RangeError('trap') } }) })");
  assert.deepEqual([t.error.code, t.error.message], ['EXECUTION_ERROR', 'RangeError: trap']);
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
    [{ args: { s: new Set([1]) } }, 'context.args.s is a Set and cannot cross into the sandbox'],
    [{ args: { w: new WeakMap() } }, 'context.args.w is a WeakMap and cannot cross into the sandbox'],
    [{ args: { w: [new WeakSet()] } }, 'context.args.w[0] is a WeakSet and cannot cross into the sandbox'],
    [{ scope: { p: Promise.resolve(1) } }, 'context.scope.p is a Promise and cannot cross into the sandbox'],
    [{ stateSnapshot: { r: /x/g } }, 'context.stateSnapshot.r is a RegExp and cannot cross into the sandbox'],
    [{ args: { e: new TypeError('x') } }, 'context.args.e is an Error and cannot cross into the sandbox'],
    [{ args: { v: new DataView(new ArrayBuffer(2)) } }, 'context.args.v is a DataView and cannot cross into the sandbox'],
    // a subclass is refused like its base
    [{ args: { m: new (class extends Map {})() } }, 'context.args.m is a Map and cannot cross into the sandbox'],
    [{ args: { n: 2n ** 64n } }, 'context.args.n is a BigInt outside the 64-bit range and cannot cross into the sandbox'],
    [{ args: { n: -(2n ** 63n) - 1n } }, 'context.args.n is a BigInt outside the 64-bit range and cannot cross into the sandbox'],
  ];
  for (const [over, message] of cases) {
    await assert.rejects(run('return 1', over), { name: 'TypeError', message });
  }
  // the 64-bit bounds themselves cross
  assert.deepEqual(await echo([2n ** 64n - 1n, -(2n ** 63n)]), [2n ** 64n - 1n, -(2n ** 63n)]);
});

test('host values that are not refused: a WeakRef arrives as {}; an invalid Date fails in the native decoder', async () => {
  const r = await run('return [$args.w, Object.getPrototypeOf($args.w) === Object.prototype]', { args: { w: new WeakRef({}) } });
  assert.deepEqual(r.returnValue, [{}, true]);
  for (const field of ['args', 'scope']) {
    const bad = await run('return 1', { [field]: { d: new Date(NaN) } });
    assert.deepEqual([bad.status, bad.error.code, bad.error.message],
      ['error', 'EXECUTION_ERROR', `${field}.d: unsupported MessagePack extension type -1`], field);
  }
  const s = await run('try { return $state.d } catch (e) { return [e.name, e.message] }', { stateSnapshot: { d: new Date(NaN) } });
  assert.deepEqual(s.returnValue, ['TypeError', 'stateSnapshot.d: unsupported MessagePack extension type -1']);
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

test('guest values nest up to 256 levels on the way out; 257 is refused wherever it goes', async () => {
  const depth = (v) => {
    let d = 0;
    for (let x = v; x !== null && typeof x === 'object'; x = Array.isArray(x) ? x[0] : x.v) d++;
    return d;
  };
  // 256 containers around a number: as the return value, a state write, an
  // event payload and view args, arrays and objects
  const nest = (n, kind) => `let a = 1; for (let i = 0; i < ${n}; i++) a = ${kind === 'array' ? '[a]' : '{ v: a }'};`;
  for (const kind of ['array', 'object']) {
    const view = kind === 'object' ? "$view.custom('c', a);" : '';
    const r = await run(`${nest(256, kind)} $state.s = a; $emit('e', a); ${view} return a`);
    assert.equal(r.status, 'success', `${kind}: ${JSON.stringify(r.error)}`);
    assert.equal(depth(r.returnValue), 256, kind);
    assert.equal(depth(r.stateMutations[0].value), 256, kind);
    assert.equal(depth(r.events[0].payload), 256, kind);
    if (view) assert.equal(depth(r.viewCommands[0].args), 256, kind);
  }
  // 257: the return value fails the execution, a state write too; $emit
  // throws inside the handler. The message names the path (cut to fit).
  const TOO_DEEP = 'is nested too deeply (over 256 levels) and cannot leave the sandbox';
  const ret = await run(`${nest(257, 'array')} return a`);
  assert.equal(ret.error.code, 'EXECUTION_ERROR');
  assert.match(ret.error.message, new RegExp(`^returnValue(\\[0\\])+ ${TOO_DEEP.replace(/[()]/g, '\\$&')}$`));
  const put = await run(`${nest(257, 'object')} $state.s = a`);
  assert.equal(put.error.code, 'EXECUTION_ERROR');
  assert.match(put.error.message, new RegExp(`^stateMutations\\[0\\]\\.value(\\.v)+ ${TOO_DEEP.replace(/[()]/g, '\\$&')}$`));
  const emitted = await run(`${nest(257, 'object')} try { $emit('e', a) } catch (e) { return [e.name, e.message.endsWith(${JSON.stringify(TOO_DEEP)})] }`);
  assert.deepEqual(emitted.returnValue, ['TypeError', true]);
  assert.deepEqual(emitted.events, []);
});

test('$state change detection compares numbers by value with -0 ≠ 0 and NaN = NaN, and map key order', async () => {
  // Read-only keys whose objects the handler rewrites in place: a set is
  // reported only when the re-encoded value differs from the snapshot's.
  const cases = [
    // 0 rewritten to -0 is a change (the host sees -0); the snapshot's -0
    // arrives as 0 (msgpackr writes it as integer 0), so it changes too
    ['$state.o.z = -0', { o: { z: 0 } }, [{ key: 'o', operation: 'set', value: { z: -0 } }]],
    ['$state.o.z = -0', { o: { z: -0 } }, [{ key: 'o', operation: 'set', value: { z: -0 } }]],
    ['$state.a[1] = -0', { a: [1, 0] }, [{ key: 'a', operation: 'set', value: [1, -0] }]],
    // 0 rewritten to 0 is not
    ['$state.o.z = 0', { o: { z: 0 } }, []],
    // NaN left alone, rewritten to NaN, or to another NaN: no change
    ['return Number.isNaN($state.o.z)', { o: { z: NaN } }, []],
    ['$state.o.z = NaN', { o: { z: NaN } }, []],
    ['$state.o.z = 0 / 0; $state.a[0] = Math.sqrt(-1)', { o: { z: NaN }, a: [NaN] }, []],
    // but NaN for a number, or a number for NaN, is
    ['$state.o.z = NaN', { o: { z: 1 } }, [{ key: 'o', operation: 'set', value: { z: NaN } }]],
    ['$state.o.z = 1', { o: { z: NaN } }, [{ key: 'o', operation: 'set', value: { z: 1 } }]],
    // other numbers, integers and floats, equal themselves
    ['$state.o.z = 1.5; $state.o.w = 2 ** 40; $state.o.i = -(2 ** 31); $state.o.u = 2 ** 32 - 1',
      { o: { z: 1.5, w: 2 ** 40, i: -(2 ** 31), u: 2 ** 32 - 1 } }, []],
    // map key order counts: a key deleted and put back (same value) moves to the end
    ['const v = $state.o.a; delete $state.o.a; $state.o.a = v', { o: { a: 1, b: 1 } },
      [{ key: 'o', operation: 'set', value: { b: 1, a: 1 } }]],
    ['const v = $state.o.a; $state.o.a = 2; $state.o.a = v', { o: { a: 1, b: 1 } }, []],
  ];
  for (const [code, stateSnapshot, mutations] of cases) {
    const r = await run(code, { stateSnapshot });
    assert.equal(r.status, 'success', `${code}: ${JSON.stringify(r.error)}`);
    assert.deepEqual(r.stateMutations, mutations, code); // deepStrictEqual: Object.is, so -0 is not 0
    // deepEqual ignores key order; the host sees the guest's
    mutations.forEach((m, i) => assert.deepEqual(Object.keys(r.stateMutations[i].value), Object.keys(m.value), code));
  }
});

test('an empty-string key crosses both ways (a NULL pointer once; found by fuzz_mpack)', async () => {
  assert.deepEqual(await echo({ '': 1, a: { '': [2] } }), { '': 1, a: { '': [2] } });
  const r = await run("$state[''] = $state[''] + 1; return Object.keys($state)", { stateSnapshot: { '': 41 } });
  assert.deepEqual(r.returnValue, ['']);
  assert.deepEqual(r.stateMutations, [{ key: '', operation: 'set', value: 42 }]);
});

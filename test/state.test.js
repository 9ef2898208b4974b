'use strict';
// Large state: runtime.createState (lib/state.js) and the lazily decoded
// containers behind $state (src/lazy.c). Every handler here is also run
// in Node on a plain copy of the same state; the sandbox must give the same
// return value and leave the same state, whichever way the state came in.
const test = require('node:test');
const assert = require('node:assert');
const { context, runtime } = require('./helpers');

const rt = runtime({ workers: 1 });
test.after(() => rt.shutdown());

const items = Array.from({ length: 300 }, (_, i) => ({ id: i, name: `item ${i}`, done: i % 2 === 0, tags: i % 50 === 0 ? Array.from({ length: 80 }, (_, j) => j) : [] }));
const byId = Object.fromEntries(items.slice(0, 200).map((it) => [`k${it.id}`, { id: it.id }]));
const initial = () => ({ items: structuredClone(items), byId: structuredClone(byId), count: 3 });

// The same handler in Node, on a plain copy: what the sandbox must match.
async function reference(code) {
  const state = initial();
  const fn = new Function('$state', `return (async () => { ${code} })()`);
  const value = await fn(state);
  return { value: structuredClone(value), state: structuredClone(state) };
}

function applyTo(state, mutations) {
  for (const m of mutations) {
    if (m.operation === 'delete') delete state[m.key];
    else state[m.key] = m.value;
  }
  return state;
}

const HANDLERS = {
  'read one item': 'return $state.items[123]',
  'read one item and write another key': 'const x = $state.items[77]; $state.count = x.id; return x.name',
  'length and Array.isArray': 'return [$state.items.length, Array.isArray($state.items)]',
  'identity of an item read twice': 'return $state.items[5] === $state.items[5]',
  'out of range and non-index keys': 'const a = $state.items; return [a[300], a[-1], a["01"], a["1.0"], typeof a.map, a.at(-1).id]',
  'in-place change of one item': '$state.items[10].done = !$state.items[10].done; return $state.items[10]',
  'unchanged read of many items': 'let n = 0; for (let i = 0; i < 40; i++) n += $state.items[i].id; return n',
  'iterate all (fills)': 'return $state.items.filter((x) => x.done).length',
  'for-of and spread': 'let s = 0; for (const x of $state.items) s += x.id; return [s, [...$state.items].length]',
  'JSON.stringify': 'return JSON.stringify($state.items).length',
  'push': '$state.items.push({ id: 999 }); return $state.items.length',
  'sort in place': '$state.items.sort((a, b) => b.id - a.id); return $state.items[0].id',
  'remove an item': '$state.items.splice(3, 1); return [3 in $state.items, $state.items[3].id]',
  'in operator': 'return [3 in $state.items, 300 in $state.items, "length" in $state.items]',
  'hasOwnProperty and descriptors': 'const d = Object.getOwnPropertyDescriptor($state.items, "4"); return [Object.hasOwn($state.items, "4"), d.value.id, d.writable]',
  'Object.keys of a large map after a partial read': 'const a = $state.byId.k150.id; return [a, Object.keys($state.byId).slice(0, 3), Object.keys($state.byId).length]',
  'map lookup of a missing key': 'return [$state.byId.nope, "k3" in $state.byId, "nope" in $state.byId]',
  'change inside a large map': '$state.byId.k7.id = -7; return $state.byId.k7',
  'nested large array inside an item': 'return [$state.items[50].tags.length, $state.items[50].tags[79]]',
  'change inside a nested large array': '$state.items[100].tags[3] = "x"; return $state.items[100].tags.slice(0, 5)',
  'replace the container': '$state.items = $state.items.slice(0, 2); return $state.items.length',
  'freeze': 'Object.freeze($state.items); return Object.isFrozen($state.items)',
  'spread a large map': 'const o = { ...$state.byId }; return Object.keys(o).length',
  'a getter added to a fetched item': "const it = $state.items[3]; Object.defineProperty(it, 'z', { get() { return 7 }, enumerable: true }); return $state.items[3]",
  'a getter on a fetched map entry, the map returned': "Object.defineProperty($state.byId.k9, 'z', { get() { return 9 }, enumerable: true }); return $state.byId",
};

for (const [via, make] of [
  ['a plain object', () => initial()],
  ['a NexusState', () => rt.createState(initial())],
]) {
  for (const [name, code] of Object.entries(HANDLERS)) {
    test(`${name} (state as ${via}) matches the same handler in Node`, async () => {
      const want = await reference(code);
      const r = await rt.executeHandler(code, context({ stateSnapshot: make() }));
      assert.strictEqual(r.status, 'success', JSON.stringify(r.error));
      assert.deepStrictEqual(r.returnValue, want.value);
      assert.deepStrictEqual(applyTo(initial(), r.stateMutations), want.state);
    });
  }
}

test('a lazy container repeated a million times in a result stops at maxResultBytes', async () => {
  const r = await rt.executeHandler('const a = $state.items; a[2]; return Array(1e6).fill(a)', context({ stateSnapshot: rt.createState(initial()) }));
  assert.strictEqual(r.status, 'error');
  assert.strictEqual(r.error.code, 'RESOURCE_LIMIT');
  assert.match(r.error.message, /^Result too large: config\.maxResultBytes \(\d+ bytes\) was reached while encoding returnValue\[\d+\]/);
});

test('a sandbox that fails half-way through reading a large state serves the next execution', async () => {
  const rt1 = runtime({ workers: 1, maxInstances: 1, memoryLimitBytes: 8 << 20 });
  try {
    const state = rt1.createState(initial());
    for (const [code, want] of [
      ['const a = $state.items; a[7]; const s = []; for (;;) s.push(a[s.length % 300].name + s.length)', 'MEMORY_LIMIT'],
      ['$state.items[7]; const m = $state.byId; for (let i = 0; ; i++) m[`k${i % 200}`]', 'TIMEOUT'],
    ]) {
      const r = await rt1.executeHandler(code, context({ stateSnapshot: state }), 200);
      assert.strictEqual(r.status, 'error');
      assert.strictEqual(r.error.code, want);
      const next = await rt1.executeHandler('return [$state.items[7].id, $state.items.length, $state.byId.k3.id]', context({ stateSnapshot: state }));
      assert.deepStrictEqual(next.returnValue, [7, 300, 3]);
    }
  } finally {
    await rt1.shutdown();
  }
});

test('a read that changes nothing reports no mutation, however many items were read', async () => {
  const r = await rt.executeHandler('for (let i = 0; i < 20; i++) $state.items[i].name; return $state.byId.k1.id', context({ stateSnapshot: rt.createState(initial()) }));
  assert.strictEqual(r.status, 'success');
  assert.deepStrictEqual(r.stateMutations, []);
});

test('an in-place change to a lazily read item needs the write capability', async () => {
  const r = await rt.executeHandler('$state.items[10].done = 1; return 1', context({ stateSnapshot: rt.createState(initial()), capabilities: ['state:read:*'] }));
  assert.strictEqual(r.status, 'error');
  assert.strictEqual(r.error.code, 'PERMISSION_DENIED');
  assert.match(r.error.message, /\$state\.items was changed in place/);
});

test('reading items of a large container does not count against maxHostCalls', async () => {
  const rt2 = runtime({ workers: 1, maxHostCalls: 5 });
  try {
    const r = await rt2.executeHandler('let n = 0; const a = $state.items; for (let i = 0; i < a.length; i++) n += a[i].id; return n', context({ stateSnapshot: initial() }));
    assert.strictEqual(r.status, 'success', JSON.stringify(r.error));
    assert.strictEqual(r.returnValue, (299 * 300) / 2);
    assert.strictEqual(r.metrics.hostCalls['state.get'], 1);
  } finally {
    await rt2.shutdown();
  }
});

test('an emitted lazy container is encoded from its bytes, with the items the handler changed', async () => {
  const r = await rt.executeHandler('$state.items[1].name = "one"; $emit("all", $state.items); return 1', context({ stateSnapshot: rt.createState(initial()) }));
  assert.strictEqual(r.status, 'success', JSON.stringify(r.error));
  const want = structuredClone(items);
  want[1].name = 'one';
  assert.deepStrictEqual(r.events[0].payload, want);
});

test('a lazy container behind a getter is copied without losing items', async () => {
  const r = await rt.executeHandler('return { get all() { return $state.items; } }', context({ stateSnapshot: initial() }));
  assert.strictEqual(r.status, 'success', JSON.stringify(r.error));
  assert.deepStrictEqual(r.returnValue.all, items);
});

test('createState: values are encoded when they come in, and read back as fresh copies', () => {
  const source = { list: [1, 2, 3], user: { name: 'a' } };
  const s = rt.createState(source);
  source.list.push(4); // the state took its own copy
  assert.deepStrictEqual(s.get('list'), [1, 2, 3]);
  const user = s.get('user');
  user.name = 'changed'; // a copy: the state is not affected
  assert.deepStrictEqual(s.get('user'), { name: 'a' });
  assert.deepStrictEqual(s.keys(), ['list', 'user']);
  assert.strictEqual(s.size, 2);
  assert.strictEqual(s.has('user'), true);
  assert.strictEqual(s.get('missing'), undefined);
  assert.deepStrictEqual(s.toObject(), { list: [1, 2, 3], user: { name: 'a' } });
});

test('createState: apply() takes a result\'s mutations, set and delete', async () => {
  const s = rt.createState({ count: 1, gone: true, items: structuredClone(items) });
  const r = await rt.executeHandler('$state.count++; delete $state.gone; $state.added = [1]; $state.items[0].done = false; return 1', context({ stateSnapshot: s }));
  assert.strictEqual(r.status, 'success', JSON.stringify(r.error));
  assert.strictEqual(s.apply(r.stateMutations), s);
  assert.deepStrictEqual(s.keys(), ['count', 'items', 'added']);
  assert.strictEqual(s.get('count'), 2);
  assert.strictEqual(s.get('items')[0].done, false);
  const again = await rt.executeHandler('return [$state.count, $state.items[0].done, $state.added, "gone" in $state]', context({ stateSnapshot: s }));
  assert.deepStrictEqual(again.returnValue, [2, false, [1], false]);
});

test('createState: bad input is a TypeError naming the value', () => {
  assert.throws(() => rt.createState(null), /values must be an object/);
  assert.throws(() => rt.createState([1]), /values must be an object/);
  assert.throws(() => rt.createState({ f: { g: () => 1 } }), /state\.f\.g is a function and cannot cross/);
  const s = rt.createState({});
  assert.throws(() => s.set(1, 2), /state keys must be strings/);
  assert.throws(() => s.apply({}), /mutations must be an array/);
  assert.throws(() => s.apply([{ key: 'a', operation: 'merge' }]), /operation must be 'set' or 'delete'/);
  assert.throws(() => s.apply([null]), /mutations\[0\] must be/);
});

test('WasmSandboxExecutor applies mutations to a NexusState', async () => {
  const { WasmSandboxExecutor } = require('..');
  const s = rt.createState({ count: 1 });
  const ex = new WasmSandboxExecutor(rt);
  await ex.execute({ code: '$state.count += 1; return 1', panelId: 'p', handlerName: 'h', state: s, capabilities: ['state:read:*', 'state:write:*'] });
  assert.strictEqual(s.get('count'), 2);
});

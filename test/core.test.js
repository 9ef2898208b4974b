'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { context, runtime } = require('./helpers');

const rt = runtime();
test.after(() => rt.shutdown());
const run = (code, over, timeout) => rt.executeHandler(code, context(over), timeout);

test('trivial handler: result fields', async () => {
  const r = await run("$state.count++; $emit('changed', $state.count); return $state.count", {
    stateSnapshot: { count: 41 },
  });
  assert.equal(r.status, 'success');
  assert.equal(r.returnValue, 42);
  assert.deepEqual(r.stateMutations, [{ key: 'count', operation: 'set', value: 42 }]);
  assert.deepEqual(r.events, [{ name: 'changed', payload: 42 }]);
  assert.deepEqual(r.viewCommands, []);
  assert.deepEqual(r.logs, []);
  assert.equal(r.error, undefined);
  assert.equal(typeof r.metrics.durationUs, 'number');
  assert.equal(typeof r.metrics.compilationTimeUs, 'number');
  assert.deepEqual(r.metrics.hostCalls, { 'state.get': 3, 'state.set': 1, emit: 1 });
});

test('top-level await and the resolved return value', async () => {
  const r = await run('const v = await Promise.resolve(20); await null; return { v: v + 1, list: [1, "a"] }');
  assert.equal(r.status, 'success');
  assert.deepEqual(r.returnValue, { v: 21, list: [1, 'a'] });
});

test('no return gives undefined', async () => {
  const r = await run('1 + 1');
  assert.equal(r.status, 'success');
  assert.equal(r.returnValue, undefined);
  assert.ok('returnValue' in r);
});

test('$state reads see earlier writes; last value wins; one mutation per key in first-change order', async () => {
  const r = await run(
    `$state.b = 1; $state.a = 'x'; $state.b = 2; const seen = [$state.b, $state.a, $state.missing];
     delete $state.gone; return seen`,
    { stateSnapshot: { a: 'orig', gone: true, keep: 5 } },
  );
  assert.equal(r.status, 'success');
  assert.deepEqual(r.returnValue, [2, 'x', undefined]);
  assert.deepEqual(r.stateMutations, [
    { key: 'b', operation: 'set', value: 2 },
    { key: 'a', operation: 'set', value: 'x' },
    { key: 'gone', operation: 'delete' },
  ]);
});

test('set after delete is a set; delete after set is a delete', async () => {
  const r = await run('delete $state.a; $state.a = 3; $state.b = 1; delete $state.b', {
    stateSnapshot: { a: 1 },
  });
  assert.deepEqual(r.stateMutations, [
    { key: 'a', operation: 'set', value: 3 },
    { key: 'b', operation: 'delete' },
  ]);
});

test('defineProperty on $state records a write like an assignment; an accessor is refused', async () => {
  const r = await run(`Object.defineProperty($state, 'k', { value: 5 });
    const accessor = Reflect.defineProperty($state, 'g', { get() { return 1 } });
    return [$state.k, accessor, 'g' in $state]`);
  assert.deepEqual(r.returnValue, [5, false, false]);
  assert.deepEqual(r.stateMutations, [{ key: 'k', operation: 'set', value: 5 }]);
});

test('deleting a key that does not exist records nothing', async () => {
  const r = await run('delete $state.nope; return "nope" in $state');
  assert.equal(r.returnValue, false);
  assert.deepEqual(r.stateMutations, []);
});

test('Object.keys, in, spread and JSON over $state', async () => {
  const r = await run(
    `$state.added = 1; delete $state.b;
     return { keys: Object.keys($state), own: Reflect.ownKeys($state), has: ['a' in $state, 'b' in $state, 'added' in $state],
              spread: { ...$state }, json: JSON.stringify($state) }`,
    { stateSnapshot: { a: 1, b: 2 } },
  );
  assert.deepEqual(r.returnValue, {
    keys: ['a', 'added'],
    own: ['a', 'added'], // the raw key list too, not only what Object.keys filters

    has: [true, false, true],
    spread: { a: 1, added: 1 },
    json: '{"a":1,"added":1}',
  });
});

test('deep changes to values read from $state become a set of the top-level key', async () => {
  const r = await run(
    `$state.items.push(4); $state.user.name = 'x'; const same = $state.untouched.v;
     $state.counter += 1; return $state.items.length`,
    { stateSnapshot: { items: [1, 2, 3], user: { name: 'a', age: 3 }, untouched: { v: 1 }, counter: 1 } },
  );
  assert.equal(r.returnValue, 4);
  assert.deepEqual(r.stateMutations, [
    { key: 'counter', operation: 'set', value: 2 },
    { key: 'items', operation: 'set', value: [1, 2, 3, 4] },
    { key: 'user', operation: 'set', value: { name: 'x', age: 3 } },
  ]);
});

test('an object set then changed reports its final value', async () => {
  const r = await run('const o = { n: 1 }; $state.o = o; o.n = 2; o.extra = [1]');
  assert.deepEqual(r.stateMutations, [{ key: 'o', operation: 'set', value: { n: 2, extra: [1] } }]);
});

test('reading an object without changing it records nothing', async () => {
  const r = await run('return $state.big.list.length + $state.big.list[0].x', {
    stateSnapshot: { big: { list: [{ x: 1.5 }, { x: 2 ** 40 }, { x: -0.25 }] } },
  });
  assert.equal(r.returnValue, 4.5);
  assert.deepEqual(r.stateMutations, []);
});

test('$args and $scope are plain copies', async () => {
  const r = await run(
    `$args.x = 99; $scope.y = 1;
     return { a: $args, s: $scope, proto: Object.getPrototypeOf($args) === Object.prototype }`,
    { args: { x: 1, nested: { z: [1] } }, scope: { row: 3 } },
  );
  assert.deepEqual(r.returnValue, { a: { x: 99, nested: { z: [1] } }, s: { row: 3, y: 1 }, proto: true });
  assert.deepEqual(r.stateMutations, []);
});

test('$emit records events in order with copied payloads', async () => {
  const r = await run(`const p = { n: 1 }; $emit('a', p); p.n = 2; $emit('b'); $emit('c', [p])`);
  assert.deepEqual(r.events, [
    { name: 'a', payload: { n: 1 } },
    { name: 'b', payload: undefined },
    { name: 'c', payload: [{ n: 2 }] },
  ]);
});

test('$view commands', async () => {
  const r = await run(`$view.setFilter('table', 'open'); $view.scrollTo('list', 10);
    $view.focus('input'); $view.custom('chart', { zoom: 2 });`);
  assert.deepEqual(r.viewCommands, [
    { type: 'setFilter', componentId: 'table', args: { value: 'open' } },
    { type: 'scrollTo', componentId: 'list', args: { position: 10 } },
    { type: 'focus', componentId: 'input', args: {} },
    { type: 'custom', componentId: 'chart', args: { zoom: 2 } },
  ]);
});

test('$view and $emit reject non-string names inside the handler', async () => {
  const r = await run(`const out = [];
    for (const f of [() => $emit(1), () => $view.focus({}), () => { $state[Symbol()] = 1 }]) {
      try { f(); out.push('no error') } catch (e) { out.push(e instanceof TypeError) }
    }
    return out`);
  assert.deepEqual(r.returnValue, [true, true, true]);
});

test('$log and its levels', async () => {
  const r = await run(`$log('a', 1, { b: [2] }, null, undefined); $log.info('i'); $log.warn('w');
    $log.error(new Error('e')); $log.debug('d')`);
  assert.deepEqual(r.logs, [
    { level: 'info', message: 'a 1 {"b":[2]} null undefined' },
    { level: 'info', message: 'i' },
    { level: 'warn', message: 'w' },
    { level: 'error', message: '{}' },
    { level: 'debug', message: 'd' },
  ]);
});

test('handler globals cannot be replaced for later code in the same run', async () => {
  const r = await run(`try { $view.focus = null } catch (e) {} try { $emit.x = 1 } catch (e) {}
    return [typeof $view.focus, Object.isFrozen($view), Object.isFrozen($log)]`);
  assert.deepEqual(r.returnValue, ['function', true, true]);
});

test('large state: reading one key of 10 000 decodes one key', async () => {
  // Every other key holds an invalid Date, which the native decoder refuses
  // (docs/marshaling.md): decoding any of them would fail the execution.
  const state = {};
  for (let i = 0; i < 10000; i++) state[`k${i}`] = new Date(NaN);
  state.k5000 = { id: 5000 };
  state.k9999 = { id: 9999, tags: ['a', 'b'] };
  const r = await run('$state.k9999.tags.push("c"); return [$state.k5000.id, "k1" in $state]', { stateSnapshot: state });
  assert.equal(r.status, 'success', JSON.stringify(r.error));
  assert.deepEqual(r.returnValue, [5000, true]);
  assert.deepEqual(r.stateMutations, [{ key: 'k9999', operation: 'set', value: { id: 9999, tags: ['a', 'b', 'c'] } }]);
  // the premise: reading one of the others fails
  const bad = await run('return $state.k1', { stateSnapshot: state });
  assert.equal(bad.error.message, 'TypeError: stateSnapshot.k1: unsupported MessagePack extension type -1');
});

test('many executions in parallel all succeed with their own results', async () => {
  const results = await Promise.all(
    Array.from({ length: 200 }, (_, i) => run('return $args.i * 2 + $state.base', { args: { i }, stateSnapshot: { base: 1 } })),
  );
  results.forEach((r, i) => assert.equal(r.returnValue, i * 2 + 1));
});

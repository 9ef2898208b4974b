'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { context, runtime } = require('./helpers');

const rt = runtime();
test.after(() => rt.shutdown());
const run = (code, capabilities, over = {}) =>
  rt.executeHandler(code, context({ capabilities, stateSnapshot: { a: 1, b: 2 }, ...over }));

function assertDenied(r, token) {
  assert.equal(r.status, 'error');
  assert.equal(r.error.code, 'PERMISSION_DENIED');
  assert.equal(r.error.message, `Permission denied: missing capability ${token}`);
  assert.deepEqual(r.stateMutations, []);
  assert.deepEqual(r.events, []);
  assert.deepEqual(r.viewCommands, []);
}

test('an empty capability list grants nothing', async () => {
  assertDenied(await run('return $state.a', []), 'state:read:a');
  assertDenied(await run('$state.a = 1', []), 'state:write:a');
  assertDenied(await run('delete $state.a', []), 'state:write:a');
  assertDenied(await run("return 'a' in $state", []), 'state:read:a');
  assertDenied(await run("$emit('saved')", []), 'events:emit:saved');
  assertDenied(await run("$view.focus('input')", []), 'view:update:input');
  assertDenied(await run("$view.setFilter('t', 1)", []), 'view:update:t');
  assertDenied(await run("$view.custom('c', {})", []), 'view:update:c');
});

test('a named token grants exactly that name', async () => {
  const caps = ['state:read:a', 'state:write:b', 'events:emit:ok', 'view:update:list'];
  const r = await run("$state.b = $state.a + 1; $emit('ok', 1); $view.scrollTo('list', 3); return $state.a", caps);
  assert.equal(r.status, 'success');
  assert.deepEqual(r.stateMutations, [{ key: 'b', operation: 'set', value: 2 }]);
  assertDenied(await run('return $state.b', caps), 'state:read:b');
  assertDenied(await run('$state.a = 5', caps), 'state:write:a');
  assertDenied(await run("$emit('other')", caps), 'events:emit:other');
  assertDenied(await run("$view.focus('other')", caps), 'view:update:other');
});

test('wildcards grant the whole family', async () => {
  const caps = ['state:read:*', 'state:write:*', 'events:emit:*', 'view:update:*'];
  const r = await run("$state.z = $state.a; $emit('any', 1); $view.focus('x'); return Object.keys($state)", caps);
  assert.equal(r.status, 'success');
  assert.deepEqual(r.returnValue, ['a', 'b', 'z']);
});

test('write access does not imply read access', async () => {
  assertDenied(await run('$state.a += 1', ['state:write:a']), 'state:read:a');
});

test('Object.keys lists only readable keys', async () => {
  const r = await run('return Object.keys($state)', ['state:read:b']);
  assert.deepEqual(r.returnValue, ['b']);
});

test('a denial can be caught inside the handler and carries its code', async () => {
  const r = await run(
    "try { $emit('nope') } catch (e) { return [e.code, e.message, e instanceof Error] }",
    [],
  );
  assert.equal(r.status, 'success');
  assert.deepEqual(r.returnValue, ['PERMISSION_DENIED', 'Permission denied: missing capability events:emit:nope', true]);
});

test('a handler cannot forge a host error code', async () => {
  const r = await run("const e = new Error('x'); e.code = 'PERMISSION_DENIED'; throw e", []);
  assert.equal(r.error.code, 'EXECUTION_ERROR');
});

test('malformed tokens are rejected before execution', async () => {
  await assert.rejects(run('1', ['state:read']), { name: 'TypeError', message: /capabilities\[0\] is not a capability token/ });
  await assert.rejects(run('1', ['admin']), TypeError);
  await assert.rejects(run('1', [42]), { name: 'TypeError', message: 'context.capabilities[0] must be a string' });
});

'use strict';
// executeBatch: results in order, equal to separate calls; a malformed item
// rejects the batch before anything runs, a failing one is its own error
// result. The semantic suites also run through it (NEXUS_TEST_PATH=batch).
const test = require('node:test');
const assert = require('node:assert/strict');
const { NexusRuntime } = require('..');
const contract = require('../src/contract');
const { context, testConfig } = require('./helpers');

const rt = new NexusRuntime(testConfig({ workers: 2, maxInstances: 2 }));
test.after(() => rt.shutdown());

function stable(r) {
  const { metrics, ...rest } = r;
  return { ...rest, metrics: Object.keys(metrics).sort() };
}

const REG = { extensionRegistry: { kv: ['get'] } };

test('results are in item order and equal what separate calls give', async () => {
  const bytecode = await rt.precompileHandler('return [$args.i, typeof $ext]');
  const items = [
    { code: 'return $args.i * 2', context: context({ args: { i: 1 } }) },
    { code: "$state.a = $args.i; $emit('e', $args.i); $view.custom('v', 1); $log('l'); return 'mut'", context: context({ args: { i: 2 } }) },
    { code: 'throw new Error("item " + $args.i)', context: context({ args: { i: 3 } }) },
    { bytecode, context: context({ args: { i: 4 } }) },
    { code: 'return (', context: context() },
    { code: 'for (;;) {}', context: context(), timeoutMs: 30 },
    { code: "$emit('x', 1)", context: context({ capabilities: [] }) },
  ];
  const batch = await rt.executeBatch(items);
  assert.equal(batch.length, items.length);
  for (let i = 0; i < items.length; i++) {
    const { code, bytecode: bc, context: ctx, timeoutMs } = items[i];
    const alone = code !== undefined ? await rt.executeHandler(code, ctx, timeoutMs) : await rt.executeCompiledHandler(bc, ctx, timeoutMs);
    assert.deepEqual(stable(batch[i]), stable(alone), `item ${i}`);
  }
  assert.deepEqual(batch.map((r) => r.error?.code ?? r.status), [
    'success', 'success', 'EXECUTION_ERROR', 'success', 'COMPILATION_ERROR', 'TIMEOUT', 'PERMISSION_DENIED',
  ]);
});

test('a batch larger than the pool (maxInstances 2, 2 workers): 64 items, all in order', async () => {
  const items = Array.from({ length: 64 }, (_, i) => ({
    code: 'const t = Date.now(); while (Date.now() - t < ($args.i % 3)) {} return $args.i',
    context: context({ args: { i } }),
  }));
  const r = await rt.executeBatch(items);
  assert.deepEqual(r.map((x) => x.returnValue), [...Array(64).keys()]);
  assert.equal(rt.getStats().queuedExecutions, 0);
});

test('a suspending item comes back suspended with the others, and resumes as usual', async () => {
  const r = await rt.executeBatch([
    { code: 'return 1', context: context() },
    { code: "return (await $ext.kv.get('a')) + (await $ext.kv.get('b'))", context: context(REG) },
    { code: 'return 3', context: context() },
  ]);
  assert.deepEqual(r.map((x) => x.status), ['success', 'suspended', 'success']);
  assert.deepEqual(r[1].pendingCalls.map((c) => [c.extensionName, c.method, c.args]), [['kv', 'get', ['a']]]);
  const next = await rt.resumeHandler(r[1].suspension.suspensionId, { success: true, value: 40 });
  assert.equal(next.status, 'suspended');
  const done = await rt.resumeHandler(next.suspension.suspensionId, { success: true, value: 2 });
  assert.equal(done.returnValue, 42);
  // ... or is cancelled like any other.
  const [s] = await rt.executeBatch([{ code: "await $ext.kv.get('x')", context: context(REG) }]);
  assert.equal(await rt.cancelSuspended(s.suspension.suspensionId), true);
  assert.equal(rt.getStats().suspendedExecutions, 0);
});

test('an empty batch resolves to [] without running anything', async () => {
  const before = rt.getStats().totalExecutions;
  assert.deepEqual(await rt.executeBatch([]), []);
  assert.equal(rt.getStats().totalExecutions, before);
});

test('a malformed item rejects the batch with a TypeError naming it; no item runs', async () => {
  const good = { code: 'return 1', context: context() };
  const cases = [
    [[good, null], /^items\[1\] must be an object$/],
    [[good, 'return 1'], /^items\[1\] must be an object$/],
    [[{ context: context() }], /^items\[0\] needs exactly one of code and bytecode$/],
    [[{ code: 'return 1', bytecode: new Uint8Array(4), context: context() }], /^items\[0\] needs exactly one of code and bytecode$/],
    [[good, good, { code: 42, context: context() }], /^items\[2\]\.code must be a string$/],
    [[{ bytecode: [1, 2], context: context() }], /^items\[0\]\.bytecode must be a Uint8Array$/],
    [[good, { code: 'return 1' }], /^context must be an object$/],
    [[{ code: 'return 1', context: { ...context(), args: null } }], /^context\.args must be an object$/],
    [[{ code: 'return 1', context: context({ args: { f() {} } }) }], TypeError],
    [[{ code: 'return 1', context: context(), timeoutMs: '5' }], /^timeoutMs must be a number$/],
  ];
  const before = rt.getStats().totalExecutions;
  for (const [items, message] of cases) {
    await assert.rejects(rt.executeBatch(items), (err) => {
      assert.ok(err instanceof TypeError, `${err}`);
      if (message instanceof RegExp) assert.match(err.message, message);
      return true;
    });
  }
  await assert.rejects(rt.executeBatch([{ code: 'return 1', context: context(), timeoutMs: -1 }]), RangeError);
  assert.equal(rt.getStats().totalExecutions, before, 'nothing ran');
});

test('items that are not an array are a TypeError; more than the limit a RangeError', async () => {
  for (const items of [undefined, null, {}, 'abc', 3, { length: 1, 0: { code: 'return 1', context: context() } }]) {
    await assert.rejects(rt.executeBatch(items), { name: 'TypeError', message: 'executeBatch(items): items must be an array' });
  }
  const max = contract.limits.answers;
  const over = new Array(max + 1).fill({ code: 'return 1', context: context() });
  await assert.rejects(rt.executeBatch(over), { name: 'RangeError', message: `executeBatch(items): at most ${max} items per batch, got ${max + 1}` });
});

test('after shutdown() executeBatch rejects with SHUT_DOWN', async () => {
  const r2 = new NexusRuntime(testConfig({ workers: 1 }));
  const inflight = r2.executeBatch([{ code: 'return 1', context: context() }, { code: 'return 2', context: context() }]);
  const done = r2.shutdown();
  await assert.rejects(r2.executeBatch([{ code: 'return 1', context: context() }]), { code: 'SHUT_DOWN' });
  // A batch already submitted still settles, one result per item: what ran,
  // or the error executeHandler gives a job shutdown() took off the queue.
  const results = await inflight;
  assert.equal(results.length, 2);
  results.forEach((r, i) => {
    if (r.status === 'success') assert.equal(r.returnValue, i + 1);
    else assert.deepEqual([r.error.code, r.error.message], ['INTERNAL_ERROR', 'runtime shut down before the execution started']);
  });
  await done;
  await assert.rejects(r2.executeBatch([]), { code: 'SHUT_DOWN' });
});

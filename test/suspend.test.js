'use strict';
// Suspend/resume at the runtime level, against the real native runtime:
// `await $ext.x.m()` parks the execution, resumeHandler/resumeAll continue it.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { ALL_CAPS, context, runtime } = require('./helpers');

const REGISTRY = { http: ['get', 'post'], kv: ['get'] };
const HEX_ID = /^[0-9a-f]{32}$/;
const NOT_FOUND = { code: 'SUSPENSION_NOT_FOUND' };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const ok = (value) => ({ success: true, value });
const fail = (error) => ({ success: false, error });
const byKey = (list) => [...list].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

const rt = runtime({ workers: 2 });
test.after(() => rt.shutdown());
const ctx = (over = {}) => context({ extensionRegistry: REGISTRY, ...over });
const run = (code, over, timeout, r = rt) => r.executeHandler(code, ctx(over), timeout);

function assertSuspended(r) {
  assert.equal(r.status, 'suspended', `expected suspended, got ${r.status} ${JSON.stringify(r.error)}`);
  assert.ok(r.suspension, 'suspension present');
  assert.match(r.suspension.suspensionId, HEX_ID);
  assert.ok(Array.isArray(r.pendingCalls) && r.pendingCalls.length > 0, 'pendingCalls present');
  assert.deepEqual(r.suspension, r.pendingCalls[0]);
  for (const c of r.pendingCalls) assert.match(c.suspensionId, HEX_ID);
  return r;
}

function assertError(r, code) {
  assert.equal(r.status, 'error', `expected error ${code}, got ${r.status} ${JSON.stringify(r.returnValue)}`);
  assert.equal(r.error.code, code, r.error.message);
  return r;
}

// Runs a handler to its end, answering every pending call with answer(call).
async function drive(code, answer, over, r = rt) {
  let res = await run(code, over, undefined, r);
  const seen = [];
  while (res.status === 'suspended') {
    seen.push(res);
    res = await r.resumeAll(res.pendingCalls.map((c) => ({ suspensionId: c.suspensionId, result: answer(c) })));
  }
  return { final: res, suspensions: seen };
}

test('suspended result: shape, 32-hex id, args copied at call time, effects since the previous result only', async () => {
  const code = `
    $state.a = 1; $emit('e1', { n: 1 }); $view.focus('f1'); $log('before');
    const q = { page: 1, tags: ['x'] };
    const p = $ext.http.get('/items', q);
    q.page = 2; q.tags.push('y'); q.added = true;
    const v = await p;
    $state.b = v; $emit('e2', v); $view.scrollTo('list', v); $log.warn('middle');
    const w = await $ext.kv.get('key');
    $state.c = w; $emit('e3'); $log.error('after');
    return { v, w, a: $state.a, b: $state.b }`;
  const r1 = assertSuspended(await run(code));
  assert.deepEqual(r1.suspension.extensionName, 'http');
  assert.deepEqual(r1.suspension.method, 'get');
  assert.deepEqual(r1.suspension.args, ['/items', { page: 1, tags: ['x'] }]);
  assert.equal(r1.pendingCalls.length, 1);
  assert.equal(r1.returnValue, undefined);
  assert.equal(r1.error, undefined);
  assert.deepEqual(r1.stateMutations, [{ key: 'a', operation: 'set', value: 1 }]);
  assert.deepEqual(r1.events, [{ name: 'e1', payload: { n: 1 } }]);
  assert.deepEqual(r1.viewCommands, [{ type: 'focus', componentId: 'f1', args: {} }]);
  assert.deepEqual(r1.logs, [{ level: 'info', message: 'before' }]);
  assert.equal(typeof r1.metrics?.durationUs, 'number');

  const r2 = assertSuspended(await rt.resumeHandler(r1.suspension.suspensionId, ok(7)));
  assert.notEqual(r2.suspension.suspensionId, r1.suspension.suspensionId);
  assert.deepEqual(
    { extensionName: r2.suspension.extensionName, method: r2.suspension.method, args: r2.suspension.args },
    { extensionName: 'kv', method: 'get', args: ['key'] },
  );
  assert.deepEqual(r2.stateMutations, [{ key: 'b', operation: 'set', value: 7 }]);
  assert.deepEqual(r2.events, [{ name: 'e2', payload: 7 }]);
  assert.deepEqual(r2.viewCommands, [{ type: 'scrollTo', componentId: 'list', args: { position: 7 } }]);
  assert.deepEqual(r2.logs, [{ level: 'warn', message: 'middle' }]);

  const r3 = await rt.resumeHandler(r2.suspension.suspensionId, ok('w'));
  assert.equal(r3.status, 'success');
  assert.deepEqual(r3.returnValue, { v: 7, w: 'w', a: 1, b: 7 });
  assert.deepEqual(r3.stateMutations, [{ key: 'c', operation: 'set', value: 'w' }]);
  assert.equal(r3.events.length, 1);
  assert.equal(r3.events[0].name, 'e3');
  assert.deepEqual(r3.viewCommands, []);
  assert.deepEqual(r3.logs, [{ level: 'error', message: 'after' }]);
  assert.equal(r3.suspension, undefined);
  assert.equal(r3.pendingCalls, undefined);
});

test('suspension ids are distinct across executions', async () => {
  const results = await Promise.all(Array.from({ length: 20 }, () => run('return await $ext.kv.get(1)')));
  const ids = new Set(results.map((r) => assertSuspended(r).suspension.suspensionId));
  assert.equal(ids.size, 20);
  for (const id of ids) assert.equal((await rt.resumeHandler(id, ok(1))).status, 'success');
});

test('$ext exposes exactly the registry', async () => {
  const r = await run(`return {
      get: typeof $ext.http.get, post: typeof $ext.http.post, put: typeof $ext.http.put,
      kvGet: typeof $ext.kv.get, kvSet: typeof $ext.kv.set, other: typeof $ext.other,
      proto: typeof $ext.http.toString === 'function' ? 'has-toString' : 'no-toString' }`);
  assert.equal(r.status, 'success');
  assert.equal(r.returnValue.get, 'function');
  assert.equal(r.returnValue.post, 'function');
  assert.equal(r.returnValue.put, 'undefined');
  assert.equal(r.returnValue.kvGet, 'function');
  assert.equal(r.returnValue.kvSet, 'undefined');
  assert.equal(r.returnValue.other, 'undefined');

  const empty = await run('return [typeof $ext, typeof $ext.http]', { extensionRegistry: {} });
  assert.deepEqual(empty.returnValue, ['object', 'undefined']);
  const noReg = await rt.executeHandler('return typeof $ext.http', context());
  assert.deepEqual(noReg.returnValue, 'undefined');
  // Calling a name outside the registry is a plain TypeError in the handler, not a host call.
  const bad = await run('try { await $ext.http.put("/") } catch (e) { return e instanceof TypeError }');
  assert.equal(bad.status, 'success');
  assert.equal(bad.returnValue, true);
});

test('ext calls need ext:NAME or ext:*; a denial is thrown inside the handler', async () => {
  const noExt = ALL_CAPS.filter((c) => c !== 'ext:*');
  const caught = await run('try { await $ext.http.get("/") } catch (e) { return [e.code, e.message, e instanceof Error] }', {
    capabilities: noExt,
  });
  assert.equal(caught.status, 'success');
  assert.deepEqual(caught.returnValue, ['PERMISSION_DENIED', 'Permission denied: missing capability ext:http', true]);

  const uncaught = assertError(await run('$state.x = 1; await $ext.http.get("/")', { capabilities: noExt }), 'PERMISSION_DENIED');
  assert.deepEqual(uncaught.stateMutations, []);

  // ext:kv grants kv only.
  const onlyKv = await run(
    'const out = []; try { $ext.http.post(1) } catch (e) { out.push(e.code) } out.push(await $ext.kv.get(2)); return out',
    { capabilities: ['ext:kv'] },
  );
  assertSuspended(onlyKv);
  assert.equal(onlyKv.pendingCalls.length, 1, 'the denied call is not pending');
  assert.deepEqual([onlyKv.suspension.extensionName, onlyKv.suspension.method, onlyKv.suspension.args], ['kv', 'get', [2]]);
  const done = await rt.resumeHandler(onlyKv.suspension.suspensionId, ok('v'));
  assert.deepEqual(done.returnValue, ['PERMISSION_DENIED', 'v']);

  // ext:* grants every extension.
  const all = assertSuspended(await run('return [await $ext.http.post(1), await $ext.kv.get(2)]', { capabilities: ['ext:*'] }));
  const all2 = assertSuspended(await rt.resumeHandler(all.suspension.suspensionId, ok('a')));
  assert.equal(all2.suspension.extensionName, 'kv');
  const all3 = await rt.resumeHandler(all2.suspension.suspensionId, ok('b'));
  assert.deepEqual(all3.returnValue, ['a', 'b']);
});

test('a granted call returns a Promise', async () => {
  const r = assertSuspended(await run('const p = $ext.http.get(1); const isP = p instanceof Promise; await p; return isP'));
  const done = await rt.resumeHandler(r.suspension.suspensionId, ok(null));
  assert.equal(done.status, 'success');
  assert.equal(done.returnValue, true);
});

const PARALLEL = `
  $log('start');
  const [a, b, c] = await Promise.all([$ext.http.get('A'), $ext.http.post('B', { x: 1 }), $ext.kv.get('C')]);
  $state.out = a + b + c;
  return a + b + c`;

test('three parallel calls are reported together and answered in ONE resumeAll', async () => {
  const r = assertSuspended(await run(PARALLEL));
  assert.equal(r.pendingCalls.length, 3);
  assert.deepEqual(
    r.pendingCalls.map((c) => [c.extensionName, c.method, c.args]),
    [
      ['http', 'get', ['A']],
      ['http', 'post', ['B', { x: 1 }]],
      ['kv', 'get', ['C']],
    ],
  );
  assert.equal(new Set(r.pendingCalls.map((c) => c.suspensionId)).size, 3);
  assert.equal(rt.getStats().suspendedExecutions, 1, 'three pending calls are one parked execution');
  const done = await rt.resumeAll(r.pendingCalls.map((c) => ({ suspensionId: c.suspensionId, result: ok(c.args[0].toLowerCase()) })));
  assert.equal(done.status, 'success');
  assert.equal(done.returnValue, 'abc');
  assert.deepEqual(done.stateMutations, [{ key: 'out', operation: 'set', value: 'abc' }]);
  assert.deepEqual(done.logs, []);
  assert.equal(rt.getStats().suspendedExecutions, 0);
});

test('three parallel calls answered one by one (out of order): intermediate results list the remaining calls', async () => {
  const r = assertSuspended(await run(PARALLEL));
  const [c0, c1, c2] = r.pendingCalls;
  const s1 = assertSuspended(await rt.resumeHandler(c1.suspensionId, ok('b')));
  assert.deepEqual(s1.pendingCalls, [c0, c2]);
  assert.deepEqual(s1.suspension, c0, 'suspension is the oldest unanswered call');
  assert.deepEqual([s1.stateMutations, s1.events, s1.viewCommands, s1.logs], [[], [], [], []]);
  const s2 = assertSuspended(await rt.resumeHandler(c0.suspensionId, ok('a')));
  assert.deepEqual(s2.pendingCalls, [c2]);
  assert.deepEqual(s2.suspension, c2);
  const done = await rt.resumeHandler(c2.suspensionId, ok('c'));
  assert.equal(done.status, 'success');
  assert.equal(done.returnValue, 'abc');
});

test('resumeAll with a subset of the pending calls leaves the rest pending', async () => {
  const r = assertSuspended(await run(PARALLEL));
  const [c0, c1, c2] = r.pendingCalls;
  const s = assertSuspended(
    await rt.resumeAll([
      { suspensionId: c2.suspensionId, result: ok('c') },
      { suspensionId: c0.suspensionId, result: ok('a') },
    ]),
  );
  assert.deepEqual(s.pendingCalls, [c1]);
  assert.equal((await rt.resumeHandler(c1.suspensionId, ok('b'))).returnValue, 'abc');
});

test('a handler suspending 100 times in a loop', async () => {
  const { final, suspensions } = await drive(
    'let s = 0; for (let i = 0; i < 100; i++) s += await $ext.kv.get(i); $state.s = s; return s',
    (c) => ok(c.args[0] * 2 + 1),
  );
  assert.equal(suspensions.length, 100);
  suspensions.forEach((s, i) => assert.deepEqual(s.suspension.args, [i]));
  assert.equal(new Set(suspensions.map((s) => s.suspension.suspensionId)).size, 100);
  assert.equal(final.status, 'success');
  assert.equal(final.returnValue, 2 * 4950 + 100);
  assert.deepEqual(final.stateMutations, [{ key: 's', operation: 'set', value: 10000 }]);
  assert.equal(rt.getStats().suspendedExecutions, 0);
});

test('a failed call rejects the promise with an Error the handler can catch', async () => {
  const r = assertSuspended(
    await run(`try { await $ext.http.get('/'); return 'resolved' }
               catch (e) { return [Object.getPrototypeOf(e) === Error.prototype, e.name, e.message, typeof e.stack] }`),
  );
  const done = await rt.resumeHandler(r.suspension.suspensionId, fail('boom'));
  assert.equal(done.status, 'success');
  assert.deepEqual(done.returnValue, [true, 'Error', 'boom', 'string']);
});

test('a failed call the handler does not catch ends with EXECUTION_ERROR', async () => {
  const r = assertSuspended(await run("$state.before = 1; const v = await $ext.http.get('/'); $state.after = v"));
  const done = assertError(await rt.resumeHandler(r.suspension.suspensionId, fail('boom')), 'EXECUTION_ERROR');
  assert.equal(done.error.message, 'Error: boom');
  assert.deepEqual(done.stateMutations, []);
  assert.equal(rt.getStats().suspendedExecutions, 0);
});

test('one rejected call among parallel ones: Promise.all rejects, allSettled sees both', async () => {
  const r = assertSuspended(
    await run(`const s = await Promise.allSettled([$ext.http.get(1), $ext.kv.get(2)]);
               return s.map((x) => x.status === 'fulfilled' ? x.value : x.reason.message)`),
  );
  const [c0, c1] = r.pendingCalls;
  const done = await rt.resumeAll([
    { suspensionId: c0.suspensionId, result: ok('fine') },
    { suspensionId: c1.suspensionId, result: fail('nope') },
  ]);
  assert.deepEqual(done.returnValue, ['fine', 'nope']);
});

test('unknown ids: well-formed random hex and garbage strings reject with SUSPENSION_NOT_FOUND', async () => {
  const r = assertSuspended(await run('return await $ext.kv.get(1)'));
  const id = r.suspension.suspensionId;
  const bogus = [
    crypto.randomBytes(16).toString('hex'),
    '0'.repeat(32),
    '',
    'not-an-id',
    'g'.repeat(32),
    id.slice(0, 31),
    id + '0',
    `${id.slice(0, 16)}\u0000${id.slice(17)}`,
    'x'.repeat(10000),
  ];
  for (const b of bogus) {
    await assert.rejects(rt.resumeHandler(b, ok(1)), (err) => {
      assert.ok(err instanceof Error);
      assert.equal(err.code, 'SUSPENSION_NOT_FOUND', `${JSON.stringify(b.slice(0, 40))}: ${err.message}`);
      return true;
    });
  }
  // None of that disturbed the real one.
  assert.equal(rt.getStats().suspendedExecutions, 1);
  assert.equal((await rt.resumeHandler(id, ok(5))).returnValue, 5);
});

test('an already-resumed id rejects with SUSPENSION_NOT_FOUND', async () => {
  const r = assertSuspended(await run('return await $ext.kv.get(1)'));
  const id = r.suspension.suspensionId;
  assert.equal((await rt.resumeHandler(id, ok(1))).status, 'success');
  await assert.rejects(rt.resumeHandler(id, ok(2)), NOT_FOUND);
  await assert.rejects(rt.resumeAll([{ suspensionId: id, result: ok(2) }]), NOT_FOUND);

  // An answered call of a still-parked execution.
  const p = assertSuspended(await run('return (await Promise.all([$ext.kv.get(1), $ext.kv.get(2)])).join()'));
  const [c0, c1] = p.pendingCalls;
  assertSuspended(await rt.resumeHandler(c0.suspensionId, ok('x')));
  await assert.rejects(rt.resumeHandler(c0.suspensionId, ok('again')), NOT_FOUND);
  assert.equal((await rt.resumeHandler(c1.suspensionId, ok('y'))).returnValue, 'x,y');
});

test('resumeAll across two executions is refused', async () => {
  const a = assertSuspended(await run('return await $ext.kv.get("a")'));
  const b = assertSuspended(await run('return await $ext.kv.get("b")'));
  await assert.rejects(
    rt.resumeAll([
      { suspensionId: a.suspension.suspensionId, result: ok(1) },
      { suspensionId: b.suspension.suspensionId, result: ok(2) },
    ]),
    { name: 'Error', code: 'SUSPENSION_NOT_FOUND', message: 'these suspension ids belong to different executions' },
  );
  // The refused round did nothing: both are still resumable.
  assert.equal((await rt.resumeHandler(a.suspension.suspensionId, ok(1))).returnValue, 1);
  assert.equal((await rt.resumeHandler(b.suspension.suspensionId, ok(2))).returnValue, 2);
});

test('an unencodable value rejects with a TypeError and leaves the suspension resumable', async () => {
  const r = assertSuspended(await run('return await $ext.kv.get(1)'));
  const id = r.suspension.suspensionId;
  const circular = { a: 1 };
  circular.self = circular;
  const values = [
    [() => 1, 'result.value is a function'],
    [circular, 'result.value.self is a circular reference'],
    [Symbol('s'), 'result.value is a Symbol'],
    [{ nested: [1, { f() {} }] }, 'result.value.nested[1].f is a function'],
    [[Symbol.iterator], 'result.value[0] is a Symbol'],
  ];
  for (const [value, what] of values) {
    await assert.rejects(rt.resumeHandler(id, ok(value)), { name: 'TypeError', message: `${what} and cannot cross into the sandbox` });
    assert.equal(rt.getStats().suspendedExecutions, 1);
  }
  // A round with one bad value is refused as a whole.
  const p = assertSuspended(await run('return (await Promise.all([$ext.kv.get(1), $ext.kv.get(2)])).join()'));
  const [c0, c1] = p.pendingCalls;
  await assert.rejects(
    rt.resumeAll([
      { suspensionId: c0.suspensionId, result: ok('fine') },
      { suspensionId: c1.suspensionId, result: ok(circular) },
    ]),
    { name: 'TypeError', message: 'answers[1].result.value.self is a circular reference and cannot cross into the sandbox' },
  );
  const fixed = await rt.resumeAll([
    { suspensionId: c0.suspensionId, result: ok('fine') },
    { suspensionId: c1.suspensionId, result: ok('ok') },
  ]);
  assert.equal(fixed.returnValue, 'fine,ok');

  const done = await rt.resumeHandler(id, ok({ back: [1, 'two'] }));
  assert.equal(done.status, 'success');
  assert.deepEqual(done.returnValue, { back: [1, 'two'] });
});

test('cancelSuspended discards a parked execution; unknown ids give false', async () => {
  const r = assertSuspended(await run('$state.x = 1; return await $ext.kv.get(1)'));
  const id = r.suspension.suspensionId;
  assert.equal(rt.getStats().suspendedExecutions, 1);
  assert.equal(await rt.cancelSuspended(id), true);
  await assert.rejects(rt.resumeHandler(id, ok(1)), NOT_FOUND);
  assert.equal(await rt.cancelSuspended(id), false);
  assert.equal(await rt.cancelSuspended(crypto.randomBytes(16).toString('hex')), false);
  assert.equal(await rt.cancelSuspended('garbage'), false);

  // Any pending id of an execution cancels the whole execution.
  const p = assertSuspended(await run('await Promise.all([$ext.kv.get(1), $ext.kv.get(2)])'));
  const [c0, c1] = p.pendingCalls;
  assert.equal(await rt.cancelSuspended(c1.suspensionId), true);
  await assert.rejects(rt.resumeHandler(c0.suspensionId, ok(1)), NOT_FOUND);
  // The runtime keeps serving.
  assert.equal((await run('return 1')).returnValue, 1);
  await sleep(50);
  assert.equal(rt.getStats().suspendedExecutions, 0);
});

test('getStats() reflects a cancel as soon as cancelSuspended() has resolved true', async () => {
  // Repeated: the count must never lag behind the resolved cancel.
  for (let i = 0; i < 20; i++) {
    const r = assertSuspended(await run('return await $ext.kv.get(1)'));
    assert.equal(rt.getStats().suspendedExecutions, 1);
    assert.equal(await rt.cancelSuspended(r.suspension.suspensionId), true);
    assert.equal(rt.getStats().suspendedExecutions, 0, `iteration ${i}: still counted after cancelSuspended resolved true`);
  }
});

test('suspensionTimeoutMs: a parked execution not resumed in time is discarded', async () => {
  const r2 = runtime({ workers: 2, suspensionTimeoutMs: 100 });
  try {
    const r = assertSuspended(await run('return await $ext.kv.get(1)', {}, undefined, r2));
    assert.equal(r2.getStats().suspendedExecutions, 1);
    await sleep(500);
    assert.equal(r2.getStats().suspendedExecutions, 0);
    await assert.rejects(r2.resumeHandler(r.suspension.suspensionId, ok(1)), NOT_FOUND);
    assert.equal(await r2.cancelSuspended(r.suspension.suspensionId), false);
    // The runtime keeps serving, and a prompt resume still works.
    const q = assertSuspended(await run('return await $ext.kv.get(1)', {}, undefined, r2));
    assert.equal((await r2.resumeHandler(q.suspension.suspensionId, ok(9))).returnValue, 9);
  } finally {
    await r2.shutdown();
  }
});

test('suspensionTimeoutMs applies to each parking, not to the whole execution', async () => {
  const r2 = runtime({ workers: 2, suspensionTimeoutMs: 1000 });
  try {
    let r = await run('let s = 0; for (let i = 0; i < 5; i++) s += await $ext.kv.get(i); return s', {}, undefined, r2);
    for (let i = 0; i < 5; i++) {
      assertSuspended(r);
      await sleep(250); // 5 × 250 ms parked in total, more than 1000, each parking well under it
      r = await r2.resumeHandler(r.suspension.suspensionId, ok(i));
    }
    assert.equal(r.status, 'success');
    assert.equal(r.returnValue, 10);
  } finally {
    await r2.shutdown();
  }
});

test('shutdown() discards parked executions; their ids reject with SUSPENSION_NOT_FOUND', async () => {
  const r2 = runtime({ workers: 1 });
  const a = assertSuspended(await run('return await $ext.kv.get(1)', {}, undefined, r2));
  const b = assertSuspended(await run('return await Promise.all([$ext.kv.get(1), $ext.http.get(2)])', {}, undefined, r2));
  assert.equal(r2.getStats().suspendedExecutions, 2);
  await r2.shutdown();
  await assert.rejects(r2.resumeHandler(a.suspension.suspensionId, ok(1)), NOT_FOUND);
  await assert.rejects(
    r2.resumeAll(b.pendingCalls.map((c) => ({ suspensionId: c.suspensionId, result: ok(1) }))),
    NOT_FOUND,
  );
  assert.equal(await r2.cancelSuspended(b.suspension.suspensionId), false);
});

test('maxSuspended: a suspension beyond it ends that execution with RESOURCE_LIMIT', async () => {
  const r2 = runtime({ workers: 2, maxSuspended: 2 });
  try {
    const code = '$state.x = $args.i; $emit("e"); return await $ext.kv.get($args.i)';
    const a = assertSuspended(await run(code, { args: { i: 1 } }, undefined, r2));
    const b = assertSuspended(await run(code, { args: { i: 2 } }, undefined, r2));
    const c = assertError(await run(code, { args: { i: 3 } }, undefined, r2), 'RESOURCE_LIMIT');
    assert.deepEqual(c.stateMutations, []);
    assert.deepEqual(c.events, []);
    assert.equal(r2.getStats().suspendedExecutions, 2);
    // Handlers that do not suspend are unaffected.
    assert.equal((await run('return 4', {}, undefined, r2)).returnValue, 4);
    assert.equal((await r2.resumeHandler(a.suspension.suspensionId, ok('A'))).returnValue, 'A');
    // A slot is free again.
    const d = assertSuspended(await run(code, { args: { i: 4 } }, undefined, r2));
    assert.equal((await r2.resumeHandler(b.suspension.suspensionId, ok('B'))).returnValue, 'B');
    assert.equal((await r2.resumeHandler(d.suspension.suspensionId, ok('D'))).returnValue, 'D');
    assert.equal(r2.getStats().suspendedExecutions, 0);
    assert.equal(r2.getStats().errorsByCode.RESOURCE_LIMIT, 1);
  } finally {
    await r2.shutdown();
  }
});

test('maxSuspended: 0 allows no suspension at all', async () => {
  const r2 = runtime({ workers: 1, maxSuspended: 0 });
  try {
    assertError(await run('return await $ext.kv.get(1)', {}, undefined, r2), 'RESOURCE_LIMIT');
    assert.equal(r2.getStats().suspendedExecutions, 0);
  } finally {
    await r2.shutdown();
  }
});

test('the timeout counts run time only, not time suspended', async () => {
  const r = assertSuspended(await run('const v = await $ext.kv.get(1); return v + 1', {}, 200));
  await sleep(400);
  const done = await rt.resumeHandler(r.suspension.suspensionId, ok(1));
  assert.equal(done.status, 'success', JSON.stringify(done.error));
  assert.equal(done.returnValue, 2);
});

test('the timeout is the total run time over all segments', async () => {
  // 300 ms of work before the await and 300 ms after, timeout 500 ms: each
  // segment fits (with room to spare on a loaded machine), their sum does not.
  const code = `const burn = (ms) => { const end = Date.now() + ms; while (Date.now() < end) {} };
    burn(300); const v = await $ext.kv.get(1); burn(300); return v`;
  const r = assertSuspended(await run(code, {}, 500));
  const done = await rt.resumeHandler(r.suspension.suspensionId, ok(1));
  assertError(done, 'TIMEOUT');
  assert.equal(rt.getStats().suspendedExecutions, 0);
});

test('state across suspensions: in-place changes, keys not repeated, own writes visible', async () => {
  const r1 = assertSuspended(
    await run(
      `$state.items.push(1); $state.once = 'set'; delete $state.gone;
       const v = await $ext.kv.get(1);
       $state.items.push(2);
       return { items: $state.items, once: $state.once, gone: 'gone' in $state, v }`,
      { stateSnapshot: { items: [0], gone: true, keep: 1 } },
    ),
  );
  // Order: as in a plain execution (direct sets/deletes, then in-place changes); compared by key here.
  assert.deepEqual(byKey(r1.stateMutations), [
    { key: 'gone', operation: 'delete' },
    { key: 'items', operation: 'set', value: [0, 1] },
    { key: 'once', operation: 'set', value: 'set' },
  ]);
  const done = await rt.resumeHandler(r1.suspension.suspensionId, ok('v'));
  assert.equal(done.status, 'success');
  assert.deepEqual(done.returnValue, { items: [0, 1, 2], once: 'set', gone: false, v: 'v' });
  assert.deepEqual(done.stateMutations, [{ key: 'items', operation: 'set', value: [0, 1, 2] }]);
});

test('deleting a key that an earlier segment deleted records nothing (it no longer exists)', async () => {
  const r1 = assertSuspended(await run(
    "delete $state.gone; $state.temp = 1; delete $state.temp; await $ext.kv.get(1); delete $state.gone; delete $state.temp; return 'gone' in $state",
    { stateSnapshot: { gone: true } },
  ));
  assert.deepEqual(r1.stateMutations, [{ key: 'gone', operation: 'delete' }, { key: 'temp', operation: 'delete' }]);
  const done = await rt.resumeHandler(r1.suspension.suspensionId, ok(1));
  assert.equal(done.returnValue, false);
  assert.deepEqual(done.stateMutations, []);
});

test('a key set before the await and changed in place after it is reported again', async () => {
  const r1 = assertSuspended(await run('$state.o = { n: 1 }; await $ext.kv.get(1); $state.o.n = 2'));
  assert.deepEqual(r1.stateMutations, [{ key: 'o', operation: 'set', value: { n: 1 } }]);
  const done = await rt.resumeHandler(r1.suspension.suspensionId, ok(null));
  assert.deepEqual(done.stateMutations, [{ key: 'o', operation: 'set', value: { n: 2 } }]);
});

test('in-place change of a key read without state:write ends with PERMISSION_DENIED', async () => {
  const caps = ['state:read:items', 'ext:*'];
  const snap = { stateSnapshot: { items: [0] }, capabilities: caps };
  // No suspension at all.
  assertError(await run('$state.items.push(1); return 1', snap), 'PERMISSION_DENIED');
  // Before the await: the change must not be reported as a suspended result's mutation.
  const before = await run('$state.items.push(1); await $ext.kv.get(1); return 1', snap);
  assertError(before, 'PERMISSION_DENIED');
  assert.deepEqual(before.stateMutations, []);
  // After the await.
  const r = assertSuspended(await run('const items = $state.items; await $ext.kv.get(1); items.push(2); return items.length', snap));
  assert.deepEqual(r.stateMutations, []);
  const after = assertError(await rt.resumeHandler(r.suspension.suspensionId, ok(1)), 'PERMISSION_DENIED');
  assert.deepEqual(after.stateMutations, []);
  // Reading without changing is fine.
  const ro = assertSuspended(await run('const n = $state.items.length; await $ext.kv.get(1); return $state.items[0] + n', snap));
  assert.equal((await rt.resumeHandler(ro.suspension.suspensionId, ok(1))).returnValue, 1);
  assert.equal(rt.getStats().suspendedExecutions, 0);
});

test('capability denials still apply after a resume', async () => {
  const caps = ['ext:kv', 'state:read:ok', 'state:write:ok', 'events:emit:ok', 'view:update:ok'];
  const r = assertSuspended(
    await run(
      `await $ext.kv.get(1);
       const out = [];
       const tries = [() => $state.secret, () => { $state.secret = 1 }, () => { delete $state.secret },
                      () => $emit('bad'), () => $view.focus('bad'), () => $ext.http.get('/')];
       for (const f of tries) { try { f(); out.push('allowed') } catch (e) { out.push(e.code) } }
       $state.ok = $state.ok + 1; $emit('ok', 1); $view.focus('ok');
       return out`,
      { capabilities: caps, stateSnapshot: { ok: 1, secret: 's' } },
    ),
  );
  const done = await rt.resumeHandler(r.suspension.suspensionId, ok(null));
  assert.equal(done.status, 'success', JSON.stringify(done.error));
  assert.deepEqual(done.returnValue, Array(6).fill('PERMISSION_DENIED'));
  assert.deepEqual(done.stateMutations, [{ key: 'ok', operation: 'set', value: 2 }]);
  assert.deepEqual(done.events, [{ name: 'ok', payload: 1 }]);
  assert.deepEqual(done.viewCommands, [{ type: 'focus', componentId: 'ok', args: {} }]);

  // Uncaught denials after a resume end the execution with that code, one per family.
  for (const stmt of ['$state.secret', '$state.secret = 1', "$emit('bad')", "$view.focus('bad')", "await $ext.http.get('/')"]) {
    const s = assertSuspended(await run(`$state.ok = 5; await $ext.kv.get(1); ${stmt}`, { capabilities: caps, stateSnapshot: { ok: 1 } }));
    const e = assertError(await rt.resumeHandler(s.suspension.suspensionId, ok(null)), 'PERMISSION_DENIED');
    assert.deepEqual(e.stateMutations, [], stmt);
  }
});

test('stats: suspendedExecutions and executionsByStatus count suspended results', async () => {
  const r2 = runtime({ workers: 1 });
  try {
    const a = assertSuspended(await run('return (await $ext.kv.get(1)) + (await $ext.kv.get(2))', {}, undefined, r2));
    let s = r2.getStats();
    assert.equal(s.suspendedExecutions, 1);
    assert.deepEqual(s.executionsByStatus, { success: 0, error: 0, suspended: 1 });
    const a2 = assertSuspended(await r2.resumeHandler(a.suspension.suspensionId, ok(1)));
    s = r2.getStats();
    assert.equal(s.suspendedExecutions, 1);
    assert.deepEqual(s.executionsByStatus, { success: 0, error: 0, suspended: 2 });
    assert.equal((await r2.resumeHandler(a2.suspension.suspensionId, ok(2))).returnValue, 3);
    s = r2.getStats();
    assert.equal(s.suspendedExecutions, 0);
    assert.deepEqual(s.executionsByStatus, { success: 1, error: 0, suspended: 2 });
    const b = assertSuspended(await run('await $ext.kv.get(1)', {}, undefined, r2));
    assertError(await r2.resumeHandler(b.suspension.suspensionId, fail('x')), 'EXECUTION_ERROR');
    s = r2.getStats();
    assert.equal(s.suspendedExecutions, 0);
    assert.deepEqual(s.executionsByStatus, { success: 1, error: 1, suspended: 3 });
    assert.equal(s.errorsByCode.EXECUTION_ERROR, 1);
  } finally {
    await r2.shutdown();
  }
});

test('parked executions do not block new ones (maxInstances: 2, 10 parked at once)', { timeout: 4000 }, async () => {
  const r2 = runtime({ workers: 2, maxInstances: 2 });
  try {
    const code = '$state.i = $args.i; const v = await $ext.kv.get($args.i); return [$args.i, v]';
    const parked = await Promise.all(
      Array.from({ length: 10 }, (_, i) => run(code, { args: { i }, stateSnapshot: {} }, undefined, r2)),
    );
    parked.forEach((r, i) => {
      assertSuspended(r);
      assert.deepEqual(r.suspension.args, [i]);
      assert.deepEqual(r.stateMutations, [{ key: 'i', operation: 'set', value: i }]);
    });
    assert.equal(r2.getStats().suspendedExecutions, 10);
    // A plain execution still runs while all ten are parked.
    assert.equal((await run('return 42', {}, undefined, r2)).returnValue, 42);
    // Resume in reverse order; each gets its own answer.
    const done = await Promise.all(
      parked.reverse().map((r) => r2.resumeHandler(r.suspension.suspensionId, ok(`v${r.suspension.args[0]}`))),
    );
    done.reverse().forEach((r, i) => {
      assert.equal(r.status, 'success');
      assert.deepEqual(r.returnValue, [i, `v${i}`]);
    });
    assert.equal(r2.getStats().suspendedExecutions, 0);
  } finally {
    await r2.shutdown();
  }
});

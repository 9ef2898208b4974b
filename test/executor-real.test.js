'use strict';
// WasmSandboxExecutor driving the REAL native runtime through suspend/resume.
const test = require('node:test');
const assert = require('node:assert/strict');
const { deferred, runtime } = require('./helpers');
const { WasmSandboxExecutor } = require('..');
const errors = require('../lib/errors');

const rt = runtime({ workers: 2 });
test.after(() => rt.shutdown());
const executor = new WasmSandboxExecutor(rt);

const tick = () => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls a condition (for the runtime's own bookkeeping after a cancel).
async function waitFor(pred, what, ms = 10000) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// A runtime wrapper that counts resume rounds and the answers in each.
function spied() {
  const rounds = [];
  const wrapped = {
    executeHandler: (...a) => rt.executeHandler(...a),
    executeCompiledHandler: (...a) => rt.executeCompiledHandler(...a),
    inferCapabilities: (code) => rt.inferCapabilities(code),
    cancelSuspended: (id) => rt.cancelSuspended(id),
    resumeAll: (answers) => {
      rounds.push(answers.length);
      return rt.resumeAll(answers);
    },
  };
  return { exec: new WasmSandboxExecutor(wrapped), rounds };
}

const base = { panelId: 'p1', handlerName: 'h' };

test('blind interval: effects reach the host before the extension call is answered', async () => {
  const log = [];
  const reply = deferred();
  const called = deferred();
  const state = { loading: false, other: 'kept' };
  const http = {
    get(url) {
      log.push(`http.get ${url}`);
      called.resolve();
      return reply.promise;
    },
  };
  const mutationCalls = [];
  const done = executor.execute({
    ...base,
    code: "$state.loading = true; $emit('started', 1); const r = await $ext.http.get('/data'); $state.data = r; $state.loading = false; return r.n",
    state,
    capabilities: ['state:write:loading', 'state:write:data', 'events:emit:started', 'ext:http'],
    extensions: { http },
    onMutations: (m) => {
      log.push(`onMutations loading=${state.loading}`);
      mutationCalls.push(structuredClone(m));
    },
    onEvents: (e) => log.push(`onEvents ${e.map((x) => x.name).join()}`),
  });
  await called.promise;
  // The extension call is in flight and unanswered: the host already shows the loading state.
  assert.equal(state.loading, true);
  assert.equal(state.data, undefined);
  assert.deepEqual(mutationCalls, [[{ key: 'loading', operation: 'set', value: true }]]);
  assert.deepEqual(log, ['onMutations loading=true', 'onEvents started', 'http.get /data']);

  reply.resolve({ n: 5, rows: [1, 2] });
  assert.equal(await done, 5);
  assert.deepEqual(state, { loading: false, other: 'kept', data: { n: 5, rows: [1, 2] } });
  assert.deepEqual(mutationCalls[1], [
    { key: 'data', operation: 'set', value: { n: 5, rows: [1, 2] } },
    { key: 'loading', operation: 'set', value: false },
  ]);
  assert.equal(mutationCalls.length, 2);
  assert.equal(rt.getStats().suspendedExecutions, 0);
});

test('three parallel calls: all in flight at once, answered in one resume round', async () => {
  const { exec, rounds } = spied();
  const pending = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const allCalled = deferred();
  const call = (tag) => (x) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    const d = deferred();
    pending.push({ tag, x, d });
    if (pending.length === 3) allCalled.resolve();
    return d.promise.finally(() => inFlight--);
  };
  const done = exec.execute({
    ...base,
    code: "const [a, b, c] = await Promise.all([$ext.http.get('a'), $ext.http.post('b'), $ext.kv.get('c')]); $state.sum = a + b + c; return a + b + c",
    state: {},
    capabilities: ['ext:*', 'state:write:sum'],
    extensions: { http: { get: call('get'), post: call('post') }, kv: { get: call('kv') } },
  });
  await allCalled.promise;
  assert.equal(maxInFlight, 3);
  assert.deepEqual(
    pending.map((p) => [p.tag, p.x]),
    [
      ['get', 'a'],
      ['post', 'b'],
      ['kv', 'c'],
    ],
  );
  assert.deepEqual(rounds, []);
  // Answer in reverse order; the handler still gets each value in its place.
  for (const p of [...pending].reverse()) {
    p.d.resolve(p.x.toUpperCase());
    await tick();
  }
  assert.equal(await done, 'ABC');
  assert.deepEqual(rounds, [3], 'one resumeAll round carrying three answers');
  assert.equal(rt.getStats().suspendedExecutions, 0);
});

test('100 suspensions in a loop through the executor', async () => {
  const { exec, rounds } = spied();
  const state = {};
  let mutationCalls = 0;
  const seen = [];
  const value = await exec.execute({
    ...base,
    code: 'let s = 0; for (let i = 0; i < 100; i++) { $state.progress = i; s += await $ext.kv.get(i) } return s',
    state,
    capabilities: ['state:write:progress', 'ext:kv'],
    extensions: {
      kv: {
        async get(i) {
          seen.push(i);
          assert.equal(state.progress, i, 'progress applied before the call');
          return i * 2;
        },
      },
    },
    onMutations: () => mutationCalls++,
  });
  assert.equal(value, 9900);
  assert.equal(seen.length, 100);
  assert.deepEqual(seen, Array.from({ length: 100 }, (_, i) => i));
  assert.equal(rounds.length, 100);
  assert.equal(mutationCalls, 100);
  assert.deepEqual(state, { progress: 99 });
  assert.equal(rt.getStats().suspendedExecutions, 0);
});

test('extension failures: caught by the handler, or ExecutionError when uncaught', async () => {
  const extensions = {
    http: {
      get() {
        throw new Error('down');
      },
      async post() {
        throw new RangeError('async down');
      },
      fn() {
        return () => 1; // cannot cross into the sandbox
      },
    },
  };
  const caught = await executor.execute({
    ...base,
    code: `const out = [];
      for (const m of ['get', 'post', 'fn']) {
        try { await $ext.http[m](); out.push('resolved') } catch (e) { out.push([e instanceof Error, e.message]) }
      }
      return out`,
    state: {},
    capabilities: ['ext:http'],
    extensions,
  });
  assert.deepEqual(caught[0], [true, 'down']);
  assert.deepEqual(caught[1], [true, 'async down']);
  assert.equal(caught[2][0], true);
  assert.match(caught[2][1], /TypeError/);

  const state = { x: 0 };
  await assert.rejects(
    executor.execute({
      ...base,
      code: "$state.x = 1; await $ext.http.get(); $state.x = 2",
      state,
      capabilities: ['ext:http', 'state:write:x'],
      extensions,
    }),
    (err) => {
      assert.ok(err instanceof errors.ExecutionError, `${err.name}: ${err.message}`);
      assert.ok(err instanceof errors.NexusError);
      assert.equal(err.code, 'EXECUTION_ERROR');
      assert.match(err.message, /down/);
      return true;
    },
  );
  // Effects delivered at the suspension stay; nothing after it.
  assert.deepEqual(state, { x: 1 });
  assert.equal(rt.getStats().suspendedExecutions, 0);
});

test('capability inference fallback: no capabilities given, a normal handler works', async () => {
  const state = { count: 1, untouched: 'u' };
  const events = [];
  const value = await executor.execute({
    ...base,
    code: "const add = await $ext.kv.get('step'); $state.count = $state.count + add; $emit('counted', $state.count); return $state.count",
    state,
    extensions: { kv: { get: async (k) => (k === 'step' ? 10 : 0) } },
    onEvents: (e) => events.push(...e),
  });
  assert.equal(value, 11);
  assert.deepEqual(state, { count: 11, untouched: 'u' });
  assert.deepEqual(events, [{ name: 'counted', payload: 11 }]);
});

test('access outside the given capabilities: PermissionDeniedError', async () => {
  const state = { count: 1 };
  await assert.rejects(
    executor.execute({ ...base, code: '$state.count = 2', state, capabilities: ['state:read:count'] }),
    errors.PermissionDeniedError,
  );
  assert.deepEqual(state, { count: 1 });

  let called = false;
  await assert.rejects(
    executor.execute({
      ...base,
      code: "return await $ext.http.get('/')",
      state,
      capabilities: ['ext:kv'],
      extensions: { http: { get: () => (called = true) }, kv: { get: () => 1 } },
    }),
    (err) => {
      assert.ok(err instanceof errors.PermissionDeniedError, `${err.name}: ${err.message}`);
      assert.equal(err.code, 'PERMISSION_DENIED');
      assert.match(err.message, /ext:http/);
      return true;
    },
  );
  assert.equal(called, false);

  // A denial after a suspension.
  await assert.rejects(
    executor.execute({
      ...base,
      code: "await $ext.kv.get(1); $emit('nope')",
      state,
      capabilities: ['ext:kv'],
      extensions: { kv: { get: () => 1 } },
    }),
    errors.PermissionDeniedError,
  );
  assert.equal(rt.getStats().suspendedExecutions, 0);
});

test('abort during a suspension: AbortError, nothing left parked, late result ignored', async () => {
  const ac = new AbortController();
  const reply = deferred();
  const called = deferred();
  const state = {};
  let mutationCalls = 0;
  const done = executor.execute({
    ...base,
    code: "$state.loading = true; const r = await $ext.http.get('/slow'); $state.data = r; $state.loading = false; return r",
    state,
    capabilities: ['state:write:*', 'ext:http'],
    extensions: {
      http: {
        get() {
          called.resolve();
          return reply.promise;
        },
      },
    },
    signal: ac.signal,
    onMutations: () => mutationCalls++,
  });
  await called.promise;
  assert.equal(rt.getStats().suspendedExecutions, 1);
  const reason = new Error('user navigated away');
  ac.abort(reason);
  await assert.rejects(done, (err) => {
    assert.ok(err instanceof errors.AbortError, `${err.name}: ${err.message}`);
    assert.equal(err.name, 'AbortError');
    assert.equal(err.cause, reason);
    return true;
  });
  await waitFor(() => rt.getStats().suspendedExecutions === 0, 'suspendedExecutions === 0 after abort');
  // The late answer changes nothing.
  reply.resolve('late');
  await sleep(20);
  assert.deepEqual(state, { loading: true });
  assert.equal(mutationCalls, 1);
  assert.equal(rt.getStats().suspendedExecutions, 0);
});

test('an already-aborted signal rejects at once without running the handler', async () => {
  const ac = new AbortController();
  ac.abort();
  const state = {};
  await assert.rejects(executor.execute({ ...base, code: '$state.ran = true', state, capabilities: ['state:write:*'], signal: ac.signal }), errors.AbortError);
  assert.deepEqual(state, {});
});

test('overall deadline during a suspension: TimeoutError, nothing left parked, late result ignored', async () => {
  // The extension's promise is settled only after the rejection: that the
  // rejection arrives at all shows the deadline did not wait for it.
  const reply = deferred();
  const state = {};
  const calls = [];
  await assert.rejects(
    executor.execute({
      ...base,
      code: "$state.loading = true; const r = await $ext.http.get('/slow'); $state.data = r; return r",
      state,
      capabilities: ['state:write:*', 'ext:http'],
      extensions: { http: { get: (url) => { calls.push(url); return reply.promise } } },
      timeoutMs: 100,
    }),
    (err) => {
      assert.ok(err instanceof errors.TimeoutError, `${err.name}: ${err.message}`);
      assert.equal(err.code, 'TIMEOUT');
      assert.equal(err.message, 'execution did not finish within its overall deadline of 100 ms');
      return true;
    },
  );
  assert.deepEqual(calls, ['/slow']); // it was parked on the call when the deadline fell
  await waitFor(() => rt.getStats().suspendedExecutions === 0, 'suspendedExecutions === 0 after the deadline');
  reply.resolve('late');
  await sleep(20);
  assert.deepEqual(state, { loading: true });
});

test('compile errors: CompilationError with a 1-based location in the handler source', async () => {
  const code = 'const a = 1;\nconst b = ;\nreturn a';
  for (const capabilities of [['state:read:*'], undefined]) {
    await assert.rejects(executor.execute({ ...base, code, state: {}, capabilities }), (err) => {
      assert.ok(err instanceof errors.CompilationError, `${err.name}: ${err.message}`);
      assert.equal(err.code, 'COMPILATION_ERROR');
      assert.equal(err.location?.line, 2, JSON.stringify(err.location));
      assert.equal(typeof err.location.column, 'number');
      assert.ok(err.location.column >= 1);
      return true;
    });
  }
});

test('the executor leaves the runtime clean', async () => {
  const s = rt.getStats();
  assert.equal(s.suspendedExecutions, 0);
  assert.equal(s.inFlightExecutions, 0);
});

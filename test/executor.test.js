'use strict';
// WasmSandboxExecutor and the typed errors, against a scripted fake runtime
// (no native addon needed): the fake returns the WasmResults a test gives it
// and records every call, and tracks which suspension ids are still parked.
const test = require('node:test');
const assert = require('node:assert/strict');
const { getEventListeners } = require('node:events');
const { WasmSandboxExecutor } = require('../lib/executor');
const errors = require('../lib/errors');
const { deferred } = require('./helpers');

const tick = () => new Promise((resolve) => setImmediate(resolve));

const call = (suspensionId, extensionName, method, ...args) => ({ suspensionId, extensionName, method, args });
const base = { stateMutations: [], events: [], viewCommands: [], logs: [], metrics: { durationUs: 1 } };
const success = (returnValue, extra) => ({ ...base, status: 'success', returnValue, ...extra });
const failed = (error, extra) => ({ ...base, status: 'error', error, ...extra });
const suspended = (calls, extra) => ({ ...base, status: 'suspended', suspension: calls[0], pendingCalls: calls, ...extra });

// Each executeHandler/executeCompiledHandler/resumeAll takes the next step of
// the script: a WasmResult, an Error (rejected), a promise, or a function of
// the call's arguments returning one of those.
class FakeRuntime {
  constructor(script = [], log = []) {
    this.script = [...script];
    this.log = log;
    this.calls = [];
    this.parked = new Set();
    this.inferred = ['state:read:*'];
  }

  #next(name, argv) {
    this.calls.push({ name, argv });
    this.log.push(name);
    let step = this.script.shift();
    if (step === undefined) throw new Error(`fake runtime: no scripted step for ${name}`);
    if (typeof step === 'function') step = step(...argv);
    return Promise.resolve(step).then((r) => {
      if (r instanceof Error) throw r;
      if (r.status === 'suspended') for (const c of r.pendingCalls ?? [r.suspension]) this.parked.add(c.suspensionId);
      return r;
    });
  }

  executeHandler(code, context, timeoutMs) {
    return this.#next('executeHandler', [code, context, timeoutMs]);
  }
  executeCompiledHandler(bytecode, context, timeoutMs) {
    return this.#next('executeCompiledHandler', [bytecode, context, timeoutMs]);
  }
  resumeAll(answers) {
    for (const a of answers) {
      if (!this.parked.has(a.suspensionId)) {
        this.calls.push({ name: 'resumeAll', argv: [answers] });
        return Promise.reject(Object.assign(new Error('unknown suspension'), { code: 'SUSPENSION_NOT_FOUND' }));
      }
    }
    return this.#next('resumeAll', [answers]).then((r) => {
      for (const a of answers) this.parked.delete(a.suspensionId);
      return r;
    }, (err) => {
      // A refused value leaves the suspension resumable.
      if (!(err instanceof TypeError)) for (const a of answers) this.parked.delete(a.suspensionId);
      throw err;
    });
  }
  cancelSuspended(id) {
    this.calls.push({ name: 'cancelSuspended', argv: [id] });
    this.log.push(`cancel:${id}`);
    // One id discards the whole execution: every id of its pending calls.
    const found = this.parked.has(id);
    this.parked.clear();
    return Promise.resolve(found);
  }
  inferCapabilities(code) {
    this.calls.push({ name: 'inferCapabilities', argv: [code] });
    return this.inferred;
  }

  named(name) {
    return this.calls.filter((c) => c.name === name);
  }
}

const opts = (over) => ({ code: 'return 1', panelId: 'p1', handlerName: 'h', state: {}, capabilities: [], ...over });

test('success: context built from the options, return value resolved, runTimeoutMs passed through', async () => {
  const rt = new FakeRuntime([success(42)]);
  const state = { n: 1 };
  const value = await new WasmSandboxExecutor(rt).execute(
    opts({ state, args: { a: 1 }, scope: { s: 2 }, capabilities: ['state:read:n'], runTimeoutMs: 250 }),
  );
  assert.equal(value, 42);
  const [code, context, timeoutMs] = rt.calls[0].argv;
  assert.equal(code, 'return 1');
  assert.equal(timeoutMs, 250);
  assert.deepEqual(context, {
    panelId: 'p1',
    handlerName: 'h',
    stateSnapshot: { n: 1 },
    args: { a: 1 },
    scope: { s: 2 },
    capabilities: ['state:read:n'],
    extensionRegistry: {},
  });
  assert.equal(context.stateSnapshot, state);

  const rt2 = new FakeRuntime([success(undefined)]);
  await new WasmSandboxExecutor(rt2).execute(opts());
  assert.equal(rt2.calls[0].argv[2], undefined, 'no run-time timeout unless given');
  assert.deepEqual(rt2.calls[0].argv[1].args, {});
  assert.deepEqual(rt2.calls[0].argv[1].scope, {});
});

test('effects are applied and every callback called before the extension method runs', async () => {
  const log = [];
  const rt = new FakeRuntime(
    [
      suspended([call('s1', 'http', 'get', 'https://x')], {
        stateMutations: [
          { key: 'a', operation: 'set', value: 1 },
          { key: 'b', operation: 'delete' },
        ],
        events: [{ name: 'loading', payload: true }],
        viewCommands: [{ type: 'focus', componentId: 'c', args: {} }],
        logs: [{ level: 'info', message: 'fetching' }],
      }),
      success('done', { stateMutations: [{ key: 'a', operation: 'set', value: 2 }], events: [{ name: 'loaded', payload: 3 }] }),
    ],
    log,
  );
  const state = { b: 'old', keep: true };
  const http = {
    async get(url) {
      log.push(`http.get(${url})`);
      assert.deepEqual(state, { a: 1, keep: true }, 'state already mutated when the call starts');
      return { body: 'ok' };
    },
  };
  const seen = {};
  const record = (name) => (list) => {
    log.push(name);
    (seen[name] ??= []).push(list);
  };
  const value = await new WasmSandboxExecutor(rt).execute(
    opts({
      state,
      extensions: { http },
      onMutations: record('onMutations'),
      onEvents: record('onEvents'),
      onViewCommands: record('onViewCommands'),
      onLogs: record('onLogs'),
    }),
  );
  assert.equal(value, 'done');
  assert.deepEqual(log, [
    'executeHandler',
    'onMutations',
    'onEvents',
    'onViewCommands',
    'onLogs',
    'http.get(https://x)',
    'resumeAll',
    'onMutations', // final result: only non-empty lists are delivered
    'onEvents',
  ]);
  assert.deepEqual(state, { a: 2, keep: true });
  assert.deepEqual(seen.onEvents, [[{ name: 'loading', payload: true }], [{ name: 'loaded', payload: 3 }]]);
  assert.deepEqual(rt.named('resumeAll')[0].argv[0], [{ suspensionId: 's1', result: { success: true, value: { body: 'ok' } } }]);
  assert.equal(rt.parked.size, 0);
});

test('async callbacks are awaited before the extension calls start', async () => {
  const log = [];
  const rt = new FakeRuntime([suspended([call('s1', 'e', 'm')], { events: [{ name: 'x' }] }), success(1)], log);
  await new WasmSandboxExecutor(rt).execute(
    opts({
      extensions: { e: { m: () => log.push('m') } },
      onEvents: async () => {
        await tick();
        log.push('onEvents done');
      },
    }),
  );
  assert.deepEqual(log, ['executeHandler', 'onEvents done', 'm', 'resumeAll']);
});

test('all pending calls run concurrently and are answered in one resumeAll', async () => {
  const started = [];
  const gates = { a: deferred(), b: deferred(), c: deferred() };
  const ext = {
    calls: 0,
    fetch(name) {
      assert.equal(this, ext, '`this` is the extension object');
      started.push(name);
      return gates[name].promise;
    },
  };
  const rt = new FakeRuntime([
    suspended([call('s1', 'ext', 'fetch', 'a'), call('s2', 'ext', 'fetch', 'b'), call('s3', 'ext', 'fetch', 'c')]),
    success('all'),
  ]);
  const done = new WasmSandboxExecutor(rt).execute(opts({ extensions: { ext } }));
  await tick();
  assert.deepEqual(started, ['a', 'b', 'c'], 'three calls started before any finished');
  assert.equal(rt.named('resumeAll').length, 0);
  gates.c.resolve('C');
  gates.a.resolve('A');
  await tick();
  assert.equal(rt.named('resumeAll').length, 0, 'waits for every call');
  gates.b.resolve('B');
  assert.equal(await done, 'all');
  const resumes = rt.named('resumeAll');
  assert.equal(resumes.length, 1);
  assert.deepEqual(resumes[0].argv[0], [
    { suspensionId: 's1', result: { success: true, value: 'A' } },
    { suspensionId: 's2', result: { success: true, value: 'B' } },
    { suspensionId: 's3', result: { success: true, value: 'C' } },
  ]);
});

test('failures of extension calls become { success: false, error } answers', async () => {
  class Ext {
    syncThrow() {
      throw new Error('boom');
    }
    async asyncReject() {
      throw new RangeError('later');
    }
    nonError() {
      throw 'plain'; // eslint-disable-line no-throw-literal
    }
    rejectNumber() {
      return Promise.reject(42);
    }
    nullProto() {
      throw Object.create(null);
    }
  }
  const ext = new Ext();
  const rt = new FakeRuntime([
    suspended([
      call('s1', 'ext', 'syncThrow'),
      call('s2', 'ext', 'asyncReject'),
      call('s3', 'ext', 'nonError'),
      call('s4', 'ext', 'rejectNumber'),
      call('s5', 'ext', 'nullProto'),
      call('s6', 'ext', 'gone'), // not a method of the object
      call('s7', 'ext', 'constructor'), // on the object, but not in the registry
      call('s8', 'ext', 'hasOwnProperty'),
      call('s9', 'nope', 'm'), // no such extension
    ]),
    success(null),
  ]);
  await new WasmSandboxExecutor(rt).execute(opts({ extensions: { ext } }));
  const answers = rt.named('resumeAll')[0].argv[0].map((a) => a.result);
  assert.deepEqual(answers, [
    { success: false, error: 'boom' },
    { success: false, error: 'later' },
    { success: false, error: 'plain' },
    { success: false, error: '42' },
    { success: false, error: '[object Object]' },
    { success: false, error: 'extension method ext.gone is not available' },
    { success: false, error: 'extension method ext.constructor is not available' },
    { success: false, error: 'extension method ext.hasOwnProperty is not available' },
    { success: false, error: 'extension method nope.m is not available' },
  ]);
});

test('a method removed from the host object after the start is a failure', async () => {
  const ext = { m() {} };
  const rt = new FakeRuntime([
    () => {
      delete ext.m;
      return suspended([call('s1', 'ext', 'm')]);
    },
    success(0),
  ]);
  await new WasmSandboxExecutor(rt).execute(opts({ extensions: { ext } }));
  assert.deepEqual(rt.named('resumeAll')[0].argv[0][0].result, { success: false, error: 'extension method ext.m is not available' });
});

test('a value the runtime cannot encode is sent again as a TypeError rejection of that call', async () => {
  const bad = { marker: 'unencodable' };
  const rt = new FakeRuntime([
    suspended([call('s1', 'ext', 'get')]),
    (answers) => (answers[0].result.value === bad ? new TypeError('result.value.x is a thing and cannot cross') : success('unexpected')),
    (answers) => {
      assert.deepEqual(answers, [{ suspensionId: 's1', result: { success: false, error: 'TypeError: result.value.x is a thing and cannot cross' } }]);
      return success('handled');
    },
  ]);
  const value = await new WasmSandboxExecutor(rt).execute(opts({ extensions: { ext: { get: async () => bad } } }));
  assert.equal(value, 'handled');
  assert.equal(rt.named('resumeAll').length, 2);
  assert.equal(rt.parked.size, 0);
});

test('with several answers only the unencodable one is turned into a rejection', async () => {
  const rt = new FakeRuntime([
    suspended([call('s1', 'ext', 'ok'), call('s2', 'ext', 'fn'), call('s3', 'ext', 'fail')]),
    (answers) => (answers.some((a) => typeof a.result.value === 'function') ? new TypeError('cannot encode') : success('no')),
    (answers) => success(answers.map((a) => a.result)),
  ]);
  const value = await new WasmSandboxExecutor(rt).execute(
    opts({
      extensions: {
        ext: {
          ok: () => 1,
          fn: () => () => {},
          fail: () => {
            throw new Error('x');
          },
        },
      },
    }),
  );
  assert.deepEqual(value, [
    { success: true, value: 1 },
    { success: false, error: 'TypeError: ext.fn() result is a function and cannot cross into the sandbox' },
    { success: false, error: 'x' },
  ]);
});

test('other resumeAll rejections propagate and leave nothing parked', async () => {
  const notFound = Object.assign(new Error('expired'), { code: 'SUSPENSION_NOT_FOUND' });
  const rt = new FakeRuntime([suspended([call('s1', 'e', 'm')]), notFound]);
  await assert.rejects(new WasmSandboxExecutor(rt).execute(opts({ extensions: { e: { m() {} } } })), notFound);
  assert.equal(rt.parked.size, 0);
});

const CLASSES = {
  TIMEOUT: 'TimeoutError',
  MEMORY_LIMIT: 'MemoryLimitError',
  PERMISSION_DENIED: 'PermissionDeniedError',
  EXECUTION_ERROR: 'ExecutionError',
  COMPILATION_ERROR: 'CompilationError',
  INVALID_HANDLER: 'InvalidHandlerError',
  INTERNAL_ERROR: 'InternalError',
  RESOURCE_LIMIT: 'ResourceLimitError',
};

test('a failed handler rejects with the class of its error code', async () => {
  for (const [code, name] of Object.entries(CLASSES)) {
    const error = {
      code,
      message: `${code} happened`,
      stack: '    at <anonymous> (handler.js:2:3)',
      location: { line: 2, column: 3 },
      snippet: 'x\n  ^',
    };
    const rt = new FakeRuntime([failed(error, { logs: [{ level: 'warn', message: 'before' }], metrics: { durationUs: 7 } })]);
    const logs = [];
    const err = await new WasmSandboxExecutor(rt).execute(opts({ onLogs: (l) => logs.push(...l) })).then(
      () => assert.fail('resolved'),
      (e) => e,
    );
    assert.ok(err instanceof errors[name], name);
    assert.ok(err instanceof errors.NexusError);
    assert.ok(err instanceof Error);
    assert.equal(err.name, name);
    assert.equal(err.code, code);
    assert.equal(err.message, `${code} happened`);
    assert.deepEqual(err.location, { line: 2, column: 3 });
    assert.equal(err.snippet, 'x\n  ^');
    assert.equal(err.handlerStack, '    at <anonymous> (handler.js:2:3)');
    assert.deepEqual(err.logs, [{ level: 'warn', message: 'before' }]);
    assert.deepEqual(err.metrics, { durationUs: 7 });
    assert.deepEqual(logs, [{ level: 'warn', message: 'before' }], 'logs of a failed run still reach onLogs');
  }
});

test('the error carries the logs of every segment; unknown codes become InternalError', async () => {
  const rt = new FakeRuntime([
    suspended([call('s1', 'e', 'm')], { logs: [{ level: 'info', message: 'one' }] }),
    failed({ code: 'SOMETHING_NEW', message: 'odd', stack: null, location: null, snippet: null }, { logs: [{ level: 'info', message: 'two' }] }),
  ]);
  const err = await new WasmSandboxExecutor(rt).execute(opts({ extensions: { e: { m() {} } } })).catch((e) => e);
  assert.ok(err instanceof errors.InternalError);
  assert.equal(err.code, 'INTERNAL_ERROR');
  assert.match(err.message, /^odd .*SOMETHING_NEW/);
  assert.deepEqual(err.logs.map((l) => l.message), ['one', 'two']);
  assert.equal(err.location, null);
});

test('errorFromResult and the error classes', () => {
  const e = errors.errorFromResult({ code: 'PERMISSION_DENIED', message: 'no', stack: 's', location: { line: 1, column: 1 }, snippet: 'x' }, { logs: [1] });
  assert.ok(e instanceof errors.PermissionDeniedError);
  assert.deepEqual([e.handlerStack, e.snippet, e.logs], ['s', 'x', [1]]);
  assert.match(e.stack, /^PermissionDeniedError: no/);
  assert.ok(errors.errorFromResult(undefined) instanceof errors.InternalError);
  const t = new errors.TimeoutError('late');
  assert.deepEqual([t.name, t.code, t.location, t.snippet, t.handlerStack, t.metrics], ['TimeoutError', 'TIMEOUT', null, null, null, null]);
  const a = new errors.AbortError(undefined, { cause: 'why' });
  assert.deepEqual([a.name, a.code, a.cause, a.message], ['AbortError', 'ABORTED', 'why', 'The execution was aborted']);
  for (const name of [...Object.values(CLASSES), 'NexusError', 'AbortError']) assert.equal(errors[name].name, name);
});

test('abort while an extension call is in flight: cancelled, no resumeAll afterwards, AbortError', async () => {
  const gate = deferred();
  const started = deferred();
  const rt = new FakeRuntime([suspended([call('s1', 'e', 'slow'), call('s2', 'e', 'fast')]), success('never')]);
  const controller = new AbortController();
  const done = new WasmSandboxExecutor(rt).execute(
    opts({
      signal: controller.signal,
      extensions: {
        e: {
          slow() {
            started.resolve();
            return gate.promise;
          },
          fast: async () => 1,
        },
      },
    }),
  );
  await started.promise;
  const reason = new Error('user left');
  controller.abort(reason);
  const err = await done.catch((e) => e);
  assert.ok(err instanceof errors.AbortError);
  assert.equal(err.name, 'AbortError');
  assert.equal(err.code, 'ABORTED');
  assert.equal(err.cause, reason);
  assert.deepEqual(rt.named('cancelSuspended').map((c) => c.argv[0]), ['s1']);
  assert.equal(rt.parked.size, 0);
  gate.resolve('too late');
  await tick();
  assert.equal(rt.named('resumeAll').length, 0);
  assert.equal(getEventListeners(controller.signal, 'abort').length, 0, 'listener removed');
});

test('abort before start calls nothing on the runtime', async () => {
  const rt = new FakeRuntime([success(1)]);
  const controller = new AbortController();
  controller.abort('stop');
  const err = await new WasmSandboxExecutor(rt).execute(opts({ capabilities: undefined, signal: controller.signal })).catch((e) => e);
  assert.equal(err.name, 'AbortError');
  assert.equal(err.cause, 'stop');
  assert.deepEqual(rt.calls, []);
});

test('abort while a segment runs: its result is waited for, cancelled if parked, and not applied', async () => {
  for (const outcome of ['suspended', 'success']) {
    const segment = deferred();
    const rt = new FakeRuntime([() => segment.promise]);
    const controller = new AbortController();
    const state = {};
    const called = [];
    const done = new WasmSandboxExecutor(rt).execute(
      opts({ state, signal: controller.signal, extensions: { e: { m: () => called.push('m') } }, onMutations: () => called.push('cb') }),
    );
    await tick();
    controller.abort();
    let settled = false;
    done.catch(() => {}).finally(() => (settled = true));
    await tick();
    assert.equal(settled, false, 'waits for the running segment');
    const mutations = [{ key: 'x', operation: 'set', value: 1 }];
    segment.resolve(outcome === 'suspended' ? suspended([call('s1', 'e', 'm')], { stateMutations: mutations }) : success(1, { stateMutations: mutations }));
    await assert.rejects(done, { name: 'AbortError' });
    assert.deepEqual(called, []);
    assert.deepEqual(state, {});
    assert.equal(rt.parked.size, 0);
    assert.equal(rt.named('cancelSuspended').length, outcome === 'suspended' ? 1 : 0);
    assert.equal(rt.named('resumeAll').length, 0);
  }
});

test('abort from a callback stops before any extension call', async () => {
  const controller = new AbortController();
  const rt = new FakeRuntime([suspended([call('s1', 'e', 'm')], { events: [{ name: 'x' }] })]);
  const called = [];
  await assert.rejects(
    new WasmSandboxExecutor(rt).execute(
      opts({ signal: controller.signal, extensions: { e: { m: () => called.push('m') } }, onEvents: () => controller.abort() }),
    ),
    { code: 'ABORTED' },
  );
  assert.deepEqual(called, []);
  assert.equal(rt.parked.size, 0);
});

test('the overall deadline counts time suspended and ends with TimeoutError', async (t) => {
  // The first call answers at once, the second never: the deadline falls
  // while the handler is parked on it. Virtual time (mock timers): nothing
  // but the deadline can end the execution, and it does so at 50 ms, not
  // one millisecond before.
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const rt = new FakeRuntime([suspended([call('s1', 'e', 'quick')]), suspended([call('s2', 'e', 'hang')]), success('too late')]);
  const called = [];
  const e = {
    quick: async () => { called.push('quick'); return 1 },
    hang: () => { called.push('hang'); return new Promise(() => {}) },
  };
  let outcome = null;
  const done = new WasmSandboxExecutor(rt).execute(opts({ timeoutMs: 50, extensions: { e } }))
    .then((v) => { outcome = { value: v } }, (err) => { outcome = { err } });
  for (let i = 0; i < 100 && !called.includes('hang'); i++) await tick();
  assert.deepEqual(called, ['quick', 'hang']);
  t.mock.timers.tick(49);
  for (let i = 0; i < 10; i++) await tick();
  assert.equal(outcome, null, 'ended before its deadline');
  t.mock.timers.tick(1);
  for (let i = 0; i < 100 && outcome === null; i++) await tick();
  assert.notEqual(outcome, null, 'still running after its deadline');
  await done;
  const { err } = outcome;
  assert.ok(err instanceof errors.TimeoutError, String(err));
  assert.equal(err.code, 'TIMEOUT');
  assert.equal(err.message, 'execution did not finish within its overall deadline of 50 ms');
  assert.deepEqual(rt.named('cancelSuspended').map((c) => c.argv[0]), ['s2']);
  assert.equal(rt.named('resumeAll').length, 1);
  assert.equal(rt.parked.size, 0);
  assert.equal(rt.script.length, 1, 'the last scripted step was never reached');
});

test('a throwing callback cancels the suspension and its error propagates', async () => {
  const boom = new Error('callback failed');
  const rt = new FakeRuntime([suspended([call('s1', 'e', 'm')], { logs: [{ level: 'info', message: 'x' }] })]);
  const called = [];
  await assert.rejects(
    new WasmSandboxExecutor(rt).execute(
      opts({
        extensions: { e: { m: () => called.push('m') } },
        onLogs: () => {
          throw boom;
        },
      }),
    ),
    boom,
  );
  assert.deepEqual(called, []);
  assert.deepEqual(rt.named('cancelSuspended').map((c) => c.argv[0]), ['s1']);
  assert.equal(rt.parked.size, 0);
});

test('option validation', async () => {
  const rt = new FakeRuntime();
  const ex = new WasmSandboxExecutor(rt);
  const cases = [
    [null, /options must be an object/],
    [opts({ code: undefined }), /exactly one of options.code and options.bytecode/],
    [opts({ bytecode: new Uint8Array(1) }), /exactly one/],
    [opts({ code: 1 }), /options.code must be a string/],
    [opts({ code: undefined, bytecode: [1] }), /options.bytecode must be a Uint8Array/],
    [opts({ panelId: undefined }), /options.panelId must be a string/],
    [opts({ handlerName: 3 }), /options.handlerName must be a string/],
    [opts({ state: undefined }), /options.state must be an object/],
    [opts({ state: [] }), /options.state must be an object/],
    [opts({ args: 'x' }), /options.args must be an object/],
    [opts({ scope: null }), /options.scope must be an object/],
    [opts({ capabilities: 'ext:*' }), /options.capabilities must be an array of strings/],
    [opts({ extensions: [] }), /options.extensions must be an object/],
    [opts({ extensions: { http: () => {} } }), /options.extensions.http must be an object/],
    [opts({ extensions: { http: null } }), /options.extensions.http must be an object/],
    [opts({ timeoutMs: '5' }), /options.timeoutMs must be a number/],
    [opts({ runTimeoutMs: '5' }), /options.runTimeoutMs must be a number/],
    [opts({ signal: {} }), /options.signal must be an AbortSignal/],
    [opts({ onEvents: 'log' }), /options.onEvents must be a function/],
    [opts({ timeout: 5 }), /option timeout is not a known option/],
  ];
  for (const [o, re] of cases) await assert.rejects(ex.execute(o), (e) => e instanceof TypeError && re.test(e.message), String(re));
  for (const t of [0, -1, NaN, Infinity]) await assert.rejects(ex.execute(opts({ timeoutMs: t })), RangeError);
  assert.deepEqual(rt.calls, []);
  assert.throws(() => new WasmSandboxExecutor({}), TypeError);
});

test('bytecode needs explicit capabilities; with them it runs through executeCompiledHandler', async () => {
  const rt = new FakeRuntime([success('bc')]);
  const ex = new WasmSandboxExecutor(rt);
  const bytecode = new Uint8Array([1, 2, 3]);
  await assert.rejects(ex.execute(opts({ code: undefined, bytecode, capabilities: undefined })), (e) => e instanceof TypeError && /required with options.bytecode/.test(e.message));
  assert.deepEqual(rt.calls, []);
  assert.equal(await ex.execute(opts({ code: undefined, bytecode, capabilities: ['ext:*'], runTimeoutMs: 9 })), 'bc');
  assert.equal(rt.calls[0].name, 'executeCompiledHandler');
  assert.equal(rt.calls[0].argv[0], bytecode);
  assert.deepEqual(rt.calls[0].argv[1].capabilities, ['ext:*']);
  assert.equal(rt.calls[0].argv[2], 9);
});

test('inferCapabilities is the fallback only when capabilities is undefined', async () => {
  const rt = new FakeRuntime([success(1), success(2)]);
  const ex = new WasmSandboxExecutor(rt);
  await ex.execute(opts({ code: 'return $state.x', capabilities: undefined }));
  assert.deepEqual(rt.named('inferCapabilities').map((c) => c.argv[0]), ['return $state.x']);
  assert.deepEqual(rt.named('executeHandler')[0].argv[1].capabilities, ['state:read:*']);
  await ex.execute(opts({ capabilities: [] }));
  assert.equal(rt.named('inferCapabilities').length, 1, 'an empty list is a choice, not a missing one');
  assert.deepEqual(rt.named('executeHandler')[1].argv[1].capabilities, []);
});

test('a syntax error found by inferCapabilities is a CompilationError', async () => {
  const rt = new FakeRuntime();
  rt.inferCapabilities = () => {
    throw Object.assign(new Error('SyntaxError: unexpected token'), { code: 'COMPILATION_ERROR', location: { line: 1, column: 5 }, snippet: 'a b\n    ^' });
  };
  const err = await new WasmSandboxExecutor(rt).execute(opts({ capabilities: undefined })).catch((e) => e);
  assert.ok(err instanceof errors.CompilationError);
  assert.deepEqual(err.location, { line: 1, column: 5 });
  assert.equal(err.snippet, 'a b\n    ^');
  assert.equal(err.handlerStack, null);
  assert.deepEqual(rt.calls, []);
});

test('registry: own enumerable functions of plain objects, prototype methods of class instances', async () => {
  class Base {
    constructor() {
      this.field = 1;
      this.bound = () => {};
    }
    base() {}
    shadowed() {}
    get getter() {
      throw new Error('getters are not run');
    }
  }
  class Derived extends Base {
    derived() {}
  }
  const inst = new Derived();
  inst.shadowed = 'not a function any more';
  const plain = { a() {}, b: async () => {}, c: 1, d: null };
  Object.defineProperty(plain, 'hidden', { value() {}, enumerable: false });
  const bare = Object.assign(Object.create(null), { only() {} });
  const rt = new FakeRuntime([success(0)]);
  await new WasmSandboxExecutor(rt).execute(opts({ extensions: { plain, inst, bare, empty: {} } }));
  assert.deepEqual(rt.calls[0].argv[1].extensionRegistry, {
    plain: ['a', 'b'],
    inst: ['bound', 'derived', 'base'],
    bare: ['only'],
    empty: [],
  });
});

test('an answer-less legacy result (suspension only) still works; __proto__ keys do not touch the prototype', async () => {
  const legacy = { ...base, status: 'suspended', suspension: call('s1', 'e', 'm', 2) };
  const rt = new FakeRuntime([legacy, success('ok', { stateMutations: [{ key: '__proto__', operation: 'set', value: { polluted: true } }] })]);
  const state = {};
  assert.equal(await new WasmSandboxExecutor(rt).execute(opts({ state, extensions: { e: { m: (x) => x * 2 } } })), 'ok');
  assert.deepEqual(rt.named('resumeAll')[0].argv[0], [{ suspensionId: 's1', result: { success: true, value: 4 } }]);
  assert.equal(Object.getPrototypeOf(state), Object.prototype);
  assert.equal(state.polluted, undefined);
  assert.deepEqual(Object.getOwnPropertyDescriptor(state, '__proto__').value, { polluted: true });
});

test('a suspended result without pending calls is an InternalError', async () => {
  const rt = new FakeRuntime([{ ...base, status: 'suspended', pendingCalls: [] }]);
  await assert.rejects(new WasmSandboxExecutor(rt).execute(opts()), errors.InternalError);
});

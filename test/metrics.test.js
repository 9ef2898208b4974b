'use strict';
// Per-execution metrics, getStats(), the Prometheus exposition, and shutdown
// under load.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { context, runtime } = require('./helpers');

const REGISTRY = { http: ['get'] };
const ok = (value) => ({ success: true, value });
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const METRIC_KEYS = ['cacheHit', 'compilationTimeUs', 'durationUs', 'hostCalls', 'instructionCount', 'memoryPeakBytes', 'memoryUsedBytes'];
const HOST_CALLS = ['state.get', 'state.set', 'emit', 'view', 'ext.http.get', 'log'];

// `resumed`: the metrics of a segment after a resume, which compiles nothing.
function assertMetrics(m, where = '', { resumed = false } = {}) {
  assert.deepEqual(Object.keys(m).sort(), METRIC_KEYS, where);
  for (const k of ['durationUs', 'memoryUsedBytes', 'memoryPeakBytes', 'instructionCount', 'compilationTimeUs']) {
    assert.ok(Number.isSafeInteger(m[k]), `${where} ${k}: ${m[k]}`);
  }
  assert.ok(m.durationUs > 0, `${where} durationUs ${m.durationUs}`);
  // 10 000 per QuickJS interrupt check
  assert.ok(m.instructionCount >= 0 && m.instructionCount % 10000 === 0, `${where} instructionCount ${m.instructionCount}`);
  assert.equal(typeof m.cacheHit, 'boolean');
  if (resumed) {
    assert.equal(m.compilationTimeUs, 0, `${where}: a resumed segment compiles nothing`);
    assert.equal(m.cacheHit, false, where);
  } else if (!m.cacheHit) {
    assert.ok(m.compilationTimeUs > 0, `${where}: compiled, in ${m.compilationTimeUs} µs`);
  }
  assert.ok(m.memoryUsedBytes > 0, `${where} memoryUsedBytes ${m.memoryUsedBytes}`);
  assert.ok(m.memoryPeakBytes >= 1 << 20 && m.memoryPeakBytes % 65536 === 0, `${where} memoryPeakBytes ${m.memoryPeakBytes}`);
  assert.ok(m.memoryUsedBytes < m.memoryPeakBytes, where);
  assert.ok(m.hostCalls !== null && typeof m.hostCalls === 'object' && !Array.isArray(m.hostCalls));
  for (const [k, v] of Object.entries(m.hostCalls)) {
    assert.ok(HOST_CALLS.includes(k), `${where} unknown host call ${k}`);
    assert.ok(Number.isInteger(v) && v > 0, `${where} hostCalls.${k} = ${v} (only non-zero keys)`);
  }
}

// Parses the exposition into { name{labels}: value } plus HELP/TYPE lines.
function parseProm(text) {
  const samples = new Map();
  const help = new Map();
  const type = new Map();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# HELP (\S+) (.+)$/.exec(line);
    if (m) { help.set(m[1], m[2]); continue }
    m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) { type.set(m[1], m[2]); continue }
    assert.ok(!line.startsWith('#'), `unexpected comment: ${line}`);
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(m, `malformed sample line: ${line}`);
    samples.set(m[1], Number(m[2]));
  }
  return { samples, help, type };
}

test('every metrics field, with the right types and plausible values', async () => {
  const rt = runtime({ workers: 1, maxInstances: 1 });
  try {
    const first = await rt.executeHandler('return 1', context());
    assertMetrics(first.metrics, 'first');
    assert.equal(first.metrics.cacheHit, false);
    assert.ok(first.metrics.compilationTimeUs > 0);
    assert.ok(first.metrics.durationUs > 0);
    assert.deepEqual(first.metrics.hostCalls, {});
    assert.equal(first.metrics.memoryPeakBytes, rt.getStats().snapshotBytes);
    const again = await rt.executeHandler('return 1', context());
    assertMetrics(again.metrics, 'again');
    assert.equal(again.metrics.cacheHit, true);
    // errors carry metrics too
    const err = await rt.executeHandler('null.x', context());
    assert.equal(err.status, 'error');
    assertMetrics(err.metrics, 'error');
    const denied = await rt.executeHandler("$emit('x')", context({ capabilities: [] }));
    assert.equal(denied.error.code, 'PERMISSION_DENIED');
    assertMetrics(denied.metrics, 'denied');
  } finally {
    await rt.shutdown();
  }
});

test('hostCalls are exact, including ext.http.get through a suspension', async () => {
  const rt = runtime({ workers: 1 });
  try {
    const code = `
      const a = $state.a; const b = $state.b; $state.c = a + b; $state.d = 1;
      $emit('e1'); $emit('e2', 1); $emit('e3');
      $view.focus('x'); $view.setFilter('t', 'f');
      $log('l1'); $log.warn('l2');
      const v = await $ext.http.get('/one');
      const w = await $ext.http.get('/two');
      $emit('done', v + w); $state.e = v;
      return v + w`;
    const ctx = context({ extensionRegistry: REGISTRY, stateSnapshot: { a: 1, b: 2 } });
    const r1 = await rt.executeHandler(code, ctx);
    assert.equal(r1.status, 'suspended');
    assertMetrics(r1.metrics, 'r1');
    assert.deepEqual(r1.metrics.hostCalls, { 'state.get': 2, 'state.set': 2, emit: 3, view: 2, log: 2, 'ext.http.get': 1 });
    const r2 = await rt.resumeHandler(r1.suspension.suspensionId, ok(10));
    assert.equal(r2.status, 'suspended');
    assertMetrics(r2.metrics, 'r2', { resumed: true });
    assert.deepEqual(r2.metrics.hostCalls, { 'ext.http.get': 1 });
    const r3 = await rt.resumeHandler(r2.suspension.suspensionId, ok(20));
    assert.equal(r3.status, 'success');
    assert.equal(r3.returnValue, 30);
    assertMetrics(r3.metrics, 'r3', { resumed: true });
    assert.deepEqual(r3.metrics.hostCalls, { emit: 1, 'state.set': 1 });
    // the Prometheus counters are the sums over the results
    const { samples } = parseProm(rt.getPrometheusMetrics());
    assert.equal(samples.get('nexus_host_calls_total{function="ext.http.get"}'), 2);
    assert.equal(samples.get('nexus_host_calls_total{function="emit"}'), 4);
    assert.equal(samples.get('nexus_host_calls_total{function="state.set"}'), 3);
    assert.equal(samples.get('nexus_host_calls_total{function="state.get"}'), 2);
    assert.equal(samples.get('nexus_host_calls_total{function="view"}'), 2);
    assert.equal(samples.get('nexus_host_calls_total{function="log"}'), 2);
  } finally {
    await rt.shutdown();
  }
});

test('memoryUsedBytes grows with a live 1 MB array; memoryPeakBytes with a dropped one', async () => {
  const rt = runtime({ workers: 1, maxInstances: 1 });
  try {
    const trivial = await rt.executeHandler('return 1', context());
    const kept = await rt.executeHandler(
      'globalThis.keep = new Array(1 << 17).fill(0).map((_, i) => i + 0.5); return keep.length', context());
    const dropped = await rt.executeHandler('const a = new Array(1 << 17).fill(1.5); return a.length', context());
    for (const r of [trivial, kept, dropped]) {
      assert.equal(r.status, 'success', JSON.stringify(r.error));
      assertMetrics(r.metrics);
    }
    assert.ok(kept.metrics.memoryUsedBytes >= trivial.metrics.memoryUsedBytes + (1 << 20),
      `kept ${kept.metrics.memoryUsedBytes} vs trivial ${trivial.metrics.memoryUsedBytes}`);
    assert.ok(dropped.metrics.memoryPeakBytes >= trivial.metrics.memoryPeakBytes + (1 << 20),
      `peak ${dropped.metrics.memoryPeakBytes} vs trivial ${trivial.metrics.memoryPeakBytes}`);
    // the sandbox was reset: the next trivial run is back where it started
    const after = await rt.executeHandler('return 1', context());
    assert.equal(after.metrics.memoryPeakBytes, trivial.metrics.memoryPeakBytes);
  } finally {
    await rt.shutdown();
  }
});

test('instructionCount is > 0 for a busy loop and grows with the work', async () => {
  const rt = runtime({ workers: 1 });
  try {
    const busy = await rt.executeHandler('let n = 0; while (n < 100000) n++; return n', context());
    assert.equal(busy.returnValue, 100000);
    assert.ok(busy.metrics.instructionCount > 0, `instructionCount ${busy.metrics.instructionCount}`);
    const trivial = await rt.executeHandler('return 1', context());
    assert.equal(trivial.metrics.instructionCount, 0);
    const small = await rt.executeHandler('let s = 0; for (let i = 0; i < 1e5; i++) s += i; return s', context());
    const large = await rt.executeHandler('let s = 0; for (let i = 0; i < 1e6; i++) s += i; return s', context());
    assert.ok(small.metrics.instructionCount > 0);
    // the same loop, ten times the iterations: ten times the interrupt checks
    assert.equal(large.metrics.instructionCount, 10 * small.metrics.instructionCount);
  } finally {
    await rt.shutdown();
  }
});

// A runtime with a known history, shared by the stats and Prometheus tests.
const hist = { rt: null, results: [] };
async function history() {
  if (hist.rt) return hist;
  const rt = runtime({ workers: 2, maxInstances: 2 });
  hist.rt = rt;
  const run = async (code, over, timeout) => {
    const r = await rt.executeHandler(code, context(over), timeout);
    hist.results.push(r);
    return r;
  };
  await run('return 1');
  await run('return 1');
  await run("$state.x = 1; $emit('e'); return 2");
  await run('throw new Error("x")');
  await run("$emit('x')", { capabilities: [] });
  await run('while (true) {}', {}, 50);
  await run('return (');
  const s = await run('return await $ext.http.get(1)', { extensionRegistry: REGISTRY });
  const done = await rt.resumeHandler(s.suspension.suspensionId, ok(5));
  hist.results.push(done);
  // one left parked
  hist.parked = await run('return await $ext.http.get(2)', { extensionRegistry: REGISTRY });
  return hist;
}
test.after(async () => { if (hist.rt) await hist.rt.shutdown() });

test('getStats(): every field, counted from a known history', async () => {
  const { rt, results, parked } = await history();
  const s = rt.getStats();
  assert.deepEqual(Object.keys(s).sort(), ['activeInstances', 'availableInstances', 'avgExecutionTimeUs', 'avgInstantiateUs',
    'avgResetUs', 'cacheBytes', 'cacheEntries', 'cacheHitRate', 'cacheHits', 'cacheMisses', 'errorsByCode',
    'executionsByStatus', 'inFlightExecutions', 'instantiations', 'liveInstances', 'memoryCheck', 'queuedExecutions', 'resets', 'snapshotBytes', 'snapshotCreateUs',
    'suspendedExecutions', 'totalExecutions', 'totalMemoryBytes', 'workers']);
  assert.equal(results.length, 10);
  assert.equal(s.totalExecutions, 10);
  assert.deepEqual(s.executionsByStatus, { success: 4, error: 4, suspended: 2 });
  assert.deepEqual(s.errorsByCode, { EXECUTION_ERROR: 1, PERMISSION_DENIED: 1, TIMEOUT: 1, COMPILATION_ERROR: 1 });
  assert.equal(s.workers, 2);
  assert.equal(s.activeInstances, 0);
  assert.equal(s.queuedExecutions, 0);
  assert.equal(s.inFlightExecutions, 0);
  assert.equal(s.suspendedExecutions, 1);
  // The executions ran one after another: one sandbox serves them all, unless
  // an execution arrived while the previous one's sandbox was still being
  // reset (then a second is made). The parked execution holds its sandbox
  // outside the pool: every live one is idle, and the memory is theirs plus
  // the parked one's.
  assert.ok(s.liveInstances === 0 || s.liveInstances === 1, `liveInstances ${s.liveInstances}`);
  assert.equal(s.availableInstances, s.liveInstances);
  assert.equal(s.snapshotBytes, results[0].metrics.memoryPeakBytes);
  assert.equal(s.totalMemoryBytes, s.liveInstances * s.snapshotBytes + parked.metrics.memoryPeakBytes);
  // the average of the results' own durations
  assert.equal(s.avgExecutionTimeUs, results.reduce((n, r) => n + r.metrics.durationUs, 0) / results.length);
  assert.ok(s.avgResetUs > 0 && s.avgInstantiateUs > 0 && s.snapshotCreateUs > 0);
  assert.ok(s.instantiations >= 1 && s.resets >= 1, `${s.instantiations} instantiations, ${s.resets} resets`);
  // 8 distinct sources, each compiled once; the syntax error is not kept
  assert.equal(s.cacheHits, 1);
  assert.equal(s.cacheMisses, 8);
  assert.equal(s.cacheEntries, 7);
  assert.equal(s.cacheHitRate, 1 / 9);
  assert.ok(s.cacheBytes > 0);
});

test('totalMemoryBytes is the linear memory of the live sandboxes: it drops back when a reset drops memory growth', async () => {
  const rt = runtime({ workers: 1, maxInstances: 1 });
  try {
    await rt.executeHandler('return 1', context());
    const base = rt.getStats();
    assert.equal(base.liveInstances, 1);
    assert.equal(base.totalMemoryBytes, base.snapshotBytes);
    for (let i = 0; i < 3; i++) {
      const grown = await rt.executeHandler('const a = new Array(1 << 17).fill(1.5); return a.length', context());
      assert.ok(grown.metrics.memoryPeakBytes > base.snapshotBytes);
    }
    // an execution after the resets runs in an instance of the image's size
    const after = await rt.executeHandler('return 1', context());
    assert.equal(after.metrics.memoryPeakBytes, base.snapshotBytes);
    await sleep(50);
    const s = rt.getStats();
    assert.equal(s.liveInstances, 1);
    assert.equal(s.totalMemoryBytes, s.liveInstances * s.snapshotBytes,
      `totalMemoryBytes ${s.totalMemoryBytes} with one live instance of ${s.snapshotBytes} bytes`);
    const { samples } = parseProm(rt.getPrometheusMetrics());
    assert.equal(samples.get('nexus_memory_bytes'), s.totalMemoryBytes);
  } finally {
    await rt.shutdown();
  }
});

const SERIES = {
  nexus_executions_total: 'counter',
  nexus_execution_errors_total: 'counter',
  nexus_compile_cache_hits_total: 'counter',
  nexus_compile_cache_misses_total: 'counter',
  nexus_host_calls_total: 'counter',
  nexus_execution_duration_seconds: 'histogram',
  nexus_instances: 'gauge',
  nexus_suspended_executions: 'gauge',
  nexus_queued_executions: 'gauge',
  nexus_memory_bytes: 'gauge',
  nexus_compile_cache_entries: 'gauge',
  nexus_compile_cache_bytes: 'gauge',
};
const ERROR_CODES = ['TIMEOUT', 'MEMORY_LIMIT', 'PERMISSION_DENIED', 'EXECUTION_ERROR', 'COMPILATION_ERROR',
  'INVALID_HANDLER', 'INTERNAL_ERROR', 'RESOURCE_LIMIT'];

test('getPrometheusMetrics(): every series with HELP and TYPE, values agreeing with getStats() and the results', async () => {
  const { rt, results } = await history();
  const text = rt.getPrometheusMetrics();
  assert.equal(typeof text, 'string');
  assert.ok(text.endsWith('\n'));
  const { samples, help, type } = parseProm(text);
  for (const [name, kind] of Object.entries(SERIES)) {
    assert.ok(help.has(name) && help.get(name).length > 0, `HELP ${name}`);
    assert.equal(type.get(name), kind, `TYPE ${name}`);
    const prefix = kind === 'histogram' ? `${name}_` : name;
    assert.ok([...samples.keys()].some((k) => k === name || k.startsWith(`${prefix}{`) || k.startsWith(prefix)), `samples of ${name}`);
  }
  const s = rt.getStats();
  for (const status of ['success', 'error', 'suspended']) {
    assert.equal(samples.get(`nexus_executions_total{status="${status}"}`), s.executionsByStatus[status], status);
  }
  for (const code of ERROR_CODES) {
    assert.equal(samples.get(`nexus_execution_errors_total{code="${code}"}`) ?? 0, s.errorsByCode[code] ?? 0, code);
  }
  assert.equal(samples.get('nexus_compile_cache_hits_total'), s.cacheHits);
  assert.equal(samples.get('nexus_compile_cache_misses_total'), s.cacheMisses);
  assert.equal(samples.get('nexus_compile_cache_entries'), s.cacheEntries);
  assert.equal(samples.get('nexus_compile_cache_bytes'), s.cacheBytes);
  assert.equal(samples.get('nexus_suspended_executions'), s.suspendedExecutions);
  assert.equal(samples.get('nexus_queued_executions'), s.queuedExecutions);
  assert.equal(samples.get('nexus_memory_bytes'), s.totalMemoryBytes);
  assert.equal(samples.get('nexus_instances{state="active"}'), s.activeInstances);
  assert.equal(samples.get('nexus_instances{state="idle"}'), s.availableInstances);
  // host calls: the sums of the per-result counts
  const sums = {};
  for (const r of results) for (const [k, v] of Object.entries(r.metrics.hostCalls)) sums[k] = (sums[k] || 0) + v;
  for (const [k, v] of Object.entries(sums)) assert.equal(samples.get(`nexus_host_calls_total{function="${k}"}`), v, k);
  // the histogram: one observation per result, the results' own durations
  // (whole microseconds, compared exactly with each bucket's bound)
  const durations = results.map((r) => r.metrics.durationUs);
  assert.equal(samples.get('nexus_execution_duration_seconds_count'), results.length);
  const buckets = [...samples.entries()].filter(([k]) => k.startsWith('nexus_execution_duration_seconds_bucket{'));
  assert.ok(buckets.length >= 5);
  assert.equal(buckets.at(-1)[0], 'nexus_execution_duration_seconds_bucket{le="+Inf"}');
  assert.equal(buckets.at(-1)[1], results.length);
  for (const [name, count] of buckets.slice(0, -1)) {
    const le = Math.round(Number(/le="([^"]+)"/.exec(name)[1]) * 1e6);
    assert.equal(count, durations.filter((d) => d <= le).length, name);
  }
  const sum = samples.get('nexus_execution_duration_seconds_sum');
  assert.equal(Math.round(sum * 1e6), durations.reduce((n, d) => n + d, 0), `histogram sum ${sum}`);
  // a TIMEOUT never comes early: the 50 ms one is in the sum
  assert.ok(results.find((r) => r.error?.code === 'TIMEOUT').metrics.durationUs >= 50000);
});

function onPath(cmd) {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8' });
  return !(r.error && r.error.code === 'ENOENT');
}

if (onPath('promtool')) {
  test('promtool check metrics accepts the exposition', async () => {
    const { rt } = await history();
    const lint = spawnSync('promtool', ['check', 'metrics'], { input: rt.getPrometheusMetrics(), encoding: 'utf8', timeout: 30000 });
    assert.equal(lint.error, undefined);
    assert.equal(lint.status, 0, `promtool check metrics:\n${lint.stdout}${lint.stderr}`);
  });
} else {
  test('promtool check metrics: skipped, promtool not installed', { skip: 'promtool not installed' }, () => {});
}

test('shutdown under load: in-flight finish, queued end, parked are discarded, later calls reject SHUT_DOWN', { timeout: 30000 }, async (t) => {
  const rt = runtime({ workers: 2, maxInstances: 2 });
  const ctx = (over) => context({ extensionRegistry: REGISTRY, ...over });
  // parked first: 5 suspended executions waiting for an answer (their
  // sandboxes are outside the pool)
  const parked = await Promise.all(Array.from({ length: 5 }, (_, i) =>
    rt.executeHandler('return await $ext.http.get($args.i)', ctx({ args: { i } }))));
  for (const p of parked) assert.equal(p.status, 'suspended');
  assert.equal(rt.getStats().suspendedExecutions, 5);
  // in flight: two executions that hold both sandboxes until their 1000 ms timeout
  const inflight = [0, 1].map(() => rt.executeHandler('while (true) {}', ctx(), 1000));
  while (rt.getStats().activeInstances < 2 && !t.signal.aborted) await sleep(1);
  assert.equal(rt.getStats().activeInstances, 2);
  // queued behind them: 45 more, loops, quick ones and ones that would
  // suspend; then shutdown(), in the same tick
  const kinds = [];
  const pending = [];
  for (let i = 0; i < 45; i++) {
    const kind = ['loop', 'quick', 'suspend'][i % 3];
    kinds.push(kind);
    const code = {
      loop: 'let n = 0; while (n < 1e6) n++; return $args.i',
      quick: 'return $args.i',
      suspend: 'return await $ext.http.get($args.i)',
    }[kind];
    pending.push(rt.executeHandler(code, ctx({ args: { i } })));
  }
  assert.equal(rt.getStats().queuedExecutions, 45);
  const stopping = rt.shutdown();
  assert.equal(rt.shutdown(), stopping);
  // the in-flight ones run to their own end
  for (const r of await Promise.all(inflight)) {
    assert.deepEqual([r.status, r.error.code, r.error.message], ['error', 'TIMEOUT', 'Execution timed out after 1000 ms']);
  }
  // the queued ones never start: an error result each (none ran, none came
  // back suspended with an id nobody can resume)
  (await Promise.all(pending)).forEach((r, i) => {
    assert.deepEqual([r.status, r.error.code, r.error.message],
      ['error', 'INTERNAL_ERROR', 'runtime shut down before the execution started'], `${i} (${kinds[i]})`);
  });
  await stopping; // resolves
  for (const p of parked) {
    await assert.rejects(rt.resumeHandler(p.suspension.suspensionId, ok(1)), { code: 'SUSPENSION_NOT_FOUND' });
  }
  await assert.rejects(rt.executeHandler('return 1', context()), { code: 'SHUT_DOWN' });
  await assert.rejects(rt.precompileHandler('return 1'), { code: 'SHUT_DOWN' });
  await assert.rejects(rt.executeCompiledHandler(new Uint8Array(80), context()), { code: 'SHUT_DOWN' });
  assert.throws(() => rt.getPrometheusMetrics(), { code: 'SHUT_DOWN' });
  await rt.shutdown(); // idempotent
});

'use strict';
// console in handlers: the lines $log writes (same formatting, one host call
// each, so the same limits), at the level of the method.
const test = require('node:test');
const assert = require('node:assert/strict');
const { context, runtime } = require('./helpers');

const rt = runtime({ workers: 1 });
test.after(() => rt.shutdown());
const run = async (code, over) => {
  const r = await rt.executeHandler(code, context(over));
  assert.equal(r.status, 'success', JSON.stringify(r.error));
  return r;
};
const messages = (r) => r.logs.map((l) => `${l.level} ${l.message}`);

test('console.log/info/warn/error/debug write log lines at their level', async () => {
  const r = await run("console.log('l'); console.info('i'); console.warn('w'); console.error('e'); console.debug('d')");
  assert.deepEqual(r.logs, [
    { level: 'info', message: 'l' },
    { level: 'info', message: 'i' },
    { level: 'warn', message: 'w' },
    { level: 'error', message: 'e' },
    { level: 'debug', message: 'd' },
  ]);
});

test('console formats its arguments exactly as $log does', async () => {
  const args = [
    "'a', 1, { b: [2] }, null, undefined",
    'new Error("e")',
    '1n, -0, NaN, Symbol("s"), () => 1, [1, [2, [3]]]',
    'new Map([[1, 2]]), new Date(0), /x/g, new Uint8Array([1, 2])',
    "{ get g() { return 'got' } }, new Proxy({}, {})",
    "'%s and %d are not format directives', 1",
    '',
  ];
  for (const a of args) {
    const r = await run(`$log(${a}); console.log(${a}); const c = {}; c.self = c; $log.warn(c, ${a || 0}); console.warn(c, ${a || 0})`);
    assert.equal(r.logs.length, 4, a);
    assert.deepEqual(r.logs[1], r.logs[0], a);
    assert.deepEqual(r.logs[3], r.logs[2], a);
  }
  const r = await run("console.log('a', 1, { b: [2] }, null, undefined)");
  assert.deepEqual(r.logs, [{ level: 'info', message: 'a 1 {"b":[2]} null undefined' }]);
});

test('console and $log lines share one list, in call order; a failed execution keeps them', async () => {
  const r = await rt.executeHandler("console.log(1); $log(2); console.error(3); $log.debug(4); throw new Error('x')", context());
  assert.equal(r.status, 'error');
  assert.deepEqual(messages(r), ['info 1', 'info 2', 'error 3', 'debug 4']);
});

test('console calls count against config.maxHostCalls like $log calls', async () => {
  const limited = runtime({ workers: 1, maxHostCalls: 3 });
  try {
    const ok = await limited.executeHandler('console.log(1); $log(2); console.warn(3); return 1', context());
    assert.equal(ok.status, 'success', JSON.stringify(ok.error));
    assert.equal(ok.metrics.hostCalls.log, 3);
    const over = await limited.executeHandler('console.log(1); $log(2); console.warn(3); try { console.error(4) } catch (e) {} return 1', context());
    assert.equal(over.status, 'error');
    assert.deepEqual([over.error.code, over.error.message],
      ['RESOURCE_LIMIT', 'Too many host calls: an execution may make config.maxHostCalls (3)']);
  } finally {
    await limited.shutdown();
  }
});

test('console lines count against config.maxResultBytes like $log lines', async () => {
  const r = await rt.executeHandler(
    "const s = 'y'.repeat(1 << 20); for (let i = 0; i < 40; i++) (i % 2 ? $log : console.log)(s); return 'done'", context(), 5000);
  assert.equal(r.error.code, 'RESOURCE_LIMIT');
  assert.equal(r.error.message,
    'Result too large: config.maxResultBytes (8388608 bytes) was reached while encoding logs[7]');
  assert.equal(r.logs.length, 7);
  assert.equal((await run('console.log("after"); return 1')).logs.length, 1);
});

test('console.count/time/group/assert/trace, and their state does not outlive the execution', async () => {
  const code = `console.count(); console.count('a'); console.count(); console.countReset('a'); console.count('a');
    console.countReset('nope');
    console.group('g'); console.log('x\\ny'); console.group(); console.warn('deep'); console.groupEnd(); console.groupEnd(); console.groupEnd();
    console.log('out');
    console.assert(true, 'never'); console.assert(false, 'a', 1); console.assert(0); console.assert(null, { k: 1 });
    console.trace('here', 1); console.table([1]); console.dir({ d: 1 });
    console.time('t'); console.time('t'); console.timeEnd('nope');`;
  const expected = [
    'info default: 1', 'info a: 1', 'info default: 2', 'info a: 1', "warn Count for 'nope' does not exist",
    'info g', 'info   x\n  y', 'warn     deep', 'info out',
    'error Assertion failed: a 1', 'error Assertion failed', 'error Assertion failed {"k":1}',
    'debug Trace: here 1', 'info [1]', 'info {"d":1}',
    "warn Timer 't' already exists", "warn Timer 'nope' does not exist",
  ];
  // The same run twice: counters, timers and groups start afresh.
  assert.deepEqual(messages(await run(code)), expected);
  assert.deepEqual(messages(await run(code)), expected);
  const timed = await run("console.time('t'); console.timeLog('t', 'mid'); console.timeEnd('t'); console.timeEnd('t')");
  assert.equal(timed.logs.length, 3);
  assert.match(timed.logs[0].message, /^t: \d+\.\d{3}ms mid$/);
  assert.match(timed.logs[1].message, /^t: \d+\.\d{3}ms$/);
  assert.equal(timed.logs[2].message, "Timer 't' does not exist");
});

test('console is a global like the others: replacing it fools only this execution', async () => {
  const r = await run("const mine = []; console = { log: (m) => mine.push(m) }; console.log('hidden'); return mine");
  assert.deepEqual(r.returnValue, ['hidden']);
  assert.deepEqual(r.logs, []);
  const next = await run("console.log('back'); return [typeof console, Object.isFrozen(console), Object.keys(globalThis).includes('console')]");
  assert.deepEqual(next.returnValue, ['object', true, false]);
  assert.deepEqual(messages(next), ['info back']);
});

test('console needs no capability', async () => {
  const r = await rt.executeHandler("console.log('free'); return 1", context({ capabilities: [] }));
  assert.equal(r.status, 'success', JSON.stringify(r.error));
  assert.deepEqual(messages(r), ['info free']);
});

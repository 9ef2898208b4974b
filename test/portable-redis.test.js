'use strict';
// Portable suspensions across processes through a real Redis (test/redis.js
// starts one on a free loopback port; a missing redis-server fails these
// tests, it never skips them): the runtime API and the executor, each side
// a child process (test/fixtures/redis-side.js).
const { test, before, after } = require('node:test');
const assert = require('node:assert');
const crypto = require('crypto');
const path = require('path');
const { spawn } = require('child_process');
const { startRedis } = require('./redis');
const { runtime } = require('./helpers');
const { WEATHER, WEATHER_CONTEXT } = require('./fixtures/portable-child');

const SIDE = path.join(__dirname, 'fixtures', 'redis-side.js');
const KEY = crypto.randomBytes(32).toString('hex');
const ANSWER = { sky: 'rain', lowC: 3, highC: 9 };
let redis;

before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis.stop();
});

// A child process running one side; resolves with its last line of JSON.
// `onLine` sees every line as it comes (for READY).
function side(args, { env = {}, onLine } = {}) {
  const child = spawn(process.execPath, [SIDE, ...args], {
    env: { ...process.env, NX_REDIS: redis.url, NX_PORTABLE_KEY: KEY, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const done = new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      const lines = (out + d).split('\n');
      out = lines.pop();
      for (const line of lines) {
        if (onLine) onLine(line, child);
        if (line.startsWith('{')) child.last = line;
      }
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`${args.join(' ')} exited with ${code}: ${err}`));
      else resolve(JSON.parse(child.last));
    });
  });
  done.child = child;
  return done;
}

// What two results of the same execution must share (timings aside).
function comparable(r) {
  const { durationUs, memoryUsedBytes, memoryPeakBytes, instructionCount, compilationTimeUs, cacheHit, ...metrics } = r.metrics;
  return { ...r, metrics };
}

test('suspended in process A, resumed in process B through Redis: the same result as in one process, metrics included', async () => {
  const a = await side(['park', '1']);
  const b = await side(['resume', a.ids[0]]);
  const rt = runtime();
  try {
    const first = await rt.executeHandler(WEATHER, WEATHER_CONTEXT);
    const local = await rt.resumeHandler(first.suspension.suspensionId, { success: true, value: ANSWER });
    assert.deepStrictEqual(comparable({ ...a.first, suspension: null, pendingCalls: null }), comparable({ ...first, suspension: null, pendingCalls: null }));
    assert.deepStrictEqual(comparable(b.results[0]), comparable(local));
    assert.strictEqual(b.results[0].status, 'success');
    assert.deepStrictEqual(b.results[0].returnValue, { city: 'Oslo', summary: 'rain, 3–9 °C' });
    assert.ok(b.results[0].metrics.hostCalls['state.set'] > 0, 'host calls are counted across the move');
  } finally {
    await rt.shutdown();
  }
});

test('the executor parks to Redis in process A; process B resumes it with executor.resume: the same value, state and effects as one process', async () => {
  const a = await side(['execute']);
  assert.match(a.id, /^[0-9a-f]{32}$/);
  assert.strictEqual(a.state.loading, true, 'A applied what the handler did before the await');
  const b = await side(['continue', a.id], {
    env: { NX_STATE: JSON.stringify(a.state) },
    onLine: (line, child) => line === 'READY' && child.stdin.end('go\n'),
  });
  const { WasmSandboxExecutor } = require('..');
  const rt = runtime();
  try {
    const state = { ...WEATHER_CONTEXT.stateSnapshot };
    const seen = [];
    const note = (kind) => (list) => seen.push([kind, list]);
    const value = await new WasmSandboxExecutor(rt).execute({
      code: WEATHER, panelId: 'weather', handlerName: 'refresh', state, args: WEATHER_CONTEXT.args,
      extensions: { weather: { forecast: async () => ({ ...ANSWER }) } },
      onMutations: note('mutations'), onEvents: note('events'), onViewCommands: note('view'), onLogs: note('logs'),
    });
    assert.deepStrictEqual(b.value, value);
    assert.deepStrictEqual(b.state, state);
    assert.deepStrictEqual([...a.seen, ...b.seen], seen, 'A saw the effects before the await, B those after it');
  } finally {
    await rt.shutdown();
  }
});

test('two processes resume the same suspension at once: exactly one wins, the other gets SUSPENSION_NOT_FOUND', async () => {
  for (let round = 0; round < 3; round++) {
    const a = await side(['execute']);
    let ready = 0;
    const children = [];
    const go = () => {
      if (++ready === 2) for (const c of children) c.stdin.end('go\n');
    };
    const runs = [0, 1].map(() => {
      const p = side(['continue', a.id], { env: { NX_STATE: JSON.stringify(a.state) }, onLine: (line) => line === 'READY' && go() });
      children.push(p.child);
      return p;
    });
    const outcomes = await Promise.all(runs);
    const won = outcomes.filter((o) => !o.error);
    const lost = outcomes.filter((o) => o.error);
    assert.strictEqual(won.length, 1, JSON.stringify(outcomes));
    assert.deepStrictEqual(won[0].value, { city: 'Oslo', summary: 'rain, 3–9 °C' });
    assert.strictEqual(lost[0].error.code, 'SUSPENSION_NOT_FOUND');
  }
});

test('shutdown({ drainTo: Redis }) in one process; a new process resumes every drained execution', async () => {
  const a = await side(['drain', '4']);
  assert.deepStrictEqual([...a.drained].sort(), [...a.ids].sort());
  assert.deepStrictEqual(a.failed, []);
  const b = await side(['resume', ...a.drained]);
  assert.strictEqual(b.results.length, 4);
  for (const r of b.results) {
    assert.strictEqual(r.status, 'success');
    assert.deepStrictEqual(r.returnValue, { city: 'Oslo', summary: 'rain, 3–9 °C' });
  }
});

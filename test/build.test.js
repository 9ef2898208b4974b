'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { NexusRuntime } = require('..');
const { context, runtime } = require('./helpers');

const ROOT = path.join(__dirname, '..');

test('the engine is wasm2c output of the pinned quickjs-wasi, built into build/', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  assert.match(pkg.dependencies['quickjs-wasi'], /^\d+\.\d+\.\d+$/, 'pinned to an exact version');
  const gen = fs.readdirSync(path.join(ROOT, 'build', 'Release', 'obj', 'gen', 'nexus'));
  assert.deepEqual(gen.sort(), ['bootstrap_js.h', 'contract.h', 'qjs_api.h', 'qjs_guard_names.h', 'qjs_wasm.c', 'qjs_wasm.h']);
});

// Only a git checkout can say what is committed (an installed package is not one).
let tracked = null;
try {
  if (execFileSync('git', ['rev-parse', '--show-toplevel'], { cwd: ROOT, encoding: 'utf8' }).trim() === fs.realpathSync(ROOT)) {
    tracked = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' }).split('\n');
  }
} catch {
  tracked = null;
}
if (tracked) {
  test('build output and the generated engine are never committed', () => {
    assert.ok(tracked.includes('src/engine.c') && tracked.includes('package.json'), 'git ls-files lists the sources');
    assert.deepEqual(tracked.filter((f) => /(^|\/)build\/|\.node$|qjs_wasm|node_modules\//.test(f)), []);
  });
} else {
  test('build output and the generated engine are never committed: skipped, not a git checkout', { skip: 'not a git checkout' }, () => {});
}

test('four worker threads run sandboxes side by side with correct results', async () => {
  const rt = runtime({ workers: 4, maxInstances: 4 });
  try {
    // Side by side: four executions that each stay running for 1000 ms of
    // their own clock, submitted at once, were all running at one instant
    // (the latest start comes before the earliest end). With fewer threads
    // than executions they would run one after another and not overlap.
    const spin = 'const start = Date.now(); while (Date.now() - start < 1000) {} return [$args.i, start, Date.now()]';
    const spans = await Promise.all([0, 1, 2, 3].map((i) => rt.executeHandler(spin, context({ args: { i } }))));
    spans.forEach((r, i) => assert.equal(r.returnValue?.[0], i, JSON.stringify(r.error)));
    const latestStart = Math.max(...spans.map((r) => r.returnValue[1]));
    const earliestEnd = Math.min(...spans.map((r) => r.returnValue[2]));
    assert.ok(latestStart < earliestEnd, `not concurrent: ${JSON.stringify(spans.map((r) => r.returnValue))}`);
    // and forty recursive computations on those four threads are all correct
    const fib = 'function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2) } return [$args.n, fib($args.n)]';
    const expected = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181];
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) =>
      rt.executeHandler(fib, context({ args: { n: i % 20 } }))));
    results.forEach((r, i) => assert.deepEqual(r.returnValue, [i % 20, expected[i % 20]]));
    assert.equal(rt.getStats().workers, 4);
    assert.equal(rt.getStats().liveInstances, 4);
  } finally {
    await rt.shutdown();
  }
});

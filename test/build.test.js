'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { NexusRuntime } = require('..');
const { context } = require('./helpers');

const ROOT = path.join(__dirname, '..');

test('the engine is wasm2c output of the pinned quickjs-wasi, built into build/ and never committed', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  assert.match(pkg.dependencies['quickjs-wasi'], /^\d+\.\d+\.\d+$/, 'pinned to an exact version');
  const gen = fs.readdirSync(path.join(ROOT, 'build', 'Release', 'obj', 'gen', 'nexus'));
  assert.deepEqual(gen.sort(), ['bootstrap_js.h', 'contract.h', 'qjs_wasm.c', 'qjs_wasm.h']);
  let tracked = [];
  try {
    tracked = execFileSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' }).split('\n');
  } catch {
    return; // not a git checkout (installed package): nothing to check
  }
  assert.deepEqual(tracked.filter((f) => /(^|\/)build\/|\.node$|qjs_wasm|node_modules\//.test(f)), []);
});

test('four worker threads run sandboxes side by side with correct results', async () => {
  const rt = new NexusRuntime({ workers: 4, maxInstances: 4 });
  const fib = 'function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2) } return [$args.n, fib($args.n)]';
  const expected = [0, 1, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181];
  const results = await Promise.all(Array.from({ length: 40 }, (_, i) =>
    rt.executeHandler(fib, context({ args: { n: i % 20 } }))));
  results.forEach((r, i) => assert.deepEqual(r.returnValue, [i % 20, expected[i % 20]]));
  assert.equal(rt.getStats().workers, 4);
  await rt.shutdown();
});

'use strict';
// Builds the standalone C test of src/metrics.c with gcc (no addon needed),
// runs it, and has promtool lint the exposition it renders.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.join(__dirname, '..');

function onPath(cmd) {
  const r = spawnSync(cmd, ['--version'], { encoding: 'utf8' });
  return !(r.error && r.error.code === 'ENOENT');
}

const haveGcc = onPath('gcc');
const havePromtool = onPath('promtool');

if (!haveGcc) {
  test('metrics exposition (skipped: gcc not installed, cannot build test/c/metrics_test.c)',
    { skip: 'gcc not installed' }, () => {});
} else {
  test('metrics: C test passes and promtool accepts the rendered exposition', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexus-metrics-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const exe = path.join(dir, 'metrics_test');
    const out = path.join(dir, 'metrics.prom');

    const cc = spawnSync('gcc', [
      '-std=c11', '-D_GNU_SOURCE', '-O1', '-Wall', '-Wextra', '-Werror', '-pthread',
      '-Isrc', 'test/c/metrics_test.c', 'src/metrics.c', 'src/errors.c', '-o', exe,
    ], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(cc.status, 0, `gcc failed:\n${cc.stderr}`);

    const run = spawnSync(exe, [out], { encoding: 'utf8', timeout: 120000 });
    assert.equal(run.status, 0, `metrics_test failed:\n${run.stdout}${run.stderr}`);
    assert.match(run.stdout, /^\d+ passed, 0 failed\n$/m);
    const text = fs.readFileSync(out, 'utf8');
    assert.match(text, /^# TYPE nexus_executions_total counter$/m);
    assert.match(text, /^nexus_execution_duration_seconds_count 10$/m);

    if (!havePromtool) {
      await t.test('promtool check metrics (skipped: promtool not installed)',
        { skip: 'promtool not installed; scripts/setup.sh installs the prometheus package' },
        () => {});
      return;
    }
    await t.test('promtool check metrics accepts the output', () => {
      const lint = spawnSync('promtool', ['check', 'metrics'], {
        input: text, encoding: 'utf8', timeout: 60000,
      });
      assert.equal(lint.status, 0, `promtool check metrics:\n${lint.stdout}${lint.stderr}`);
    });
  });
}

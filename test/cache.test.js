'use strict';
// Builds and runs the C harness for the compile cache and SHA-256
// (test/c/cache_test.c) on its own, outside the addon: it needs only gcc.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.join(__dirname, '..');
const SOURCES = ['test/c/cache_test.c', 'src/blob.c', 'src/cache.c', 'src/cache_disk.c', 'src/sha256.c', 'src/util.c'];
const FLAGS = ['-std=c11', '-D_GNU_SOURCE', '-O1', '-Wall', '-Wextra', '-Werror', '-pthread', '-Isrc'];

const haveGcc = !spawnSync('gcc', ['--version'], { stdio: 'ignore' }).error;
const name = 'compile cache and SHA-256: C harness (gcc -Werror, then run)';

if (!haveGcc) {
  test.skip(`${name}: skipped, gcc is not installed`, () => {});
} else {
  test(name, (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nx-cache-test-'));
    t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const exe = path.join(dir, 'cache_test');

    const cc = spawnSync('gcc', [...FLAGS, ...SOURCES, '-o', exe], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(cc.status, 0, `gcc failed:\n${cc.stderr}`);

    const run = spawnSync(exe, [dir], { cwd: ROOT, encoding: 'utf8', timeout: 120000 });
    const out = `${run.stdout}\n${run.stderr}`;
    assert.equal(run.error, undefined, `could not run the harness: ${run.error}`);
    assert.equal(run.status, 0, `harness failed:\n${out}`);
    const last = run.stdout.trim().split('\n').pop();
    assert.match(last, /^[1-9]\d* passed, 0 failed$/, out);
  });
}

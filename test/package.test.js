'use strict';
// What `npm pack` ships: exactly what installing and building the package
// needs (and its documentation), nothing the build reads left out. Checked on
// a copy of the package with stand-ins for the files the prepack script
// makes (gen/, prebuilds/), listed by `npm pack --dry-run`.
// The real tarball is installed for real by scripts/test-install.sh.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { execFileSync } = require('child_process');

const ROOT = path.join(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const GENERATED = ['gen/qjs_wasm.c', 'gen/qjs_wasm.h', 'gen/wabt/wasm-rt.h', 'prebuilds/linux-x64/nexus-wasm-bridge.glibc.node'];
// Made during the build by binding.gyp's actions from shipped inputs.
const BUILT = new Set(['bootstrap_js.h', 'contract.h', 'qjs_api.h', 'qjs_guard_names.h']);

function packList() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexus-pack-'));
  try {
    // Not copied: what npm pack leaves out anyway and is big (dependencies,
    // the runtimes of test/runtimes, build output), and any real gen/ or
    // prebuilds/ (the stand-ins replace them).
    const skipAnywhere = new Set(['node_modules', '.git', '.deno']);
    const skipTop = new Set(['build', 'build-asan', 'gen', 'prebuilds']);
    fs.cpSync(ROOT, dir, {
      recursive: true,
      filter: (src) => {
        const parts = path.relative(ROOT, src).split(path.sep);
        return !skipTop.has(parts[0]) && !parts.some((p) => skipAnywhere.has(p));
      },
    });
    for (const f of GENERATED) {
      fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
      fs.writeFileSync(path.join(dir, f), 'stand-in\n');
    }
    // --ignore-scripts: the stand-ins take the prepack script's place.
    const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: dir, encoding: 'utf8' });
    return JSON.parse(out)[0].files.map((f) => f.path).sort();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// Files reached from binding.gyp (sources, action scripts and inputs), from
// those C files' #include "..." lines, and from relative require()s of the
// JavaScript the build and the package run.
function needed() {
  const need = new Set(['package.json', 'binding.gyp', pkg.types, pkg.main, ...Object.values(pkg.bin), ...GENERATED]);
  const gyp = fs.readFileSync(path.join(ROOT, 'binding.gyp'), 'utf8');
  // (include_dirs name directories: not files to ship one by one)
  for (const m of gyp.matchAll(/'((?:src|scripts)\/[\w./-]+\.\w+)'/g)) need.add(m[1]);
  for (const m of gyp.matchAll(/node (scripts\/[\w.-]+\.js)/g)) need.add(m[1]);
  for (const f of fs.readdirSync(path.join(ROOT, 'lib'))) need.add(`lib/${f}`);
  const includeDirs = ['src/wasm_rt', 'src', 'gen', 'gen/wabt'];
  assert.ok(fs.existsSync(path.join(ROOT, 'build/Release/obj/gen/nexus/qjs_wasm.h')), 'the addon is built');
  const queue = [...need];
  while (queue.length) {
    const file = queue.pop();
    // The engine's C is read where this checkout's build wrote it.
    const abs = file.startsWith('gen/') ? path.join(ROOT, 'build/Release/obj/gen/nexus', file.slice(4)) : path.join(ROOT, file);
    if (!fs.existsSync(abs) || !fs.statSync(abs).isFile() || file.startsWith('prebuilds/')) continue;
    const text = fs.readFileSync(abs, 'utf8');
    const found = [];
    if (/\.[ch]$/.test(file)) {
      for (const m of text.matchAll(/^#\s*include\s+"([^"]+)"/gm)) {
        if (BUILT.has(m[1])) continue;
        const dirs = [path.dirname(file), ...includeDirs];
        const hit = dirs.map((d) => path.posix.join(d, m[1])).find((f) => fs.existsSync(path.join(ROOT, f)) || GENERATED.includes(f));
        assert.ok(hit, `${file} includes "${m[1]}", found nowhere on the include path`);
        found.push(hit);
      }
    } else if (/\.js$/.test(file)) {
      for (const m of text.matchAll(/require\('(\.{1,2}\/[^']+)'\)/g)) {
        let f = path.posix.join(path.dirname(file), m[1]);
        if (!f.endsWith('.js') && !f.endsWith('.json')) f += '.js';
        found.push(f);
      }
    }
    for (const f of found) if (!need.has(f)) { need.add(f); queue.push(f); }
  }
  return need;
}

test('npm pack ships what the build and the package need, and nothing but that and the docs', () => {
  const list = packList();
  const need = needed();
  assert.deepEqual([...need].filter((f) => !list.includes(f)).sort(), [], 'needed but not shipped');
  const docs = (f) => /^(README\.md|SECURITY\.md|LICENSE|docs\/.+|examples\/.+)$/.test(f);
  assert.deepEqual(list.filter((f) => !need.has(f) && !docs(f)), [], 'shipped but neither needed nor documentation');
  // Sanity of the check itself: the engine's C, the prebuilt binary, the C
  // sources and the scripts binding.gyp runs are among them.
  for (const f of [...GENERATED, 'src/engine.c', 'src/wasm_rt/wasm-rt.h', 'scripts/engine-c.js', 'src/contract.js']) {
    assert.ok(list.includes(f), `${f} shipped`);
  }
  assert.ok(!list.some((f) => /^(test|bench|build|node_modules)\/|^\.ci\//.test(f)), 'no tests, benchmarks or build output');
});

test('every package lib/ and bin/ require()s is a pinned dependency', () => {
  const deps = pkg.dependencies;
  for (const dir of ['lib', 'bin']) {
    for (const f of fs.readdirSync(path.join(ROOT, dir))) {
      const text = fs.readFileSync(path.join(ROOT, dir, f), 'utf8');
      for (const m of text.matchAll(/require\('([^.'][^']*)'\)/g)) {
        const name = m[1].startsWith('@') ? m[1].split('/').slice(0, 2).join('/') : m[1].split('/')[0];
        if (name.startsWith('node:') || require('module').builtinModules.includes(name)) continue;
        assert.match(deps[name] || '', /^\d+\.\d+\.\d+$/, `${dir}/${f} requires ${name}: a dependency pinned to an exact version`);
      }
    }
  }
});

test('the install step is node-gyp-build: a prebuild that loads means no compiler is run', () => {
  assert.equal(pkg.scripts.install, 'node-gyp-build');
  assert.equal(pkg.scripts.prepack, 'sh scripts/prepack.sh');
  assert.match(pkg.devDependencies.prebuildify, /^\d+\.\d+\.\d+$/);
});

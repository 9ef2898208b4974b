'use strict';
// Build step: puts the engine's C (wasm2c output of quickjs-wasi's
// quickjs.wasm: qjs_wasm.c, qjs_wasm.h, and wabt's wasm-rt.h it was
// generated against) into the build directory.
//  - In the published package the C is shipped in gen/ (made by npm pack):
//    it is checked against the installed quickjs.wasm and copied, so a
//    source build needs no wasm2c.
//  - In a checkout there is no gen/: wasm2c (Debian `wabt`) generates it.
// Either way every file opens with the same stamp (wabt version, quickjs-wasi
// version, SHA-256 of quickjs.wasm), so the C always says what it came from.
//
// Usage: engine-c.js WASM OUT_DIR        write OUT_DIR/qjs_wasm.{c,h} and
//                                        OUT_DIR/wabt/wasm-rt.h
//        engine-c.js --check DIR WASM    verify DIR's stamps only
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { execFileSync } = require('child_process');

const ROOT = path.join(__dirname, '..');
const SHIPPED = path.join(ROOT, 'gen');
// qjs_wasm.h includes "wasm-rt.h"; a quoted include looks in the including
// file's own directory first, so wabt's header must not sit beside it (it
// would shadow src/wasm_rt/wasm-rt.h, which includes it with #include_next).
const FILES = ['qjs_wasm.c', 'qjs_wasm.h', path.join('wabt', 'wasm-rt.h')];
const STAMP = /^\/\* nexus-wasm-bridge engine: wabt ([^,]+), quickjs-wasi ([^,]+), quickjs\.wasm sha256 ([0-9a-f]{64}) \*\/\n/;

function fail(msg) {
  process.stderr.write(`nexus-wasm-bridge: ${msg}\n`);
  process.exit(1);
}

function expected(wasm) {
  return {
    qjs: require('quickjs-wasi/package.json').version,
    sha: crypto.createHash('sha256').update(fs.readFileSync(wasm)).digest('hex'),
  };
}

function stamp(wabt, qjs, sha) {
  return `/* nexus-wasm-bridge engine: wabt ${wabt}, quickjs-wasi ${qjs}, quickjs.wasm sha256 ${sha} */\n`;
}

// The stamps of DIR's three files: all present, all alike, and naming the
// quickjs.wasm installed here. Returns the stamp.
function check(dir, wasm) {
  const want = expected(wasm);
  let first = null;
  for (const f of FILES) {
    const file = path.join(dir, f);
    let head;
    try {
      const fd = fs.openSync(file, 'r');
      const buf = Buffer.alloc(200);
      head = buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0)).toString('latin1');
      fs.closeSync(fd);
    } catch (err) {
      fail(`${file}: ${err.message}`);
    }
    const m = STAMP.exec(head);
    if (!m) fail(`${file} has no engine stamp (not made by scripts/engine-c.js)`);
    if (first === null) first = m[0];
    if (m[0] !== first) fail(`${file} and ${path.join(dir, FILES[0])} come from different wasm2c runs`);
    if (m[2] !== want.qjs || m[3] !== want.sha) {
      fail(`${file} was generated from quickjs-wasi ${m[2]} (quickjs.wasm sha256 ${m[3]}), ` +
        `but quickjs-wasi ${want.qjs} (sha256 ${want.sha}) is installed: reinstall the package ` +
        '(in a checkout: delete gen/)');
    }
  }
  return first;
}

function wabtVersion() {
  try {
    return execFileSync('wasm2c', ['--version'], { encoding: 'utf8' }).trim();
  } catch (err) {
    return fail('wasm2c (Debian/Ubuntu package `wabt`) is needed to build from a checkout: ' +
      `sh scripts/setup.sh installs it (${err.message})`);
  }
}

// wasm-rt.h of the wabt whose wasm2c is on PATH (PREFIX/bin/wasm2c ->
// PREFIX/include/wasm-rt.h; Debian also keeps a copy in /usr/src/wasm2c).
function wabtHeader() {
  const bin = execFileSync('sh', ['-c', 'command -v wasm2c'], { encoding: 'utf8' }).trim();
  const prefix = path.resolve(path.dirname(fs.realpathSync(bin)), '..');
  for (const f of [path.join(prefix, 'include', 'wasm-rt.h'), path.join(prefix, 'src', 'wasm2c', 'wasm-rt.h')]) {
    if (fs.existsSync(f)) return f;
  }
  return fail(`wasm-rt.h of the wabt at ${prefix} not found`);
}

function generate(wasm, out) {
  const wabt = wabtVersion();
  const { qjs, sha } = expected(wasm);
  const head = stamp(wabt, qjs, sha);
  // Into a scratch directory first, under the final names (wasm2c writes
  // the header beside the .c and names it after it).
  const tmp = fs.mkdtempSync(path.join(out, 'wasm2c-'));
  execFileSync('wasm2c', [wasm, '-n', 'qjs', '-o', path.join(tmp, 'qjs_wasm.c')], { stdio: 'inherit' });
  fs.writeFileSync(path.join(out, 'qjs_wasm.h'), head + fs.readFileSync(path.join(tmp, 'qjs_wasm.h'), 'latin1'), 'latin1');
  fs.writeFileSync(path.join(out, 'wabt', 'wasm-rt.h'), head + fs.readFileSync(wabtHeader(), 'latin1'), 'latin1');
  // The .c last: it is the action's declared output, so make sees it only
  // once everything is in place.
  fs.writeFileSync(path.join(out, 'qjs_wasm.c'), head + fs.readFileSync(path.join(tmp, 'qjs_wasm.c'), 'latin1'), 'latin1');
  fs.rmSync(tmp, { recursive: true });
}

function copyShipped(wasm, out) {
  check(SHIPPED, wasm);
  for (const f of [FILES[1], FILES[2], FILES[0]]) fs.copyFileSync(path.join(SHIPPED, f), path.join(out, f));
}

const argv = process.argv.slice(2);
if (argv[0] === '--check') {
  process.stdout.write(check(argv[1], argv[2]));
} else {
  const [wasm, out] = argv;
  if (!wasm || !out) fail('usage: engine-c.js WASM OUT_DIR');
  fs.mkdirSync(path.join(out, 'wabt'), { recursive: true });
  if (fs.existsSync(path.join(SHIPPED, FILES[0]))) copyShipped(wasm, out);
  else generate(wasm, out);
}

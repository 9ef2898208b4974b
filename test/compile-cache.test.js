'use strict';
// The compile cache: one compilation per distinct source, a byte-bounded
// memory LRU, and an optional directory shared between runtimes and
// processes whose damaged files are ignored and replaced.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { context, runtime } = require('./helpers');

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nx-compile-cache-'));
test.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
let dirs = 0;
const newDir = () => path.join(tmp, `d${dirs++}`);

const NAME = /^[0-9a-f]{64}\.nxc$/;
const HEADER = 48;
const sha256 = (...bufs) => crypto.createHash('sha256').update(Buffer.concat(bufs)).digest();

// A family of distinct sources with known results.
const src = (tag, i) => `const t = ${JSON.stringify(`${tag}-${i}`)}; $emit('ran', t); return t.length * 1000 + ${i} + $args.k`;
const expected = (tag, i, k = 1) => `${tag}-${i}`.length * 1000 + i + k;

async function runOk(rt, code, k = 1) {
  const r = await rt.executeHandler(code, context({ args: { k } }));
  assert.equal(r.status, 'success', JSON.stringify(r.error));
  assert.equal(typeof r.metrics.cacheHit, 'boolean');
  assert.equal(typeof r.metrics.compilationTimeUs, 'number');
  return r;
}

let engineTag;
async function engine() {
  if (!engineTag) {
    const rt = runtime({ workers: 1 });
    const bc = Buffer.from(await rt.precompileHandler('return 1'));
    engineTag = bc.subarray(76, 76 + bc.readUInt16LE(6));
    await rt.shutdown();
  }
  return engineTag;
}
// The cache key, by the documented rule: SHA-256 of the engine tag, a NUL,
// the language, a NUL, the source as given.
async function keyOf(code, language = 'js') {
  return sha256(await engine(), Buffer.from([0]), Buffer.from(language), Buffer.from([0]), Buffer.from(code, 'utf8'));
}
async function fileOf(dir, code, language) {
  return path.join(dir, `${(await keyOf(code, language)).toString('hex')}.nxc`);
}

async function assertGoodFile(file, code) {
  const f = fs.readFileSync(file);
  assert.ok(f.length > HEADER, `${file}: ${f.length} bytes`);
  assert.equal(f.subarray(0, 4).toString('latin1'), 'NXBC');
  assert.equal(f.readUInt32LE(4), 1);
  assert.equal(Number(f.readBigUInt64LE(8)), f.length - HEADER);
  assert.deepEqual(f.subarray(16, 48), sha256(await keyOf(code), f.subarray(HEADER)));
}

// Bytes QuickJS would load and run, but not the ones the runtime wrote: a
// string constant of the bytecode changed (same length) and QuickJS's own
// bytecode checksum escaped (0xffffffff after the version byte, see
// bytecode.test.js). The file's header keeps its old SHA-256: only that
// check can tell. Run, the file would make the handler emit `to`.
function tamper(file, from, to) {
  const b = fs.readFileSync(file);
  const at = b.indexOf(Buffer.from(from, 'latin1'), HEADER);
  assert.ok(at > HEADER && from.length === to.length, `${from} in ${file}`);
  b.write(to, at, 'latin1');
  b.writeUInt32LE(0xffffffff, HEADER + 1);
  fs.writeFileSync(file, b);
}

function dirBytes(dir) {
  return fs.readdirSync(dir).reduce((n, name) => n + fs.statSync(path.join(dir, name)).size, 0);
}

test('memory: compiled once per distinct source; stats count hits, misses and entries', async () => {
  const rt = runtime({ workers: 1, maxInstances: 1 });
  try {
    const s0 = rt.getStats();
    assert.equal(s0.cacheEntries, 0);
    assert.equal(s0.cacheHits, 0);
    assert.equal(s0.cacheMisses, 0);
    assert.equal(s0.cacheHitRate, 0);

    const first = await runOk(rt, src('m', 0));
    assert.equal(first.metrics.cacheHit, false);
    assert.equal(first.returnValue, expected('m', 0));
    const second = await runOk(rt, src('m', 0), 5);
    assert.equal(second.metrics.cacheHit, true);
    assert.equal(second.returnValue, expected('m', 0, 5));
    assert.deepEqual(second.events, [{ name: 'ran', payload: 'm-0' }]);
    let s = rt.getStats();
    assert.equal(s.cacheMisses, 1);
    assert.equal(s.cacheHits, 1);
    assert.equal(s.cacheEntries, 1);
    assert.ok(s.cacheBytes > 0);
    assert.equal(s.cacheHitRate, 0.5);

    // distinct sources are distinct entries (even when they differ in one space)
    for (let i = 1; i <= 5; i++) assert.equal((await runOk(rt, src('m', i))).metrics.cacheHit, false);
    assert.equal((await runOk(rt, `${src('m', 1)} `)).metrics.cacheHit, false);
    s = rt.getStats();
    assert.equal(s.cacheEntries, 7);
    assert.equal(s.cacheMisses, 7);
    for (let i = 0; i <= 5; i++) {
      const r = await runOk(rt, src('m', i), 2);
      assert.equal(r.metrics.cacheHit, true);
      assert.equal(r.returnValue, expected('m', i, 2));
    }
    s = rt.getStats();
    assert.equal(s.cacheEntries, 7);
    assert.equal(s.cacheHits, 7);
    assert.equal(s.cacheMisses, 7);
    assert.equal(s.cacheHitRate, 0.5);
    // a cached source behaves exactly like a fresh compile, errors included
    const e1 = await rt.executeHandler('const a = 1;\n  null.x', context());
    const e2 = await rt.executeHandler('const a = 1;\n  null.x', context());
    assert.equal(e1.metrics.cacheHit, false);
    assert.equal(e2.metrics.cacheHit, true);
    assert.deepEqual(e2.error, e1.error);
    assert.deepEqual(e2.error.location, { line: 2, column: 3 });
  } finally {
    await rt.shutdown();
  }
});

test('memory: maxCacheBytes 0 never hits', async () => {
  const rt = runtime({ workers: 1, maxCacheBytes: 0 });
  try {
    for (let i = 0; i < 4; i++) {
      const r = await runOk(rt, src('zero', 0), i);
      assert.equal(r.metrics.cacheHit, false);
      assert.equal(r.returnValue, expected('zero', 0, i));
    }
    const s = rt.getStats();
    assert.equal(s.cacheEntries, 0);
    assert.equal(s.cacheBytes, 0);
    assert.equal(s.cacheHits, 0);
    assert.equal(s.cacheHitRate, 0);
  } finally {
    await rt.shutdown();
  }
});

test('memory: a small maxCacheBytes evicts the least recently used', async () => {
  const max = 4096;
  const rt = runtime({ workers: 1, maxCacheBytes: max });
  try {
    for (let i = 0; i < 30; i++) await runOk(rt, src('lru', i));
    const s = rt.getStats();
    assert.ok(s.cacheBytes <= max, `cacheBytes ${s.cacheBytes} > ${max}`);
    assert.ok(s.cacheEntries > 0 && s.cacheEntries < 30, `entries ${s.cacheEntries}`);
    // the newest is still there, the oldest was evicted
    const n = s.cacheEntries; // lru-(30 - n) .. lru-29 are cached
    assert.equal((await runOk(rt, src('lru', 29))).metrics.cacheHit, true);
    // least recently *used*: the oldest entry, once hit, outlives the second
    // oldest when a new source needs room
    assert.equal((await runOk(rt, src('lru', 30 - n))).metrics.cacheHit, true);
    await runOk(rt, src('lru', 30));
    assert.equal(rt.getStats().cacheEntries, n);
    assert.equal((await runOk(rt, src('lru', 30 - n))).metrics.cacheHit, true, 'the recently used entry was evicted');
    assert.equal((await runOk(rt, src('lru', 31 - n))).metrics.cacheHit, false, 'the least recently used entry was kept');
    const old = await runOk(rt, src('lru', 0));
    assert.equal(old.metrics.cacheHit, false);
    assert.equal(old.returnValue, expected('lru', 0));
    assert.ok(rt.getStats().cacheBytes <= max);
  } finally {
    await rt.shutdown();
  }
});

test('disk: a new runtime on the same cacheDir hits on its first execution', async () => {
  const dir = newDir();
  const code = src('disk', 1);
  const a = runtime({ workers: 1, cacheDir: dir });
  try {
    const r = await runOk(a, code);
    assert.equal(r.metrics.cacheHit, false);
  } finally {
    await a.shutdown();
  }
  const files = fs.readdirSync(dir);
  assert.deepEqual(files, [path.basename(await fileOf(dir, code))]);
  assert.match(files[0], NAME);
  await assertGoodFile(path.join(dir, files[0]), code);

  const b = runtime({ workers: 1, cacheDir: dir });
  try {
    const r = await runOk(b, code, 7);
    assert.equal(r.metrics.cacheHit, true);
    assert.equal(r.returnValue, expected('disk', 1, 7));
    assert.deepEqual(r.events, [{ name: 'ran', payload: 'disk-1' }]);
    assert.equal(b.getStats().cacheHits, 1);
    assert.equal(b.getStats().cacheMisses, 0);
  } finally {
    await b.shutdown();
  }
});

test('disk: a TypeScript source is filed under its language and the source as given', async () => {
  const dir = newDir();
  const code = 'const k: number = $args.k as number;\nreturn k + 1;';
  const a = runtime({ workers: 1, cacheDir: dir });
  try {
    const r = await a.executeHandler(code, context({ args: { k: 1 } }), 0, { language: 'ts' });
    assert.equal(r.returnValue, 2);
    assert.equal(r.metrics.cacheHit, false);
    // the same text as JavaScript does not compile, and does not find the TypeScript's bytecode
    const js = await a.executeHandler(code, context({ args: { k: 1 } }));
    assert.equal(js.error.code, 'COMPILATION_ERROR');
  } finally {
    await a.shutdown();
  }
  assert.deepEqual(fs.readdirSync(dir), [path.basename(await fileOf(dir, code, 'ts'))]);
  const b = runtime({ workers: 1, cacheDir: dir });
  try {
    const r = await b.executeHandler(code, context({ args: { k: 5 } }), 0, { language: 'ts' });
    assert.equal(r.returnValue, 6);
    assert.equal(r.metrics.cacheHit, true);
  } finally {
    await b.shutdown();
  }
});

test('disk: corrupt, truncated, random, foreign and tampered files are ignored and replaced', async () => {
  const dir = newDir();
  const codes = [0, 1, 2, 3, 4, 5, 6].map((i) => src('bad', i));
  const a = runtime({ workers: 1, cacheDir: dir });
  try {
    for (const c of codes) await runOk(a, c);
  } finally {
    await a.shutdown();
  }
  const files = await Promise.all(codes.map((c) => fileOf(dir, c)));
  for (const f of files) assert.ok(fs.existsSync(f), f);
  const damage = [
    (f) => { const b = fs.readFileSync(f); b[HEADER + Math.floor((b.length - HEADER) / 2)] ^= 0x01; fs.writeFileSync(f, b) },
    (f) => { const b = fs.readFileSync(f); fs.writeFileSync(f, b.subarray(0, Math.floor(b.length / 2))) },
    (f) => { const n = fs.statSync(f).size; fs.writeFileSync(f, crypto.randomBytes(n)) },
    (f) => fs.writeFileSync(f, Buffer.alloc(0)),
    (f) => { const b = fs.readFileSync(f); b.writeBigUInt64LE(BigInt(b.length), 8); fs.writeFileSync(f, b) }, // length lies
    (f) => fs.writeFileSync(f, fs.readFileSync(files[0])), // foreign: a good file of another key
    (f) => tamper(f, 'bad-6', 'BAD-6'), // loadable, but its checksum does not match
  ];
  const pristine0 = fs.readFileSync(files[0]);
  // the foreign case copies file 0, so file 0 is damaged last
  for (let i = 1; i < codes.length; i++) damage[i](files[i]);
  damage[0](files[0]);
  assert.notDeepEqual(fs.readFileSync(files[0]), pristine0);

  const b = runtime({ workers: 1, cacheDir: dir });
  try {
    for (let i = 0; i < codes.length; i++) {
      const r = await runOk(b, codes[i], 3);
      assert.equal(r.metrics.cacheHit, false, `damaged file ${i} was used`);
      assert.equal(r.returnValue, expected('bad', i, 3));
      assert.deepEqual(r.events, [{ name: 'ran', payload: `bad-${i}` }], `file ${i}`);
    }
    assert.equal(b.getStats().cacheMisses, codes.length);
    assert.equal(b.getStats().cacheHits, 0);
  } finally {
    await b.shutdown();
  }
  for (let i = 0; i < codes.length; i++) await assertGoodFile(files[i], codes[i]);
  assert.deepEqual(fs.readdirSync(dir).sort(), files.map((f) => path.basename(f)).sort());

  const c = runtime({ workers: 1, cacheDir: dir });
  try {
    for (let i = 0; i < codes.length; i++) {
      const r = await runOk(c, codes[i], 4);
      assert.equal(r.metrics.cacheHit, true, `replaced file ${i} not used`);
      assert.equal(r.returnValue, expected('bad', i, 4));
    }
  } finally {
    await c.shutdown();
  }
});

test('disk: a damaged file is replaced even while memory caching is off', async () => {
  const dir = newDir();
  const code = src('nomem', 1);
  const a = runtime({ workers: 1, cacheDir: dir, maxCacheBytes: 0 });
  try {
    assert.equal((await runOk(a, code)).metrics.cacheHit, false);
    // memory off: the second execution reads the file
    assert.equal((await runOk(a, code)).metrics.cacheHit, true);
    const f = await fileOf(dir, code);
    // a flipped byte (QuickJS's own checksum would catch it too), then bytes
    // that only the file's checksum refuses
    for (const damage of [
      () => { const b = fs.readFileSync(f); b[b.length - 1] ^= 0xff; fs.writeFileSync(f, b) },
      () => tamper(f, 'nomem-1', 'NOMEM-1'),
    ]) {
      damage();
      const r = await runOk(a, code, 9);
      assert.equal(r.metrics.cacheHit, false);
      assert.equal(r.returnValue, expected('nomem', 1, 9));
      assert.deepEqual(r.events, [{ name: 'ran', payload: 'nomem-1' }]);
      await assertGoodFile(f, code);
      const again = await runOk(a, code);
      assert.equal(again.metrics.cacheHit, true);
      assert.deepEqual(again.events, [{ name: 'ran', payload: 'nomem-1' }]);
    }
  } finally {
    await a.shutdown();
  }
});

// A file whose checksum matches but whose bytecode QuickJS refuses (its own
// bytecode checksum fails) reaches the loader's fallback: compile afresh and
// replace the file. The recompiled handler must still reach the host: the
// failed read closes the execution, so the fallback reopens it.
test('disk: a checksummed file that QuickJS cannot read is recompiled and replaced', async () => {
  const dir = newDir();
  const code = src('unreadable', 1);
  const a = runtime({ workers: 1, cacheDir: dir, maxCacheBytes: 0 });
  try {
    await runOk(a, code);
    const f = await fileOf(dir, code);
    const b = fs.readFileSync(f);
    b[b.length - 1] ^= 0xff; // QuickJS's own checksum no longer matches
    sha256(await keyOf(code), b.subarray(HEADER)).copy(b, 16); // the file's does
    fs.writeFileSync(f, b);
    const r = await a.executeHandler(code, context({ args: { k: 2 } }));
    assert.equal(r.status, 'success', JSON.stringify(r.error));
    assert.equal(r.metrics.cacheHit, false);
    assert.deepEqual(r.events, [{ name: 'ran', payload: 'unreadable-1' }]);
    await assertGoodFile(f, code);
  } finally {
    await a.shutdown();
  }
});

const CHILD = `
  const { NexusRuntime } = require(process.env.NX_PKG);
  const { testConfig } = require(process.env.NX_PKG + '/test/helpers.js');
  const [dir, who] = [process.env.NX_DIR, process.env.NX_WHO];
  const src = ${src.toString()};
  const expected = ${expected.toString()};
  const ctx = (k) => ({ panelId: 'p', handlerName: 'h', stateSnapshot: {}, args: { k }, scope: {}, capabilities: ['events:emit:*'] });
  (async () => {
    const rt = new NexusRuntime(testConfig({ workers: 2, cacheDir: dir }));
    const jobs = [];
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 20; i++) jobs.push(['shared', i], [who, i]);
    }
    const results = await Promise.all(jobs.map(([tag, i], n) => rt.executeHandler(src(tag, i), ctx(n))));
    let bad = 0;
    results.forEach((r, n) => {
      const [tag, i] = jobs[n];
      if (r.status !== 'success' || r.returnValue !== expected(tag, i, n)) { bad++; console.error(JSON.stringify(r)) }
    });
    await rt.shutdown();
    process.stdout.write(JSON.stringify({ ok: results.length - bad, bad }));
  })();
`;

function runChild(dir, who) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['-e', CHILD], {
      env: { ...process.env, NX_PKG: path.join(__dirname, '..'), NX_DIR: dir, NX_WHO: who },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d });
    child.stderr.on('data', (d) => { err += d });
    // a hung child is killed (and the test fails); far above what it needs
    const timer = setTimeout(() => child.kill('SIGKILL'), 60000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, out, err });
    });
  });
}

test('disk: two processes writing one cacheDir at once; every file is then accepted', async () => {
  const dir = newDir();
  const [p1, p2] = await Promise.all([runChild(dir, 'one'), runChild(dir, 'two')]);
  for (const p of [p1, p2]) {
    assert.equal(p.signal, null, `child killed: ${p.err}`);
    assert.equal(p.code, 0, p.err);
    assert.deepEqual(JSON.parse(p.out), { ok: 80, bad: 0 });
  }
  const names = fs.readdirSync(dir);
  assert.ok(names.every((n) => NAME.test(n)), `stray files: ${names.filter((n) => !NAME.test(n))}`);
  const all = [];
  for (const tag of ['shared', 'one', 'two']) for (let i = 0; i < 20; i++) all.push([tag, i]);
  assert.equal(names.length, all.length);
  for (const [tag, i] of all) await assertGoodFile(await fileOf(dir, src(tag, i)), src(tag, i));

  const fresh = runtime({ workers: 2, cacheDir: dir });
  try {
    const results = await Promise.all(all.map(([tag, i]) => runOk(fresh, src(tag, i), 11)));
    results.forEach((r, n) => {
      const [tag, i] = all[n];
      assert.equal(r.metrics.cacheHit, true, `${tag}-${i} was not accepted from disk`);
      assert.equal(r.returnValue, expected(tag, i, 11));
    });
    assert.equal(fresh.getStats().cacheMisses, 0);
  } finally {
    await fresh.shutdown();
  }
});

test('disk: maxDiskCacheBytes keeps the directory bounded', async () => {
  const dir = newDir();
  const max = 8192;
  const rt = runtime({ workers: 1, cacheDir: dir, maxDiskCacheBytes: max, maxCacheBytes: 0 });
  try {
    let peak = 0;
    for (let i = 0; i < 80; i++) {
      const r = await runOk(rt, src('bound', i));
      assert.equal(r.returnValue, expected('bound', i));
      peak = Math.max(peak, dirBytes(dir));
    }
    const size = dirBytes(dir);
    assert.ok(size <= max * 1.5, `directory holds ${size} bytes, bound ${max}`);
    assert.ok(peak <= max * 2, `directory peaked at ${peak} bytes, bound ${max}`);
    const names = fs.readdirSync(dir);
    assert.ok(names.length > 0 && names.length < 80, `${names.length} files`);
    assert.ok(names.every((n) => NAME.test(n)));
    // the newest entry survived the trims and is served from disk
    assert.equal((await runOk(rt, src('bound', 79))).metrics.cacheHit, true);
  } finally {
    await rt.shutdown();
  }
});

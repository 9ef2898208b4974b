'use strict';
// precompileHandler() / executeCompiledHandler(): the same results as from
// source, a checked header, and crafted bytecode that can hurt nothing but
// the sandbox it runs in.
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { context, runtime } = require('./helpers');

const rt = runtime({ workers: 2, maxInstances: 2, memoryLimitBytes: 16 * 1024 * 1024 });
test.after(() => rt.shutdown());

const FIXED = 76;
const PREFIX = 'Invalid handler bytecode: ';
const REGISTRY = { http: ['get'] };
const sha256 = (b) => crypto.createHash('sha256').update(b).digest();

function parts(bc) {
  const buf = Buffer.from(bc);
  const e = buf.readUInt16LE(6);
  return { buf, e, head: buf.subarray(0, FIXED + e), body: Buffer.from(buf.subarray(FIXED + e)) };
}

// The format-2 checksum: SHA-256 of every byte but the checksum field.
const checksum = (b) => sha256(Buffer.concat([b.subarray(0, 40), b.subarray(72)]));

// A buffer whose header is valid for `body`: length and checksum recomputed.
function reseal(bc, body) {
  const { head } = parts(bc);
  const out = Buffer.concat([head, body]);
  out.writeUInt32LE(body.length, 72);
  checksum(out).copy(out, 40);
  return out;
}

// QuickJS-NG's own bytecode checksum (u32 after the version byte) has an
// escape value, 0xffffffff, that skips it: crafted bytecode then reaches the
// reader and the interpreter instead of stopping at "checksum error".
function unchecked(body) {
  const b = Buffer.from(body);
  if (b.length >= 5) b.writeUInt32LE(0xffffffff, 1);
  return b;
}

const strip = (r) => {
  const { metrics, suspension, pendingCalls, ...rest } = r;
  if (rest.error) rest.error = { ...rest.error, snippet: undefined };
  return rest;
};

function assertInvalid(r, message) {
  assert.equal(r.status, 'error', `expected INVALID_HANDLER, got ${r.status} ${JSON.stringify(r.returnValue)}`);
  assert.equal(r.error.code, 'INVALID_HANDLER', r.error.message);
  if (message !== undefined) assert.equal(r.error.message, PREFIX + message);
  else assert.ok(r.error.message.startsWith(PREFIX), r.error.message);
  assert.deepEqual(r.stateMutations, []);
  assert.deepEqual(r.events, []);
}

async function stillServes(r = rt) {
  const res = await r.executeHandler('$emit("ok", $args.n); return $args.n * 2', context({ args: { n: 21 } }));
  assert.equal(res.status, 'success', JSON.stringify(res.error));
  assert.equal(res.returnValue, 42);
  assert.deepEqual(res.events, [{ name: 'ok', payload: 21 }]);
}

const CASES = [
  {
    code: `$state.count++; $emit('changed', { n: $state.count }); $view.focus('input');
      $view.custom('chart', { zoom: 2 }); $log.warn('w', 1); delete $state.gone;
      return { n: $state.count, args: $args, scope: $scope }`,
    over: { stateSnapshot: { count: 41, gone: 1 }, args: { a: [1, 'x'] }, scope: { row: 3 } },
  },
  { code: 'const v = await Promise.resolve(20); await null; return v + $args.k', over: { args: { k: 22 } } },
  { code: 'let s = 0; for (let i = 0; i < 1000; i++) s += i; return [s, typeof $ext, 1.5, null, true, "é😀"]' },
  { code: '$log("no return")' },
  { code: 'const a = 1;\n\n  null.x' },
  { code: 'const f = () => {\n  throw new RangeError("bad " + $args.k)\n};\nf()', over: { args: { k: 3 } } },
  { code: '$state.a = 1;\nawait null;\nthrow "plain"' },
  { code: "$emit('x', 1)", over: { capabilities: [] } },
  { code: "$state.secret = 1", over: { capabilities: ['state:read:*'] } },
];

test('executeCompiledHandler gives the same results as executeHandler', async () => {
  for (const { code, over } of CASES) {
    const bc = await rt.precompileHandler(code);
    assert.ok(bc instanceof Uint8Array);
    const fromSource = await rt.executeHandler(code, context(over));
    const fromBytecode = await rt.executeCompiledHandler(bc, context(over));
    assert.deepEqual(strip(fromBytecode), strip(fromSource), code);
    assert.equal(fromBytecode.metrics.cacheHit, true);
    for (const k of ['durationUs', 'memoryUsedBytes', 'memoryPeakBytes', 'instructionCount', 'compilationTimeUs']) {
      assert.equal(typeof fromBytecode.metrics[k], 'number', k);
    }
    assert.deepEqual(fromBytecode.metrics.hostCalls, fromSource.metrics.hostCalls, code);
  }
});

test('error locations from bytecode are lines of the handler source', async () => {
  const code = 'const a = 1;\nconst b = 2;\n\n    undefinedFn(a + b)';
  const r = await rt.executeCompiledHandler(await rt.precompileHandler(code), context());
  assert.equal(r.error.code, 'EXECUTION_ERROR');
  assert.equal(r.error.message, 'ReferenceError: undefinedFn is not defined');
  assert.deepEqual(r.error.location, { line: 4, column: 5 });
  assert.match(r.error.stack, /handler\.js:4:5/);
});

test('a suspension from bytecode resumes like one from source', async () => {
  const code = "$state.before = 1; const v = await $ext.http.get('/u', { q: 1 }); $emit('got', v); return v + 1";
  const over = { extensionRegistry: REGISTRY };
  const bc = await rt.precompileHandler(code);
  const outcomes = [];
  for (const start of [() => rt.executeHandler(code, context(over)), () => rt.executeCompiledHandler(bc, context(over))]) {
    const s = await start();
    assert.equal(s.status, 'suspended');
    assert.deepEqual(
      { extensionName: s.suspension.extensionName, method: s.suspension.method, args: s.suspension.args },
      { extensionName: 'http', method: 'get', args: ['/u', { q: 1 }] },
    );
    const done = await rt.resumeHandler(s.suspension.suspensionId, { success: true, value: 41 });
    outcomes.push([strip(s), strip(done)]);
  }
  assert.deepEqual(outcomes[1], outcomes[0]);
  assert.equal(outcomes[1][1].returnValue, 42);
  assert.deepEqual(outcomes[1][1].events, [{ name: 'got', payload: 41 }]);
});

test('header: magic, version, engine tag, digests and length', async () => {
  const code = 'return $args.x * 2';
  const bc = await rt.precompileHandler(code);
  const { buf, e, body } = parts(bc);
  assert.equal(buf.subarray(0, 4).toString('latin1'), 'NXHB');
  assert.equal(buf.readUInt16LE(4), 2);
  assert.match(buf.subarray(FIXED, FIXED + e).toString('utf8'), /^quickjs-wasi \S+; quickjs-ng \S+; bootstrap \S+$/);
  assert.deepEqual(buf.subarray(8, 40), sha256(Buffer.from(code, 'utf8')));
  assert.deepEqual(buf.subarray(40, 72), checksum(buf));
  assert.equal(buf.readUInt32LE(72), body.length);
  assert.equal(buf.length, FIXED + e + body.length);
  // deterministic: the same source gives the same buffer
  assert.deepEqual(Buffer.from(await rt.precompileHandler(code)), buf);
});

test('precompiled bytecode runs in another runtime of the same build', async () => {
  const code = "$state.n = $args.n + 1; $emit('e', $state.n); return [$state.n, typeof globalThis.$state]";
  const bc = await rt.precompileHandler(code);
  const copy = new Uint8Array(bc); // a copy, as if stored and loaded again
  const other = runtime({ workers: 1, maxInstances: 1 });
  try {
    const r = await other.executeCompiledHandler(copy, context({ args: { n: 1 } }));
    assert.equal(r.status, 'success', JSON.stringify(r.error));
    assert.deepEqual(r.returnValue, [2, 'undefined']);
    assert.deepEqual(r.stateMutations, [{ key: 'n', operation: 'set', value: 2 }]);
    assert.deepEqual(r.events, [{ name: 'e', payload: 2 }]);
    // a Buffer (a Uint8Array subclass) and a view into a larger buffer work too
    const big = new Uint8Array(copy.length + 10);
    big.set(copy, 5);
    for (const b of [Buffer.from(copy), big.subarray(5, 5 + copy.length)]) {
      assert.deepEqual((await other.executeCompiledHandler(b, context({ args: { n: 5 } }))).returnValue, [6, 'undefined']);
    }
  } finally {
    await other.shutdown();
  }
});

test('every header rejection, with its message', async () => {
  const bc = await rt.precompileHandler('return 1');
  const { buf, e, body } = parts(bc);
  const mod = (f) => {
    const b = Buffer.from(buf);
    f(b);
    return b;
  };
  const engine = buf.subarray(FIXED, FIXED + e).toString('latin1');
  const cases = [
    [mod((b) => { b[0] = 0x4d }), 'bad magic: not a precompiled nexus-wasm-bridge handler'],
    [Buffer.from('NXH'), 'bad magic: not a precompiled nexus-wasm-bridge handler'],
    [new Uint8Array(0), 'bad magic: not a precompiled nexus-wasm-bridge handler'],
    [Buffer.from('{"not":"bytecode"}'), 'bad magic: not a precompiled nexus-wasm-bridge handler'],
    [buf.subarray(0, 4), 'truncated: the buffer ends inside the header'],
    [buf.subarray(0, FIXED - 1), 'truncated: the buffer ends inside the header'],
    [mod((b) => b.writeUInt16LE(1, 4)), 'unsupported format version'],
    [mod((b) => b.writeUInt16LE(3, 4)), 'unsupported format version'],
    [mod((b) => b.writeUInt16LE(0, 4)), 'unsupported format version'],
    [buf.subarray(0, FIXED + e - 1), 'truncated: the buffer ends inside the engine version'],
    [buf.subarray(0, FIXED), 'truncated: the buffer ends inside the engine version'],
    [mod((b) => { b[FIXED + 13] ^= 0x01 }), 'engine mismatch: compiled for another engine or bootstrap version'],
    [mod((b) => { b[FIXED + e - 1] = 0x7a }), 'engine mismatch: compiled for another engine or bootstrap version'],
    [mod((b) => b.writeUInt16LE(e - 1, 6)), 'engine mismatch: compiled for another engine or bootstrap version'],
    [
      (() => { // a longer tag from "another build"
        const tag = Buffer.from(`${engine}-other`, 'latin1');
        const out = Buffer.concat([buf.subarray(0, FIXED), tag, body]);
        out.writeUInt16LE(tag.length, 6);
        return out;
      })(),
      'engine mismatch: compiled for another engine or bootstrap version',
    ],
    [buf.subarray(0, buf.length - 1), 'truncated: the bytecode is shorter than the header says'],
    [buf.subarray(0, FIXED + e), 'truncated: the bytecode is shorter than the header says'],
    [mod((b) => b.writeUInt32LE(body.length + 1, 72)), 'truncated: the bytecode is shorter than the header says'],
    [mod((b) => b.writeUInt32LE(0xffffffff, 72)), 'truncated: the bytecode is shorter than the header says'],
    [Buffer.concat([buf, Buffer.from([0])]), 'altered: bytes after the end of the bytecode'],
    [mod((b) => b.writeUInt32LE(body.length - 1, 72)), 'altered: bytes after the end of the bytecode'],
    [mod((b) => { b[b.length - 3] ^= 0x20 }), 'altered: the buffer does not match its checksum'],
    [mod((b) => { b[45] ^= 0x01 }), 'altered: the buffer does not match its checksum'],
    // the source digest is covered by the checksum too
    [mod((b) => { b[10] ^= 0xff }), 'altered: the buffer does not match its checksum'],
    [mod((b) => { b[39] ^= 0x01 }), 'altered: the buffer does not match its checksum'],
  ];
  const before = rt.getStats().errorsByCode.INVALID_HANDLER || 0;
  for (const [bytes, message] of cases) {
    assertInvalid(await rt.executeCompiledHandler(bytes, context()), message);
  }
  assert.equal(rt.getStats().errorsByCode.INVALID_HANDLER, before + cases.length);
  await stillServes();
});

test('bytecode that passes the header but does not evaluate to an async function is INVALID_HANDLER', async () => {
  const bc = await rt.precompileHandler('return 7');
  const body = unchecked(parts(bc).body);
  assert.equal((await rt.executeCompiledHandler(reseal(bc, body), context())).returnValue, 7);
  // The handler's function_bytecode flags: func_kind (bits 4-5) 2 = async.
  // 0 = plain, 1 = generator, 3 = async generator.
  const at = body.indexOf(Buffer.from([0x0c, 0x62, 0x0a]));
  assert.ok(at > 0, 'the async function tag is where expected');
  for (const flags of [0x42, 0x52, 0x72]) {
    const b = Buffer.from(body);
    b[at + 1] = flags;
    assertInvalid(await rt.executeCompiledHandler(reseal(bc, b), context()), 'it does not evaluate to a handler function');
  }
  await stillServes();
});

test('bytecode of a plain value (not a script) is INVALID_HANDLER with the same message prefix', async () => {
  const bc = await rt.precompileHandler('return 7');
  // version, checksum escape, 0 atoms, then a string / null / int32 value;
  // the last makes the reader fail without an exception (found by
  // fuzz_bytecode; it was INTERNAL_ERROR)
  for (const hex of ['1cffffffff000706616263', '1cffffffff0001', '1cffffffff000554', '1cffffffff0c800173']) {
    assertInvalid(await rt.executeCompiledHandler(reseal(bc, Buffer.from(hex, 'hex')), context()));
  }
  await stillServes();
});

// xorshift32: a fixed sequence on every run.
function prng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

// Crafted bytecode runs in a child process: a crash (signal) or a hang there
// is reported as a failure of this test instead of taking the runner down.
// The child prints one JSON line per finished execution, then checks that its
// runtime still serves a normal handler, shuts down and exits.
const CHILD = `
  const fs = require('fs');
  const { NexusRuntime } = require(process.env.NX_PKG);
  const { testConfig } = require(process.env.NX_PKG + '/test/helpers.js');
  const list = JSON.parse(fs.readFileSync(process.env.NX_INPUT, 'utf8')).map((b) => Buffer.from(b, 'base64'));
  const ctx = { panelId: 'p', handlerName: 'fuzz', stateSnapshot: { k: 1 }, args: {}, scope: {},
    capabilities: ['state:read:*', 'state:write:*', 'events:emit:*', 'view:update:*'] };
  const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
  (async () => {
    const n = Number(process.env.NX_INSTANCES);
    const rt = new NexusRuntime(testConfig({ workers: n, maxInstances: n, memoryLimitBytes: 16 * 1024 * 1024 }));
    await Promise.all(list.map(async (b, i) => {
      const r = await rt.executeCompiledHandler(b, ctx, 1000);
      out({ i, status: r.status, code: r.error ? r.error.code : null, message: r.error ? r.error.message : null });
    }));
    const ok = await rt.executeHandler('$emit("ok", $args.n); return $args.n * 2', { ...ctx, args: { n: 21 } });
    out({ serves: ok.status === 'success' && ok.returnValue === 42 && ok.events.length === 1 });
    await rt.shutdown();
    out({ done: true });
  })();
`;

// A child still running after this long is hung (deadlocked, or stuck in an
// execution that its 1000 ms timeout did not end): it is killed and the test
// fails. Far above what the children need, so load cannot trip it.
const HANG_MS = 60000;

async function runCrafted(buffers, watchdogMs, instances = 16) {
  const { spawn } = require('node:child_process');
  const fs = require('node:fs');
  const os = require('node:os');
  const path = require('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nx-bytecode-fuzz-'));
  try {
    const input = path.join(dir, 'crafted.json');
    fs.writeFileSync(input, JSON.stringify(buffers.map((b) => Buffer.from(b).toString('base64'))));
    const child = spawn(process.execPath, ['-e', CHILD], {
      env: { ...process.env, NX_PKG: path.join(__dirname, '..'), NX_INPUT: input, NX_INSTANCES: String(instances) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => { stdout += d });
    child.stderr.on('data', (d) => { stderr += d });
    let killed = false;
    const timer = setTimeout(() => { killed = true; child.kill('SIGKILL') }, watchdogMs);
    const [code, signal] = await new Promise((resolve) => child.on('close', (c, s) => resolve([c, s])));
    clearTimeout(timer);
    const lines = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const results = new Map(lines.filter((l) => 'i' in l).map((l) => [l.i, l]));
    const pending = buffers.map((_, i) => i).filter((i) => !results.has(i));
    return {
      killed, code, signal, stderr, results, pending,
      serves: lines.some((l) => l.serves === true),
      done: lines.some((l) => l.done === true),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function assertChildOk(res, what) {
  assert.equal(res.signal === 'SIGKILL' && res.killed ? 'hang' : res.signal, null,
    `${what}: the process ${res.killed ? 'hung' : `died (${res.signal})`}; executions that never finished: ` +
    `${JSON.stringify(res.pending.slice(0, 20))}${res.pending.length > 20 ? ' ...' : ''}\n${res.stderr.slice(-2000)}`);
  assert.equal(res.code, 0, `${what}: exit code ${res.code}\n${res.stderr.slice(-2000)}`);
  assert.deepEqual(res.pending, [], `${what}: executions without a result`);
  assert.ok(res.serves, `${what}: the runtime stopped serving correct results`);
  assert.ok(res.done, `${what}: shutdown did not complete`);
}

const FUZZ_SOURCES = [
  'return 7',
  `let s = 0; const o = { a: [1, 2, 3], b: 'str' };
   for (let i = 0; i < 50; i++) { s += o.a[i % 3] * i; if (s > 1e6) break }
   try { $state.k = s; $emit('e', { s, t: o.b.toUpperCase() }) } catch (e) { s = -1 }
   const f = (x) => (y) => x + y; return [f(1)(s), JSON.stringify(o), /a+b/.exec('caab')[0]]`,
  `class A { #p = 1; get p() { return this.#p } static m() { return new A().p } }
   const m = new Map([[1, 'a']]); const gen = function* () { yield* [1, 2] };
   const v = await Promise.all([1, Promise.resolve(2)]); return [A.m(), m.get(1), [...gen()], v, String(10n ** 20n)]`,
];

async function craft200() {
  const rand = prng(0x5eed1234);
  const int = (n) => Math.floor(rand() * n);
  const seeds = [];
  for (const src of FUZZ_SOURCES) {
    const bc = await rt.precompileHandler(src);
    seeds.push({ bc, body: parts(bc).body });
  }
  const crafted = [];
  for (let i = 0; i < 200; i++) {
    const { bc, body } = seeds[int(seeds.length)];
    let b;
    switch (i % 6) {
      case 0: // random bytes
        b = crypto.createHash('sha512').update(`r${i}`).digest();
        while (b.length < 16 + int(400)) b = Buffer.concat([b, crypto.createHash('sha512').update(b).digest()]);
        if (rand() < 0.5) b[0] = 0x1c; // a valid version byte
        break;
      case 1: // random bytes after a valid prefix
        b = Buffer.from(body);
        for (let j = 5 + int(b.length - 5); j < b.length; j++) b[j] = int(256);
        break;
      case 2: // bit flips
        b = Buffer.from(body);
        for (let n = 1 + int(4); n > 0; n--) b[5 + int(b.length - 5)] ^= 1 << int(8);
        break;
      case 3: // interesting values
        b = Buffer.from(body);
        for (let n = 1 + int(3); n > 0; n--) b[5 + int(b.length - 5)] = [0, 0xff, 0x7f, 0x80, 0x01, 0xfe][int(6)];
        break;
      case 4: // truncation
        b = Buffer.from(body.subarray(0, 1 + int(body.length - 1)));
        break;
      default: { // a chunk duplicated or removed
        const at = 5 + int(body.length - 5);
        const len = 1 + int(16);
        b = rand() < 0.5
          ? Buffer.concat([body.subarray(0, at), body.subarray(at, at + len), body.subarray(at)])
          : Buffer.concat([body.subarray(0, at), body.subarray(at + len)]);
      }
    }
    // most bodies skip QuickJS's own checksum, so they reach the reader
    if (i % 10 !== 9) b = unchecked(b);
    crafted.push(reseal(bc, b));
  }
  return crafted;
}

test('fuzz: 200 crafted bytecode bodies with valid headers (timeout 1000 ms each) never crash or hang the process', async () => {
  const crafted = await craft200();
  const res = await runCrafted(crafted, HANG_MS);
  const statuses = {};
  for (const r of res.results.values()) {
    assert.ok(['success', 'error'].includes(r.status), `status ${r.status}`);
    if (r.status === 'error') assert.ok(r.code && r.message, JSON.stringify(r));
    const key = r.status === 'error' ? r.code : 'success';
    statuses[key] = (statuses[key] || 0) + 1;
  }
  assert.ok((statuses.INVALID_HANDLER || 0) >= 50, JSON.stringify(statuses));
  assertChildOk(res, 'fuzz');
});

test('crafted bytecode with an undefined opcode (0xfc to 0xff) ends with an error result, not a hang (0xfc: stopped by the watchdog)', async () => {
  // Minimal case found by the fuzz: "return 7", its first opcode (push_7,
  // 0xc1) replaced by 0xfc, QuickJS's checksum escaped, header resealed.
  const bc = await rt.precompileHandler('return 7');
  const body = unchecked(parts(bc).body);
  const at = body.indexOf(Buffer.from([0xc1, 0x2f]));
  assert.ok(at > 0);
  const crafted = [];
  for (const op of [0xfc, 0xfd, 0xfe, 0xff]) {
    const b = Buffer.from(body);
    b[at] = op;
    crafted.push(reseal(bc, b));
  }
  const res = await runCrafted(crafted, HANG_MS);
  // 0xfc sends QuickJS into a loop inside its C code, where the interrupt
  // check never runs: the watchdog stops it and says so. The others are the
  // interpreter's own error. Every one has a result (assertChildOk: none
  // pending, the process alive and still serving).
  assert.deepEqual([...res.results.values()].sort((a, b) => a.i - b.i).map((r) => [r.status, r.code, r.message]), [
    ['error', 'TIMEOUT', 'Execution timed out after 1000 ms (stopped inside the engine)'],
    ...['fd', 'fe', 'ff'].map((op) => ['error', 'EXECUTION_ERROR', `InternalError: invalid opcode: pc=0 opcode=0x${op}`]),
  ]);
  assertChildOk(res, 'opcode 0xfc');
});

test('a sandbox the watchdog stopped is reset and serves the next execution (one sandbox; guard mode revokes its pages to stop it)', async () => {
  const bc = await rt.precompileHandler('return 7');
  const body = unchecked(parts(bc).body);
  const at = body.indexOf(Buffer.from([0xc1, 0x2f]));
  body[at] = 0xfc;
  const res = await runCrafted([reseal(bc, body), reseal(bc, body)], HANG_MS, 1);
  const stopped = ['error', 'TIMEOUT', 'Execution timed out after 1000 ms (stopped inside the engine)'];
  assert.deepEqual([...res.results.values()].map((r) => [r.status, r.code, r.message]), [stopped, stopped]);
  assertChildOk(res, 'one sandbox, stopped twice');
});

test('the runtime of this file keeps serving after crafted bytecode', async () => {
  await stillServes();
  const good = await rt.precompileHandler(FUZZ_SOURCES[1]);
  const r = await rt.executeCompiledHandler(good, context());
  assert.equal(r.status, 'success', JSON.stringify(r.error));
  assert.deepEqual(r.returnValue[1], '{"a":[1,2,3],"b":"str"}');
});

test('non-Uint8Array bytecode arguments are TypeErrors', async () => {
  for (const bad of ['NXHB', null, undefined, 42, {}, [78, 88, 72, 66], new ArrayBuffer(8),
    new Uint16Array(8), new Int8Array(8), new DataView(new ArrayBuffer(8))]) {
    await assert.rejects(rt.executeCompiledHandler(bad, context()), TypeError, String(bad));
  }
  const bc = await rt.precompileHandler('return 1');
  await assert.rejects(rt.executeCompiledHandler(bc, null), TypeError);
  await assert.rejects(rt.executeCompiledHandler(bc, context(), -1), RangeError);
  for (const bad of [null, 1, Buffer.from('return 1'), {}]) {
    await assert.rejects(rt.precompileHandler(bad), TypeError);
  }
});

test('precompileHandler rejects a syntax error with COMPILATION_ERROR and its location', async () => {
  await assert.rejects(rt.precompileHandler('const ok = 1;\nconst x = ;\n'), (err) => {
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'COMPILATION_ERROR');
    assert.equal(err.message, "SyntaxError: unexpected token in expression: ';'");
    assert.deepEqual(err.location, { line: 2, column: 11 });
    return true;
  });
  await assert.rejects(rt.precompileHandler('let a = 1;\n\n  let a = 2;'), (err) => {
    assert.equal(err.code, 'COMPILATION_ERROR');
    assert.equal(err.location.line, 3);
    assert.ok(err.location.column >= 3 && err.location.column <= 12);
    return true;
  });
  await assert.rejects(rt.precompileHandler('}); (function () {'), {
    code: 'COMPILATION_ERROR',
    message: 'Handler code must be the body of a function (it closed the wrapper)',
  });
  // the runtime serves on
  assert.equal((await rt.executeCompiledHandler(await rt.precompileHandler('return 3'), context())).returnValue, 3);
});

test('a syntax error at the very end of the handler is located in the handler, not in the wrapper', async () => {
  // Locations are relative to the handler's own source (inferCapabilities
  // reports the same code at its own end); a line past the last one, or the
  // wrapper's closing brace in the message, means nothing to the author.
  const code = '\n\n\n  return ((';
  assert.throws(() => rt.inferCapabilities(code), { code: 'COMPILATION_ERROR', location: { line: 4, column: 12 } });
  await assert.rejects(rt.precompileHandler(code), (err) => {
    assert.equal(err.code, 'COMPILATION_ERROR');
    assert.ok(err.location.line <= 4, `location ${JSON.stringify(err.location)} is past the handler's 4 lines (${err.message})`);
    return true;
  });
  const r = await rt.executeHandler(code, context());
  assert.equal(r.error.code, 'COMPILATION_ERROR');
  assert.ok(r.error.location.line <= 4, `location ${JSON.stringify(r.error.location)} is past the handler's 4 lines`);
});

test('code that closes the wrapper and reopens an async function is refused too (like new Function)', async () => {
  // new Function / the acorn check in inferCapabilities refuse these; the
  // runtime must not run code outside the handler function either.
  for (const code of ['}); 1; (async function () {', '}).call(this); (async function () {']) {
    assert.throws(() => new Function(code), SyntaxError);
    await assert.rejects(rt.precompileHandler(code), { code: 'COMPILATION_ERROR' }, code);
    const r = await rt.executeHandler(code, context());
    assert.equal(r.status, 'error', code);
    assert.equal(r.error.code, 'COMPILATION_ERROR', code);
  }
});

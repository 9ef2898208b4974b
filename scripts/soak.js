#!/usr/bin/env node
'use strict';
// Soak test: SOAK_N (default 1 000 000) mixed executions through the public
// API, SOAK_CONCURRENCY (default 64) in flight at once, interleaved in a
// seeded pseudo-random order. Every result is checked against what its kind
// must produce (status, error code, return value); any mismatch fails the
// run. Progress lines show throughput, RSS, open fds, mappings and the
// runtimes' live/suspended counts; at the end the runtimes are shut down and
// fds, mappings and RSS must come back near where they started.
//
//   npm run soak                       1 000 000 executions
//   SOAK_N=20000 npm run soak          a short run (CI)
//
// Other knobs: SOAK_CONCURRENCY (64), SOAK_WORKERS (2, of the main runtime),
// SOAK_SEED (1), SOAK_REPORT_S (15: a progress line at least this often,
// besides every 5 %), SOAK_WARMUP (min(N, 5000): executions run and shut
// down before the fd/mapping baseline is taken), SOAK_ONLY=kind,kind (only
// those kinds), SOAK_VERBOSE=1 (print every mismatch, not the first 20),
// SOAK_DUMP_MAPS=PREFIX (write /proc/self/smaps at the baseline and the end).
//
// Exit status: 0 all good, 1 mismatches or a resource bound exceeded.

const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

// global.gc() makes the end-of-run measurements mean something: re-exec with
// --expose-gc when it is missing. --max-semi-space-size=2 (MiB): V8 grows its
// young generation up to 2 x 16 MiB under this allocation rate and keeps it
// after a full GC, which would put ~30 MiB of JS heap into the RSS compared
// at the end; with 2 MiB semi-spaces RSS follows native memory (throughput
// is the same). Flags given to this node are passed on and win.
if (typeof global.gc !== 'function') {
  const flags = process.execArgv.some((a) => a.startsWith('--max-semi-space-size')) ? [] : ['--max-semi-space-size=2'];
  const r = spawnSync(process.execPath, [...flags, ...process.execArgv, '--expose-gc', __filename, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  if (r.error) throw r.error;
  if (r.signal) {
    process.stderr.write(`soak: the child died of ${r.signal}\n`);
    process.exit(1);
  }
  process.exit(r.status);
}

const { NexusRuntime, WasmSandboxExecutor } = require(path.join(__dirname, '..'));

function intEnv(name, dflt, min = 1) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min) {
    process.stderr.write(`soak: ${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return v;
}

const N = intEnv('SOAK_N', 1000000);
const CONCURRENCY = intEnv('SOAK_CONCURRENCY', 64);
const WORKERS = intEnv('SOAK_WORKERS', 2);
const SEED = intEnv('SOAK_SEED', 1, 0);
const REPORT_S = intEnv('SOAK_REPORT_S', 15);
const VERBOSE = !!process.env.SOAK_VERBOSE;
const WARMUP = intEnv('SOAK_WARMUP', Math.min(N, 5000), 0);

// Bounds checked after the final shutdown. RSS and fds: against the start
// (before any runtime existed). Mappings: against the baseline taken after a
// warm-up (see main()), and loosely against the start.
const MAX_FD_GROWTH = 4;
const MAX_MAPS_GROWTH = 32; // V8 code-space pages (rwx + guards) are counted here too
const MAX_MAPS_GROWTH_FROM_START = 160; // malloc arenas, cached thread stacks, V8 heap pages
const MAX_RSS_GROWTH_MIB = 64;

const MEMORY_LIMIT = 16 << 20;
const SHORT_SUSPENSION_MS = 50;
const TIMEOUT_MS = 20;

const ALL = ['state:read:*', 'state:write:*', 'events:emit:*', 'view:update:*', 'ext:*'];
const EXT = { svc: ['call'] };

function ctx(over) {
  return {
    panelId: 'soak',
    handlerName: 'h',
    stateSnapshot: {},
    args: {},
    scope: {},
    capabilities: ALL,
    extensionRegistry: EXT,
    ...over,
  };
}

// ---------------------------------------------------------------- checks --

class Mismatch extends Error {}

function expect(cond, what) {
  if (!cond) throw new Mismatch(what);
}

function brief(r) {
  if (r === undefined) return 'undefined';
  const out = { status: r.status };
  if (r.error) out.error = { code: r.error.code, message: String(r.error.message).slice(0, 200) };
  if (r.status === 'success') out.returnValue = r.returnValue;
  if (r.status === 'suspended') out.suspension = r.suspension && { ...r.suspension, args: undefined };
  let s;
  try {
    s = JSON.stringify(out);
  } catch {
    s = String(out.status);
  }
  return s.length > 400 ? s.slice(0, 400) + '…' : s;
}

function isError(r, code, message) {
  expect(r && r.status === 'error', `status error expected: ${brief(r)}`);
  expect(r.error && r.error.code === code, `error code ${code} expected: ${brief(r)}`);
  if (message !== undefined) {
    const ok = message instanceof RegExp ? message.test(r.error.message) : r.error.message === message;
    expect(ok, `error message ${message} expected: ${brief(r)}`);
  }
  expect(r.events.length === 0 && r.stateMutations.length === 0 && r.viewCommands.length === 0,
    `a failed execution reports no effects: ${brief(r)}`);
}

function isSuccess(r, value) {
  expect(r && r.status === 'success', `status success expected: ${brief(r)}`);
  if (value !== undefined) {
    expect(JSON.stringify(r.returnValue) === JSON.stringify(value),
      `returnValue ${JSON.stringify(value)} expected: ${brief(r)}`);
  }
}

function isSuspended(r) {
  expect(r && r.status === 'suspended' && r.suspension && typeof r.suspension.suspensionId === 'string',
    `status suspended expected: ${brief(r)}`);
  expect(r.suspension.extensionName === 'svc' && r.suspension.method === 'call', `suspension on svc.call expected: ${brief(r)}`);
}

async function rejectsNotFound(promise, what) {
  try {
    await promise;
  } catch (err) {
    expect(err && err.code === 'SUSPENSION_NOT_FOUND', `${what}: SUSPENSION_NOT_FOUND expected, got ${err && err.code}: ${err && err.message}`);
    return;
  }
  throw new Mismatch(`${what}: expected a rejection with SUSPENSION_NOT_FOUND, it resolved`);
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// ----------------------------------------------------------------- kinds --
// weight: executions per 10 000. The costly kinds (each a timeout, a memory
// limit, a wasm trap, an 8 MiB result limit) are kept rare.

const OK_CODE =
  "$state.n = $state.n + $args.k; $emit('changed', { n: $state.n }); $view.focus('card'); " +
  "$log.info('n is', $state.n); $log('plain'); return { n: $state.n, k: $args.k }";
const SUSPEND_CODE = "$state.loading = true; const v = await $ext.svc.call($args.x); $state.loading = false; return v + 1";
const SUSPEND_CATCH_CODE = "try { await $ext.svc.call($args.x) } catch (e) { return 'caught ' + e.message }";
const SUSPEND_ALL_CODE = "const [a, b] = await Promise.all([$ext.svc.call(1), $ext.svc.call(2)]); return a * 10 + b";

let bytecode; // precompileHandler(PRECOMPILED_CODE), set in main()
const PRECOMPILED_CODE = "$state.n = $args.k * 2; $emit('pre', $args.k); return $args.k * 2";

function pickArgs(i) {
  return { k: i % 1000, x: i % 97 };
}

const KINDS = [
  {
    name: 'success',
    weight: 4300,
    async run(rts, i) {
      const { k } = pickArgs(i);
      const r = await rts.main.executeHandler(OK_CODE, ctx({ stateSnapshot: { n: 1 }, args: { k } }));
      isSuccess(r, { n: 1 + k, k });
      expect(r.events.length === 1 && r.events[0].name === 'changed' && r.events[0].payload.n === 1 + k, 'event');
      expect(r.viewCommands.length === 1 && r.logs.length === 2, 'view command and logs');
      expect(r.stateMutations.length === 1 && r.stateMutations[0].key === 'n' && r.stateMutations[0].value === 1 + k, 'mutation');
    },
  },
  {
    name: 'handler-error',
    weight: 1000,
    async run(rts, i) {
      const r = await rts.main.executeHandler("$emit('e', 1); $state.a = 1; throw new Error('boom ' + $args.k)", ctx({ args: pickArgs(i) }));
      isError(r, 'EXECUTION_ERROR', `Error: boom ${i % 1000}`);
    },
  },
  {
    name: 'permission-denied',
    weight: 200,
    async run(rts) {
      const r = await rts.main.executeHandler("$emit('admin:wipe', 1)", ctx({ capabilities: ['events:emit:ok'] }));
      isError(r, 'PERMISSION_DENIED');
    },
  },
  {
    name: 'compilation-error',
    weight: 100,
    async run(rts) {
      const r = await rts.main.executeHandler('return (', ctx());
      isError(r, 'COMPILATION_ERROR');
    },
  },
  {
    name: 'unique-source', // a cache miss each time; the small LRU evicts
    weight: 150,
    async run(rts, i) {
      const r = await rts.main.executeHandler(`return ${i} + $args.k`, ctx({ args: { k: 1 } }));
      isSuccess(r, i + 1);
    },
  },
  {
    name: 'precompiled',
    weight: 1000,
    async run(rts, i) {
      const { k } = pickArgs(i);
      const r = await rts.main.executeCompiledHandler(bytecode, ctx({ args: { k } }));
      isSuccess(r, k * 2);
      expect(r.events.length === 1 && r.events[0].payload === k, 'event of the precompiled handler');
    },
  },
  {
    name: 'suspend-resume',
    weight: 700,
    async run(rts, i) {
      const { x } = pickArgs(i);
      const r = await rts.main.executeHandler(SUSPEND_CODE, ctx({ args: { x } }));
      isSuspended(r);
      expect(JSON.stringify(r.suspension.args) === JSON.stringify([x]), `suspension args [${x}]: ${brief(r)}`);
      expect(r.stateMutations.length === 1 && r.stateMutations[0].key === 'loading', 'mutation before the await');
      const id = r.suspension.suspensionId;
      const r2 = await rts.main.resumeHandler(id, { success: true, value: x * 3 });
      isSuccess(r2, x * 3 + 1);
      if (i % 8 === 0) await rejectsNotFound(rts.main.resumeHandler(id, { success: true, value: 0 }), 'a second resume');
    },
  },
  {
    name: 'suspend-resume-error',
    weight: 300,
    async run(rts, i) {
      const r = await rts.main.executeHandler(SUSPEND_CATCH_CODE, ctx({ args: pickArgs(i) }));
      isSuspended(r);
      const r2 = await rts.main.resumeHandler(r.suspension.suspensionId, { success: false, error: 'nope' });
      isSuccess(r2, 'caught nope');
    },
  },
  {
    name: 'suspend-resume-all',
    weight: 300,
    async run(rts) {
      const r = await rts.main.executeHandler(SUSPEND_ALL_CODE, ctx());
      isSuspended(r);
      expect(r.pendingCalls.length === 2, `two pending calls: ${brief(r)}`);
      const answers = r.pendingCalls.map((c) => ({ suspensionId: c.suspensionId, result: { success: true, value: c.args[0] + 4 } }));
      const r2 = await rts.main.resumeAll(answers);
      isSuccess(r2, 56);
    },
  },
  {
    name: 'suspend-cancel',
    weight: 300,
    async run(rts, i) {
      const r = await rts.main.executeHandler(SUSPEND_CODE, ctx({ args: pickArgs(i) }));
      isSuspended(r);
      const id = r.suspension.suspensionId;
      expect((await rts.main.cancelSuspended(id)) === true, 'cancelSuspended() is true for a parked execution');
      if (i % 4 === 0) await rejectsNotFound(rts.main.resumeHandler(id, { success: true, value: 1 }), 'resume after cancel');
    },
  },
  {
    name: 'suspend-expire',
    weight: 10,
    async run(rts, i) {
      const r = await rts.expiring.executeHandler(SUSPEND_CODE, ctx({ args: pickArgs(i) }));
      isSuspended(r);
      await sleep(SHORT_SUSPENSION_MS * 2 + 20);
      await rejectsNotFound(rts.expiring.resumeHandler(r.suspension.suspensionId, { success: true, value: 1 }), 'resume after expiry');
    },
  },
  {
    name: 'executor',
    weight: 200,
    async run(rts, i) {
      const state = { n: i % 50, loading: false };
      let mutations = 0;
      const v = await rts.executor.execute({
        code: "$state.loading = true; const d = await $ext.svc.call($state.n); $state.n = d; $state.loading = false; return d",
        panelId: 'soak',
        handlerName: 'executor',
        state,
        extensions: { svc: { async call(n) { return n + 100; } } },
        onMutations(ms) { mutations += ms.length; },
      });
      expect(v === (i % 50) + 100 && state.n === v && state.loading === false, `executor result ${v}, state ${JSON.stringify(state)}`);
      expect(mutations === 3, `executor applied ${mutations} mutations, 3 expected`);
    },
  },
  {
    name: 'getter-emit-in-emit',
    weight: 200,
    async run(rts) {
      const r = await rts.main.executeHandler("$emit('ok', { get a() { $emit('inner', 1); return 2 } }); return 1", ctx());
      isSuccess(r, 1);
      expect(JSON.stringify(r.events) === JSON.stringify([{ name: 'inner', payload: 1 }, { name: 'ok', payload: { a: 2 } }]),
        `events of a getter emitting inside a payload: ${JSON.stringify(r.events)}`);
    },
  },
  {
    name: 'proxy-returned',
    weight: 200,
    async run(rts, i) {
      const code = i % 2
        ? "return new Proxy({ a: 1, b: 2 }, { get: (t, k) => k + '!' })"
        : "return new Proxy({}, { ownKeys: () => ['x', 'y'], getOwnPropertyDescriptor: () => ({ value: 0, enumerable: true, configurable: true }), get: (t, k) => k + '?' })";
      const r = await rts.main.executeHandler(code, ctx());
      isSuccess(r, i % 2 ? { a: 'a!', b: 'b!' } : { x: 'x?', y: 'y?' });
    },
  },
  {
    name: 'throw-symbol',
    weight: 200,
    async run(rts) {
      isError(await rts.main.executeHandler('throw Symbol()', ctx()), 'EXECUTION_ERROR', 'Uncaught Symbol()');
    },
  },
  {
    name: 'deep-nesting-256',
    weight: 100,
    async run(rts) {
      const r = await rts.main.executeHandler("let p = 1; for (let i = 0; i < 256; i++) p = { a: p }; $emit('e', p); return p", ctx());
      isSuccess(r);
      let d = 0;
      for (let p = r.returnValue; typeof p === 'object'; p = p.a) d++;
      expect(d === 256, `nesting depth ${d}, 256 expected`);
    },
  },
  {
    name: 'deep-nesting-10000',
    weight: 10,
    async run(rts) {
      const r = await rts.main.executeHandler('let p = { get a() { return 1 } }; for (let i = 0; i < 10000; i++) p = [p]; return p', ctx());
      isError(r, 'EXECUTION_ERROR', /is nested too deeply \(over 256 levels\) and cannot leave the sandbox$/);
    },
  },
  {
    name: 'host-call-flood',
    weight: 10,
    async run(rts) {
      isError(await rts.main.executeHandler('for (;;) $state.x', ctx()), 'RESOURCE_LIMIT',
        `Too many host calls: an execution may make config.maxHostCalls (${rts.main.config.maxHostCalls})`);
    },
  },
  {
    name: 'shared-reference-dag',
    weight: 3,
    async run(rts) {
      const r = await rts.main.executeHandler("let a = ['x'.repeat(1024)]; for (let i = 0; i < 20; i++) a = [a, a]; return a", ctx());
      isError(r, 'RESOURCE_LIMIT', /^Result too large: config\.maxResultBytes \(8388608 bytes\) was reached while encoding returnValue/);
    },
  },
  {
    name: 'timeout',
    weight: 2,
    async run(rts) {
      isError(await rts.main.executeHandler('for (;;) {}', ctx(), TIMEOUT_MS), 'TIMEOUT', `Execution timed out after ${TIMEOUT_MS} ms`);
    },
  },
  {
    name: 'memory-limit', // strings, typed arrays, objects: MEMORY_LIMIT at 16 MiB
    weight: 2,
    async run(rts, i) {
      const code = [
        "const a = []; for (;;) a.push('z'.repeat(1 << 16) + a.length)",
        'const a = []; for (;;) a.push(new Uint8Array(1 << 16))',
        'const a = []; for (;;) a.push({ x: a.length })',
      ][i % 3];
      isError(await rts.main.executeHandler(code, ctx()), 'MEMORY_LIMIT', `Memory limit of ${MEMORY_LIMIT} bytes exceeded`);
    },
  },
  {
    // A 1 MiB worker stack: the wasm call depth runs out before QuickJS's own
    // check, a wasm trap (the sandbox is reset); a trap's error has no
    // stack or location, QuickJS's own RangeError has both.
    name: 'wasm-trap',
    weight: 100,
    async run(rts, i) {
      const code = [
        'const f = (n) => f(n + 1) + 1; return f(0)',
        'return { get x() { const f = () => f() + 1; return f() } }', // while the result is copied
        'const f = (n) => { $state.k = n; $log(n); return f(n + 1) }; f(0)', // host calls on the stack
        "$emit('e', { get a() { const f = () => [f()]; return f() } })", // inside an $emit payload getter
      ][i % 4];
      const r = await rts.small.executeHandler(code, ctx());
      isError(r, 'EXECUTION_ERROR', 'RangeError: Maximum call stack size exceeded');
      expect(r.error.stack === null && r.error.location === null, `a wasm trap (no stack, no location) expected: ${JSON.stringify(r.error).slice(0, 300)}`);
    },
  },
];

// A seeded xorshift32: the same SOAK_SEED gives the same order.
function rng(seed) {
  let s = (seed >>> 0) || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

// SOAK_ONLY=kind,kind runs only those kinds (to look at one in isolation).
if (process.env.SOAK_ONLY) {
  const only = new Set(process.env.SOAK_ONLY.split(','));
  for (const name of only) {
    if (!KINDS.some((k) => k.name === name)) {
      process.stderr.write(`soak: SOAK_ONLY: no kind ${name} (kinds: ${KINDS.map((k) => k.name).join(', ')})\n`);
      process.exit(2);
    }
  }
  for (let i = KINDS.length - 1; i >= 0; i--) if (!only.has(KINDS[i].name)) KINDS.splice(i, 1);
}

// The first KINDS.length executions are one of each kind (so a short run
// covers all of them); the rest are drawn by weight.
function scheduler(seed) {
  const rand = rng(seed);
  const total = KINDS.reduce((a, k) => a + k.weight, 0);
  const cumulative = [];
  let acc = 0;
  for (const k of KINDS) cumulative.push((acc += k.weight));
  return (i) => {
    if (i < KINDS.length) return KINDS[i];
    const x = rand() * total;
    let lo = 0;
    while (cumulative[lo] <= x) lo++;
    return KINDS[lo];
  };
}

// ----------------------------------------------------------- resources --

function fdCount() {
  return fs.readdirSync('/proc/self/fd').length;
}

function mapsCount() {
  return fs.readFileSync('/proc/self/maps', 'utf8').split('\n').filter(Boolean).length;
}

// Mappings that are not V8 heap pages (anonymous rw-p, exactly 256 KiB and
// 256 KiB-aligned: V8's page size; malloc never maps exactly that). V8 keeps
// pages it grew its young generation by after a GC, so its count moves
// with the JS heap; the rest is what the addon and the allocators map.
const V8_PAGE = 256 * 1024;
function nonV8Maps() {
  let n = 0;
  for (const line of fs.readFileSync('/proc/self/maps', 'utf8').split('\n')) {
    if (!line) continue;
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ (\d+)\s*(\S*)/.exec(line);
    if (m && m[3] === 'rw-p' && m[4] === '0' && m[5] === '') {
      const a = parseInt(m[1], 16);
      const b = parseInt(m[2], 16);
      if (b - a === V8_PAGE && a % V8_PAGE === 0) continue;
    }
    n++;
  }
  return n;
}

const MiB = (b) => (b / 1048576).toFixed(1);

function collect() {
  global.gc();
  global.gc();
}

// -------------------------------------------------------------------- main --

let peakRss = 0;
function sampleRss() {
  const rss = process.memoryUsage().rss;
  if (rss > peakRss) peakRss = rss;
  return rss;
}

// Runs `n` executions on fresh runtimes, then shuts them down; progress
// lines unless `quiet`.
async function phase(n, { quiet }) {
  const rts = {
    // maxCacheBytes small so that unique sources also exercise eviction.
    main: new NexusRuntime({ workers: WORKERS, memoryLimitBytes: MEMORY_LIMIT, maxCacheBytes: 256 << 10 }),
    small: new NexusRuntime({ workers: 1, maxInstances: 1, stackSizeBytes: 1 << 20 }),
    expiring: new NexusRuntime({ workers: 1, maxInstances: 2, suspensionTimeoutMs: SHORT_SUSPENSION_MS }),
  };
  rts.executor = new WasmSandboxExecutor(rts.main);
  bytecode = await rts.main.precompileHandler(PRECOMPILED_CODE);

  const next = scheduler(SEED);
  const counts = new Map(KINDS.map((k) => [k.name, { runs: 0, mismatches: 0 }]));
  const samples = [];
  let mismatches = 0;
  let started = 0;
  let done = 0;

  const t0 = process.hrtime.bigint();
  const elapsed = () => Number(process.hrtime.bigint() - t0) / 1e9;
  let lastReport = { t: 0, done: 0 };
  const step = Math.max(1, Math.floor(n / 20));
  let nextMark = step;

  function report(final) {
    if (quiet) return;
    const t = elapsed();
    const rss = sampleRss();
    // The rate since the previous line; on the final line, over the run.
    const rate = final ? done / t : (done - lastReport.done) / Math.max(1e-9, t - lastReport.t);
    const m = rts.main.getStats();
    const sm = rts.small.getStats();
    const e = rts.expiring.getStats();
    console.log(
      `${final ? 'done' : 'soak'} ${String(done).padStart(String(n).length)}/${n} ${((100 * done) / n).toFixed(0).padStart(3)}%` +
        `  ${t.toFixed(1).padStart(6)} s  ${rate.toFixed(0).padStart(5)}/s` +
        `  RSS ${MiB(rss)} MiB  fds ${fdCount()}  maps ${mapsCount()}` +
        `  live ${m.liveInstances}+${sm.liveInstances}+${e.liveInstances}` +
        `  suspended ${m.suspendedExecutions}+${e.suspendedExecutions}  in-flight ${m.inFlightExecutions} queued ${m.queuedExecutions}` +
        `  mismatches ${mismatches}`,
    );
    lastReport = { t, done };
  }

  const ticker = setInterval(() => {
    sampleRss();
    if (elapsed() - lastReport.t >= REPORT_S) report(false);
  }, 1000);

  async function lane() {
    while (started < n) {
      const i = started++;
      const kind = next(i);
      const c = counts.get(kind.name);
      c.runs++;
      try {
        await kind.run(rts, i);
      } catch (err) {
        mismatches++;
        c.mismatches++;
        const msg = err instanceof Mismatch ? err.message : `threw ${err && err.stack ? err.stack : err}`;
        if (VERBOSE) console.log(`mismatch #${i} ${kind.name}: ${msg}`);
        else if (samples.length < 20) samples.push(`#${i} ${kind.name}: ${msg}`);
      }
      done++;
      if (done >= nextMark) {
        nextMark += step;
        report(false);
      }
    }
  }

  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, n) }, lane));
  clearInterval(ticker);
  const seconds = elapsed();
  report(true);

  const st = [rts.main.getStats(), rts.small.getStats(), rts.expiring.getStats()];
  const left = {
    suspended: st.reduce((a, x) => a + x.suspendedExecutions, 0),
    inFlight: st.reduce((a, x) => a + x.inFlightExecutions, 0),
    queued: st.reduce((a, x) => a + x.queuedExecutions, 0),
  };
  collect();
  const beforeShutdown = { rss: sampleRss(), fds: fdCount(), maps: mapsCount(), other: nonV8Maps() };
  await Promise.all([rts.main.shutdown(), rts.small.shutdown(), rts.expiring.shutdown()]);
  bytecode = null;
  return { done, seconds, mismatches, counts, samples, left, beforeShutdown };
}

// After shutdown: let finalizers of released buffers run, collect, measure.
async function settle() {
  for (let i = 0; i < 2; i++) {
    await sleep(100);
    collect();
  }
  return { rss: sampleRss(), heapTotal: process.memoryUsage().heapTotal, fds: fdCount(), maps: mapsCount(), other: nonV8Maps() };
}

async function main() {
  collect();
  const start = { rss: sampleRss(), heapTotal: process.memoryUsage().heapTotal, fds: fdCount(), maps: mapsCount(), other: nonV8Maps() };
  const weights = KINDS.reduce((a, k) => a + k.weight, 0);
  console.log(`soak: ${N} executions, ${CONCURRENCY} in flight, seed ${SEED}, main runtime ${WORKERS} workers; ` +
    `${KINDS.length} kinds (per ${weights}: ${KINDS.map((k) => `${k.name} ${k.weight}`).join(', ')})`);
  console.log(`soak: start RSS ${MiB(start.rss)} MiB, ${start.fds} fds, ${start.maps} maps (${start.other} not V8 heap pages)`);

  // Warm-up on runtimes of the same configurations, shut down before the
  // baseline is taken: what a process keeps once it has run sandboxes at all
  // (glibc's per-thread malloc arenas and cached thread stacks, V8 heap
  // pages) then sits in the baseline, and the fd and mapping bounds measure
  // what the N executions leave behind.
  const warm = await phase(WARMUP, { quiet: true });
  const baseline = await settle();
  const baselineMaps = process.env.SOAK_DUMP_MAPS ? fs.readFileSync('/proc/self/smaps', 'utf8') : '';
  console.log(`soak: warm-up of ${warm.done} executions in ${warm.seconds.toFixed(1)} s, ${warm.mismatches} mismatches; ` +
    `baseline after its shutdown: RSS ${MiB(baseline.rss)} MiB, ${baseline.fds} fds, ${baseline.maps} maps (${baseline.other} not V8 heap pages)`);

  const run = await phase(N, { quiet: false });
  const end = await settle();
  if (process.env.SOAK_DUMP_MAPS) {
    fs.writeFileSync(process.env.SOAK_DUMP_MAPS + '.baseline', baselineMaps);
    fs.writeFileSync(process.env.SOAK_DUMP_MAPS + '.end', fs.readFileSync('/proc/self/smaps', 'utf8'));
  }

  console.log('\nper kind: runs, mismatches');
  for (const k of KINDS) {
    const c = run.counts.get(k.name);
    console.log(`  ${k.name.padEnd(22)} ${String(c.runs).padStart(8)}${c.mismatches ? `  ${c.mismatches} MISMATCHED` : ''}`);
  }
  const samples = [...warm.samples, ...run.samples];
  if (samples.length) {
    console.log('\nfirst mismatches:');
    for (const x of samples.slice(0, 20)) console.log('  ' + x);
  }

  const mismatches = warm.mismatches + run.mismatches;
  console.log(`\nexecutions ${run.done} in ${run.seconds.toFixed(1)} s (${(run.done / run.seconds).toFixed(0)}/s), ` +
    `plus ${warm.done} of warm-up; mismatches ${mismatches}`);
  console.log(`RSS   start ${MiB(start.rss)} MiB, peak ${MiB(peakRss)} MiB, before shutdown ${MiB(run.beforeShutdown.rss)} MiB, ` +
    `after shutdown ${MiB(end.rss)} MiB (bound: start + ${MAX_RSS_GROWTH_MIB} MiB = ${MiB(start.rss + MAX_RSS_GROWTH_MIB * 1048576)} MiB)`);
  console.log(`fds   start ${start.fds}, baseline ${baseline.fds}, before shutdown ${run.beforeShutdown.fds}, after shutdown ${end.fds} ` +
    `(bound: baseline + ${MAX_FD_GROWTH}, start + ${MAX_FD_GROWTH})`);
  console.log(`maps  start ${start.maps}, baseline ${baseline.maps}, before shutdown ${run.beforeShutdown.maps}, after shutdown ${end.maps} ` +
    `(bound: start + ${MAX_MAPS_GROWTH_FROM_START})`);
  console.log(`      without V8 heap pages: start ${start.other}, baseline ${baseline.other}, before shutdown ${run.beforeShutdown.other}, ` +
    `after shutdown ${end.other} (bound: baseline + ${MAX_MAPS_GROWTH})`);
  console.log(`V8    heap total (committed) start ${MiB(start.heapTotal)} MiB, after shutdown ${MiB(end.heapTotal)} MiB; ` +
    `RSS without it: start ${MiB(start.rss - start.heapTotal)} MiB, after shutdown ${MiB(end.rss - end.heapTotal)} MiB`);
  console.log(`left  ${run.left.suspended} suspended, ${run.left.inFlight} in flight, ${run.left.queued} queued after the last execution (bound: 0)`);

  const failures = [];
  if (mismatches) failures.push(`${mismatches} results were not what their kind must produce`);
  if (run.done !== N) failures.push(`${run.done} of ${N} executions finished`);
  if (end.fds > baseline.fds + MAX_FD_GROWTH || end.fds > start.fds + MAX_FD_GROWTH) {
    failures.push(`fds: ${end.fds} after shutdown vs ${start.fds} at start, ${baseline.fds} at the baseline`);
  }
  if (end.other > baseline.other + MAX_MAPS_GROWTH) failures.push(`mappings other than V8 heap pages grew from ${baseline.other} (baseline) to ${end.other}`);
  if (end.maps > start.maps + MAX_MAPS_GROWTH_FROM_START) failures.push(`mappings grew from ${start.maps} (start) to ${end.maps}`);
  if (end.rss > start.rss + MAX_RSS_GROWTH_MIB * 1048576) {
    failures.push(`RSS after shutdown ${MiB(end.rss)} MiB is more than ${MAX_RSS_GROWTH_MIB} MiB above the start (${MiB(start.rss)} MiB)`);
  }
  if (run.left.suspended || run.left.inFlight || run.left.queued) failures.push('executions left over after the last one finished');
  if (failures.length) {
    console.log(`\nFAIL: ${failures.join('; ')}`);
    process.exitCode = 1;
  } else {
    console.log('\nOK');
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

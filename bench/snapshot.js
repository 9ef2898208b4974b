'use strict';
// Snapshot figures: how fast a pristine sandbox is handed out, and what an
// idle pooled instance costs in private memory. Not an npm script; run it as
//
//     node bench/snapshot.js
//
// (BENCH_N, default 5000, sets the sample count of the trivial-handler p50;
// SNAPSHOT_MEM_N, default 64, the large pool of the memory measurement.)
// Figures are printed, never checked (no timed assertions); a summary block
// ends the output.
//
//   1. Reset vs fresh: 2000 trivial executions on a runtime with workers: 1,
//      then getStats().avgResetUs (back to the image after every execution)
//      and avgInstantiateUs (a new instance mapped from the image), against
//      snapshotCreateUs (one fresh instance: instantiate + QuickJS init +
//      bootstrap, plus writing the image; a single, cold sample).
//   2. Private memory per idle pooled instance: /proc/self/smaps_rollup before
//      a runtime with minInstances = maxInstances = N exists and after all N
//      instances have executed (N concurrent executions, 5 rounds) and been
//      reset, in a fresh child process per N; (after - before) / N, and the
//      slope between N = 64 and N = 8, which cancels fixed costs (the image,
//      worker stacks, the addon's own allocations).
//   3. Trivial handler p50 end to end, as bench/run.js measures it.
const { spawnSync } = require('child_process');
const fs = require('fs');
const { NexusRuntime } = require('..');
const { TRIVIAL, EXT, N, WARMUP, context, extContext } = require('./common');

const RESET_RUNS = 2000;
const MEM_N = Number(process.env.SNAPSHOT_MEM_N || 64);
const MEM_SMALL = 8;
const MEM_ROUNDS = 5;
const DESIGN_FRESH_US = 260; // design brief: instantiate + init, 260-290 µs per instance

async function trivial(rt, i) {
  const r = await rt.executeHandler(TRIVIAL, context(i));
  if (r.status !== 'success' || r.returnValue !== i + 1) throw new Error(`bad result ${JSON.stringify(r)}`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(what, predicate, timeoutMs = 60000) {
  const end = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

// Fields of /proc/self/smaps_rollup, in KiB.
function smapsRollup() {
  const out = {};
  for (const line of fs.readFileSync('/proc/self/smaps_rollup', 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+) kB/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  out.Private = out.Private_Clean + out.Private_Dirty;
  return out;
}

// ---- child: one memory measurement for a pool of `n` instances ------------


async function idle(rt, n) {
  await until('idle', () => {
    const s = rt.getStats();
    return (
      s.activeInstances === 0 &&
      s.inFlightExecutions === 0 &&
      s.queuedExecutions === 0 &&
      s.suspendedExecutions === 0 &&
      s.availableInstances === n
    );
  });
  await sleep(200); // resets run after the result is posted; let the last ones finish
  global.gc?.();
  await sleep(50);
}

async function memChild(n) {
  // Everything the JS side needs is loaded and warm before the first reading:
  // a throwaway runtime runs the same paths (execute, suspend, resume).
  {
    const warm = new NexusRuntime({ workers: 1, maxInstances: 1 });
    for (let i = 0; i < 20; i++) await trivial(warm, i);
    const r = await warm.executeHandler(EXT, extContext(1));
    await warm.resumeHandler(r.suspension.suspensionId, { success: true, value: 1 });
    await warm.shutdown();
  }
  global.gc?.();
  await sleep(50);
  const readings = { before: smapsRollup() };
  const rt = new NexusRuntime({ workers: 2, minInstances: n, maxInstances: n });
  await until(`${n} live instances`, () => rt.getStats().liveInstances === n);
  await idle(rt, n);
  readings.filled = smapsRollup();
  // As asked: N concurrent trivial executions, 5 rounds. With 2 workers and
  // LIFO reuse of idle instances these need not reach every instance.
  for (let round = 0; round < MEM_ROUNDS; round++) {
    await Promise.all(Array.from({ length: n }, (_, i) => trivial(rt, round * n + i)));
  }
  await idle(rt, n);
  readings.trivial = smapsRollup();
  // Every instance for certain: N executions parked at once (a suspended
  // execution keeps its sandbox), then all resumed; 5 rounds.
  for (let round = 0; round < MEM_ROUNDS; round++) {
    const parked = await Promise.all(Array.from({ length: n }, (_, i) => rt.executeHandler(EXT, extContext(i))));
    if (parked.some((r) => r.status !== 'suspended')) throw new Error('expected every execution to suspend');
    const done = await Promise.all(
      parked.map((r, i) => rt.resumeHandler(r.suspension.suspensionId, { success: true, value: i })),
    );
    if (done.some((r, i) => r.status !== 'success' || r.returnValue !== i)) throw new Error('bad resumed result');
  }
  await idle(rt, n);
  readings.held = smapsRollup();
  const s = rt.getStats();
  process.stdout.write(
    JSON.stringify({
      n,
      readings,
      liveInstances: s.liveInstances,
      totalExecutions: s.totalExecutions,
      totalMemoryBytes: s.totalMemoryBytes,
      snapshotBytes: s.snapshotBytes,
      avgInstantiateUs: s.avgInstantiateUs,
      avgResetUs: s.avgResetUs,
    }),
  );
  await rt.shutdown();
}

const MEM_KEYS = ['Private', 'Private_Clean', 'Private_Dirty', 'Rss', 'Pss'];

function runMemChild(n) {
  const r = spawnSync(process.execPath, ['--expose-gc', __filename, '--mem-child', String(n)], {
    encoding: 'utf8',
    timeout: 120000,
  });
  if (r.status !== 0) throw new Error(`memory child (N=${n}) failed: ${r.stderr || r.error}`);
  const m = JSON.parse(r.stdout);
  m.delta = {};
  for (const phase of ['filled', 'trivial', 'held']) {
    m.delta[phase] = {};
    for (const k of MEM_KEYS) m.delta[phase][k] = m.readings[phase][k] - m.readings.before[k];
  }
  return m;
}

// ---- parent ----------------------------------------------------------------

async function resetVsFresh() {
  const rt = new NexusRuntime({ workers: 1 });
  for (let i = 0; i < RESET_RUNS; i++) await trivial(rt, i);
  await sleep(20); // the last reset runs after its result is posted
  const s = rt.getStats();
  await rt.shutdown();
  return s;
}

async function trivialP50() {
  const rt = new NexusRuntime({ minInstances: 2 }); // as bench/run.js
  for (let i = 0; i < WARMUP; i++) await trivial(rt, i);
  const samples = [];
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint();
    await trivial(rt, i);
    samples.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  await rt.shutdown();
  const s = Float64Array.from(samples).sort();
  return { p50: s[Math.floor(s.length / 2)], p99: s[Math.floor(s.length * 0.99)] };
}

const kib = (v) => `${v.toFixed(0)} KiB`;
const us = (v) => `${v.toFixed(1)} µs`;

async function main() {
  console.log(`nexus-wasm-bridge snapshot bench, node ${process.version}`);

  const s = await resetVsFresh();
  console.log(`pristine sandbox, after ${RESET_RUNS} trivial executions on workers: 1:`);
  console.log(`  reset to the image (avgResetUs)            ${us(s.avgResetUs).padStart(10)}   (target <= 20 µs)`);
  console.log(`  new instance from the image (avgInstantiateUs) ${us(s.avgInstantiateUs).padStart(6)}`);
  console.log(`  fresh instance + init + image (snapshotCreateUs, 1 cold sample) ${us(s.snapshotCreateUs)}; design brief: ${DESIGN_FRESH_US} µs`);
  console.log(
    `  fresh / reset: ${(s.snapshotCreateUs / s.avgResetUs).toFixed(0)}x (snapshotCreateUs), ` +
      `${(DESIGN_FRESH_US / s.avgResetUs).toFixed(0)}x (brief's ${DESIGN_FRESH_US} µs); ` +
      `instantiate / reset: ${(s.avgInstantiateUs / s.avgResetUs).toFixed(1)}x`,
  );

  const small = runMemChild(MEM_SMALL);
  const large = runMemChild(MEM_N);
  const span = MEM_N - MEM_SMALL;
  const slope = (phase, k) => (large.delta[phase][k] - small.delta[phase][k]) / span;
  const PHASES = {
    filled: 'pool filled, idle, nothing executed yet',
    trivial: `after ${MEM_ROUNDS} rounds of N concurrent trivial executions`,
    held: `after ${MEM_ROUNDS} rounds of N executions parked at once (every instance ran)`,
  };
  console.log('private memory of idle pooled instances, smaps_rollup after - before (fresh process per N):');
  for (const [phase, what] of Object.entries(PHASES)) {
    console.log(`  ${what}:`);
    for (const m of [small, large]) {
      const d = m.delta[phase];
      console.log(
        `    N=${String(m.n).padStart(3)}: Private ${kib(d.Private).padStart(9)} (dirty ${kib(d.Private_Dirty)}), Rss ${kib(d.Rss)}, Pss ${kib(d.Pss)}` +
          ` -> per instance Private ${kib(d.Private / m.n)}, Rss ${kib(d.Rss / m.n)}`,
      );
    }
    console.log(
      `    slope (N=${MEM_N} - N=${MEM_SMALL}) / ${span}: Private ${kib(slope(phase, 'Private'))} per instance` +
        `${phase === 'filled' ? '' : ' (target <= 512 KiB)'}, Rss ${kib(slope(phase, 'Rss'))}, Pss ${kib(slope(phase, 'Pss'))}`,
    );
  }
  console.log(
    `  shared image (snapshotBytes) ${(large.snapshotBytes / 1024).toFixed(0)} KiB; getStats().totalMemoryBytes at N=${MEM_N}: ` +
      `${(large.totalMemoryBytes / 1048576).toFixed(1)} MiB (linear-memory sizes, not resident); ` +
      `avgInstantiateUs over ${MEM_N} instantiations ${us(large.avgInstantiateUs)}`,
  );

  const t = await trivialP50();
  console.log(`trivial handler end to end (${N} after ${WARMUP} warm-up, minInstances: 2): p50 ${us(t.p50)}, p99 ${us(t.p99)}`);

  console.log('');
  console.log('summary:');
  console.log(
    `  reset ${us(s.avgResetUs)} (target <= 20 µs); instantiate from image ${us(s.avgInstantiateUs)} ` +
      `(${us(large.avgInstantiateUs)} over ${MEM_N}); ` +
      `fresh ${us(s.snapshotCreateUs)} (snapshotCreateUs) = ${(s.snapshotCreateUs / s.avgResetUs).toFixed(0)}x reset`,
  );
  console.log(
    `  private memory per idle instance (slope N=${MEM_SMALL}..${MEM_N}, target <= 512 KiB): ` +
      `${kib(slope('held', 'Private'))} when every instance has run, ${kib(slope('trivial', 'Private'))} after the trivial rounds, ` +
      `${kib(slope('filled', 'Private'))} never run; (after-before)/N at N=${MEM_N}: ${kib(large.delta.held.Private / MEM_N)}; ` +
      `image ${(large.snapshotBytes / 1024).toFixed(0)} KiB shared`,
  );
  console.log(`  trivial executeHandler p50 ${us(t.p50)}`);
}

if (process.argv[2] === '--mem-child') {
  memChild(Number(process.argv[3])).catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
} else {
  main().catch((err) => {
    console.error(err);
    process.exitCode = 1;
  });
}

'use strict';
// Snapshot figures: what handing out a pristine sandbox costs, and what an
// idle pooled instance costs in private memory. Run it as
//
//     npm run bench:snapshot      (node bench/snapshot.js)
//
// Figures are printed, never checked (no timed assertions).
//
//   1. Reset vs fresh, SNAPSHOT_N samples (default 300) of each, interleaved:
//      every round takes one sample of each kind, so drift on a shared
//      machine touches all three alike. All three are timed by the native
//      module around exactly that work, one sample each (getStats() sums
//      and counts, read before and after):
//        reset        an execution's sandbox put back to the image (the
//                     pool's path: a worker does it after posting the result)
//        instantiate  a new sandbox mapped from the image (a new pool member)
//        fresh        what there would be without a snapshot: instantiate
//                     the engine, QuickJS init, bootstrap (snapshotCreateUs
//                     of a new runtime; it includes writing the image)
//      p50 and p99 of each; the ratios are of the p50s.
//   2. Private memory per idle pooled instance: /proc/self/smaps_rollup before
//      a runtime with minInstances = maxInstances = N exists and after all N
//      instances have executed (N concurrent executions, 5 rounds) and been
//      reset, in a fresh child process per N; (after - before) / N, and the
//      slope between N = 64 and N = 8, which cancels fixed costs (the image,
//      worker stacks, the addon's own allocations). SNAPSHOT_MEM_N sets the
//      large N.
//
// End-to-end latency is bench:peers' job (interleaved against peers).
const { spawnSync } = require('child_process');
const fs = require('fs');
const { NexusRuntime } = require('..');
const { TRIVIAL, EXT, context, extContext, summarize } = require('./common');

const SAMPLES = Number(process.env.SNAPSHOT_N || 300);
const WARMUP = 20;
const MEM_N = Number(process.env.SNAPSHOT_MEM_N || 64);
const MEM_SMALL = 8;
const MEM_ROUNDS = 5;

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

// Sum of a timed operation so far, µs, from getStats()'s mean and count.
const total = (s, avg, count) => s[avg] * s[count];

// One reset: an execution on the long-lived runtime, then the wait for its
// sandbox to be put back (after the result is posted).
async function resetSample(rt, i) {
  const before = rt.getStats();
  await trivial(rt, i);
  let after;
  await until('the reset', () => (after = rt.getStats()).resets === before.resets + 1);
  return total(after, 'avgResetUs', 'resets') - total(before, 'avgResetUs', 'resets');
}

// One new runtime: its image (fresh) and its first pool member (instantiate).
async function newRuntimeSample() {
  const rt = new NexusRuntime({ workers: 1, minInstances: 1, maxInstances: 1 });
  let s;
  await until('the first instance', () => (s = rt.getStats()).instantiations === 1);
  await rt.shutdown();
  return { fresh: s.snapshotCreateUs, instantiate: s.avgInstantiateUs };
}

async function resetVsFresh() {
  const rt = new NexusRuntime({ workers: 1, minInstances: 1, maxInstances: 1 });
  const samples = { reset: [], instantiate: [], fresh: [] };
  try {
    for (let i = 0; i < WARMUP + SAMPLES; i++) {
      // Alternate which kind goes first, so neither always follows the other.
      const pair = [() => resetSample(rt, i), () => newRuntimeSample()];
      if (i % 2) pair.reverse();
      const out = [];
      for (const f of pair) out.push(await f());
      if (i < WARMUP) continue;
      const [reset, made] = i % 2 ? out.reverse() : out;
      samples.reset.push(reset);
      samples.instantiate.push(made.instantiate);
      samples.fresh.push(made.fresh);
    }
  } finally {
    await rt.shutdown();
  }
  return { reset: summarize(samples.reset), instantiate: summarize(samples.instantiate), fresh: summarize(samples.fresh) };
}

const kib = (v) => `${v.toFixed(0)} KiB`;
const us = (v) => `${v.toFixed(1)} µs`;

async function main() {
  console.log(`nexus-wasm-bridge snapshot bench, node ${process.version}`);

  const t = await resetVsFresh();
  console.log(`pristine sandbox, ${SAMPLES} samples of each after ${WARMUP} warm-up rounds, interleaved (timed in the native module):`);
  const line = (what, x) => console.log(`  ${what.padEnd(52)} p50 ${us(x.p50).padStart(10)}   p99 ${us(x.p99).padStart(10)}   mean ${us(x.mean).padStart(10)}`);
  line('reset to the image after an execution', t.reset);
  line('new instance from the image', t.instantiate);
  line('fresh: engine + QuickJS init + bootstrap (+ image)', t.fresh);
  console.log(
    `  p50 ratios: instantiate / reset ${(t.instantiate.p50 / t.reset.p50).toFixed(1)}x, fresh / reset ${(t.fresh.p50 / t.reset.p50).toFixed(0)}x, ` +
      `fresh / instantiate ${(t.fresh.p50 / t.instantiate.p50).toFixed(1)}x`,
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
      `    slope (N=${MEM_N} - N=${MEM_SMALL}) / ${span}: Private ${kib(slope(phase, 'Private'))} per instance, ` +
        `Rss ${kib(slope(phase, 'Rss'))}, Pss ${kib(slope(phase, 'Pss'))}`,
    );
  }
  console.log(
    `  shared image (snapshotBytes) ${(large.snapshotBytes / 1024).toFixed(0)} KiB; getStats().totalMemoryBytes at N=${MEM_N}: ` +
      `${(large.totalMemoryBytes / 1048576).toFixed(1)} MiB (linear-memory sizes, not resident)`,
  );
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

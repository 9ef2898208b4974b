'use strict';
// The suite proper (bench/peers/run.js installs the peers and starts this
// with --no-node-snapshot). For each workload: create every subject, check
// its answer once, time them interleaved, close them, print the table.
// Then bench/RESULTS.md. BENCH_N scales the sample counts (workloads.js);
// BENCH_ONLY=trivial,fib runs a subset (RESULTS.md is then not written
// unless BENCH_WRITE=1).
const fs = require('fs');
const os = require('os');
const path = require('path');
const { WORKLOADS, BASE_N } = require('./workloads');
const { loadAll } = require('./peers');
const { interleaved, throughputRounds, now, micros } = require('./measure');
const report = require('./report');

const RESULTS = path.join(__dirname, '../RESULTS.md');

const warmupFor = (n) => Math.max(3, Math.min(200, Math.round(n / 10)));

// What a subject did in this workload, beyond its summary.
function noteFor(subject, workload) {
  const note = subject.notes?.[workload.topic];
  return typeof note === 'function' ? note(workload) : note ?? null;
}

function reason(err) {
  return `FAILED: ${String(err?.message ?? err).split('\n')[0]}`;
}

// A subject that throws while being timed (a peer's isolate disposed under
// load, say) becomes a FAILED row; the others go on.
const guard = (row, fn) => async (i) => {
  if (row.error) return undefined;
  try {
    return await fn(i);
  } catch (err) {
    row.error = reason(err);
    return undefined;
  }
};
const keep = (row, stats) => {
  if (!row.error) row.stats = stats;
};

// Creates the instances and checks each one's answer. A subject that cannot
// be created or gives a wrong answer stays in the table as a FAILED row, is
// not timed, and makes the run exit non-zero.
async function prepare(workload, subjects, options) {
  const ready = [];
  const rows = [];
  for (const s of subjects) {
    const row = { label: s.label, reference: !!s.reference, note: noteFor(s, workload) };
    rows.push(row);
    let inst;
    try {
      inst = await s.create(options);
      workload.check(await inst.run(workload.call(0), workload), 0);
      ready.push({ row, inst });
    } catch (err) {
      row.error = reason(err);
      if (inst) await inst.close();
    }
  }
  return { ready, rows };
}

async function latency(workload, subjects) {
  const { ready, rows } = await prepare(workload, subjects, {});
  try {
    const warmup = warmupFor(workload.n);
    const fns = ready.map(({ row, inst }) => guard(row, (i) => inst.run(workload.call(i), workload)));
    const stats = await interleaved(fns, workload.n, warmup);
    ready.forEach(({ row }, k) => keep(row, stats[k]));
    return { rows, warmup, skipped: [] };
  } finally {
    for (const { inst } of ready) await inst.close();
  }
}

async function cold(workload, subjects) {
  const rows = [];
  const fns = [];
  for (const s of subjects.filter((x) => x.cold)) {
    const row = { label: s.cold.label, reference: !!s.reference, note: s.cold.note };
    rows.push(row);
    try {
      const { result, cleanup } = await s.cold.run(workload.call(0));
      if (cleanup) await cleanup();
      workload.check(result, 0);
      fns.push({ row, fn: guard(row, async (i) => (await s.cold.run(workload.call(i))).cleanup) });
    } catch (err) {
      row.error = reason(err);
    }
  }
  const warmup = 2;
  const stats = await interleaved(fns.map((f) => f.fn), workload.n, warmup);
  fns.forEach(({ row }, k) => keep(row, stats[k]));
  const skipped = subjects.filter((x) => !x.cold).map((x) => ({ label: x.label, reason: 'no separate cold start' }));
  return { rows, warmup, skipped };
}

async function throughput(workload, subjects) {
  const fits = (s) => (s.maxWorkers ?? Infinity) >= workload.workers;
  const { ready, rows } = await prepare(workload, subjects.filter(fits), { workers: workload.workers });
  try {
    const fns = ready.map(({ row, inst }) => guard(row, (i) => inst.run(workload.call(i), workload)));
    const stats = await throughputRounds(fns, workload.n, workload.concurrency, workload.perRound);
    ready.forEach(({ row }, k) => keep(row, stats[k]));
    const skipped = subjects.filter((s) => !fits(s)).map((s) => ({ label: s.label, reason: `uses at most ${s.maxWorkers} thread; see the 1-worker table` }));
    return { rows, warmup: 0, skipped };
  } finally {
    for (const { inst } of ready) await inst.close();
  }
}

const RUNNERS = { latency, cold, throughput };

// A subject may declare workloads it cannot run at all (`skips`: topic ->
// reason): executeHandlerSync cannot suspend, so the $ext workloads are not
// its to run. Those are listed under the table, never timed.
function split(workload, subjects) {
  const reasonFor = (s) => s.skips?.[workload.topic];
  return {
    runnable: subjects.filter((s) => !reasonFor(s)),
    skipped: subjects.filter(reasonFor).map((s) => ({ label: s.label, reason: reasonFor(s) })),
  };
}

async function main() {
  const started = new Date();
  const t0 = now();
  const load = { start: os.loadavg()[0] };
  const { subjects, systems } = loadAll();
  for (const s of systems) console.log(`${s.system}: ${s.version ?? `not available (${s.error})`}`);
  const only = process.env.BENCH_ONLY ? process.env.BENCH_ONLY.split(',') : null;
  const results = [];
  for (const workload of WORKLOADS.filter((w) => !only || only.includes(w.id))) {
    console.log(`\n[${workload.id}] ${workload.title} ...`);
    const t = now();
    const { runnable, skipped } = split(workload, subjects);
    const res = await RUNNERS[workload.kind](workload, runnable);
    res.skipped = [...skipped, ...res.skipped];
    Object.assign(res, { workload, n: workload.n, seconds: micros(t) / 1e6 });
    results.push(res);
    console.log(report.section(res));
  }
  const seconds = micros(t0) / 1e6;
  load.end = os.loadavg()[0];
  const failed = results.flatMap((r) => r.rows.filter((row) => row.error).map((row) => `${r.workload.id}: ${row.label}: ${row.error}`));
  if (!only || process.env.BENCH_WRITE === '1') {
    fs.writeFileSync(RESULTS, report.document({ started, seconds, systems, subjects, results, baseN: BASE_N, load }));
    console.log(`wrote ${path.relative(process.cwd(), RESULTS)}`);
  }
  console.log(`total ${(seconds / 60).toFixed(1)} min`);
  if (failed.length) {
    console.error(`\n${failed.length} subject(s) failed their check:\n${failed.join('\n')}`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

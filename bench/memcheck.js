'use strict';
// npm run bench:memcheck: config.memoryCheck 'guard' against 'bounds' in one
// interleaved run (the order alternates each round, so drift and noise from
// other processes fall on both alike). Two runtimes of one worker each:
//   - fib(25) inside the sandbox: durationUs (the engine's own clock);
//   - the trivial handler: durationUs, and end-to-end executeHandler latency;
//   - the trivial handler through executeHandlerSync (the calling thread).
// Figures are printed, never checked. BENCH_N (default 5000) sets the trivial
// handler's sample count; fib(25) runs BENCH_N / 50 times (at least 20).
const { NexusRuntime } = require('..');
const { TRIVIAL, N, WARMUP, context, summarize } = require('./common');

const FIB = 'function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2) } return fib(25)';
const MODES = ['bounds', 'guard'];
const FIB_N = Math.max(20, Math.floor(N / 50));

async function main() {
  const rts = Object.fromEntries(MODES.map((m) => [m, new NexusRuntime({ workers: 1, maxInstances: 1, memoryCheck: m })]));
  for (const m of MODES) {
    const used = rts[m].getStats().memoryCheck;
    if (used !== m) throw new Error(`asked for memoryCheck '${m}', the runtime uses '${used}'`);
  }
  const samples = {};
  const add = (key, m, v) => ((samples[key] ??= { bounds: [], guard: [] })[m].push(v));
  const order = (i) => (i % 2 ? MODES : [...MODES].reverse());

  for (let i = 0; i < WARMUP; i++) {
    for (const m of MODES) {
      await rts[m].executeHandler(TRIVIAL, context(i));
      rts[m].executeHandlerSync(TRIVIAL, context(i));
    }
  }
  for (let i = 0; i < FIB_N; i++) {
    for (const m of order(i)) {
      const r = await rts[m].executeHandler(FIB, context(0), 60000);
      if (r.returnValue !== 75025) throw new Error(`fib(25) in ${m}: ${JSON.stringify(r.error ?? r.returnValue)}`);
      add('fib(25) durationUs', m, r.metrics.durationUs);
    }
  }
  for (let i = 0; i < N; i++) {
    for (const m of order(i)) {
      const t = process.hrtime.bigint();
      const r = await rts[m].executeHandler(TRIVIAL, context(i));
      const e2e = Number(process.hrtime.bigint() - t) / 1000;
      if (r.returnValue !== i + 1) throw new Error(`trivial handler in ${m}: ${JSON.stringify(r.error ?? r.returnValue)}`);
      add('trivial durationUs', m, r.metrics.durationUs);
      add('trivial executeHandler e2e', m, e2e);
      const t2 = process.hrtime.bigint();
      rts[m].executeHandlerSync(TRIVIAL, context(i));
      add('trivial executeHandlerSync e2e', m, Number(process.hrtime.bigint() - t2) / 1000);
    }
  }
  for (const m of MODES) await rts[m].shutdown();

  console.log(`memoryCheck: guard vs bounds, interleaved; fib(25) x${FIB_N}, trivial x${N} (after ${WARMUP} warm-up each)`);
  console.log(`${''.padEnd(32)} ${'bounds p50'.padStart(11)} ${'guard p50'.padStart(11)} ${'bounds mean'.padStart(12)} ${'guard mean'.padStart(11)}   guard/bounds (p50, mean)`);
  for (const [key, by] of Object.entries(samples)) {
    const b = summarize(by.bounds);
    const g = summarize(by.guard);
    const f = (v, w) => `${v.toFixed(1)} µs`.padStart(w);
    console.log(`${key.padEnd(32)} ${f(b.p50, 11)} ${f(g.p50, 11)} ${f(b.mean, 12)} ${f(g.mean, 11)}   ${(g.p50 / b.p50).toFixed(2)}x, ${(g.mean / b.mean).toFixed(2)}x`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

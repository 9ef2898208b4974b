'use strict';
// Timing. Every subject of a workload is measured in the same loop, one call
// of each per iteration with the order rotating every iteration: on a noisy 2-core machine every
// subject then sees the same conditions, so the ratios are fair even when
// the absolute figures drift, and no subject always follows the same one
// (whose garbage or still-running background work would bias it).
const { summarize } = require('../common');

const now = () => process.hrtime.bigint();
const micros = (t0) => Number(now() - t0) / 1000;

// fns[k](i) -> Promise; returns one summary per fn. A fn may resolve with a
// cleanup function (the cold starts: shut the new runtime down), which runs
// after the clock stops.
async function interleaved(fns, n, warmup) {
  const once = async (fn, i) => {
    const cleanup = await fn(i);
    if (typeof cleanup === 'function') await cleanup();
  };
  for (let i = 0; i < warmup; i++) for (const fn of fns) await once(fn, i);
  const samples = fns.map(() => []);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < fns.length; j++) {
      const k = (i + j) % fns.length;
      const t = now();
      const cleanup = await fns[k](i);
      samples[k].push(micros(t));
      if (typeof cleanup === 'function') await cleanup();
    }
  }
  return samples.map(summarize);
}

// `concurrency` callers share `total` calls of run(i); per-call latency and
// the wall time of the whole burst.
async function burst(run, concurrency, total, offset) {
  const latencies = [];
  let next = 0;
  const t0 = now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const i = offset + next++;
      const t = now();
      await run(i);
      latencies.push(micros(t));
    }
  }));
  return { latencies, seconds: micros(t0) / 1e6 };
}

// Throughput: `rounds` rounds, each a burst of every subject in rotating
// order. Reports the per-call latency over all rounds and the median of the
// per-round throughputs.
async function throughputRounds(fns, rounds, concurrency, perRound) {
  for (const fn of fns) await burst(fn, concurrency, Math.min(perRound, 256), 0); // warm-up
  const latencies = fns.map(() => []);
  const rates = fns.map(() => []);
  for (let r = 0; r < rounds; r++) {
    for (let j = 0; j < fns.length; j++) {
      const k = (r + j) % fns.length;
      const b = await burst(fns[k], concurrency, perRound, r * perRound);
      latencies[k].push(...b.latencies);
      rates[k].push(perRound / b.seconds);
    }
  }
  return fns.map((_, k) => ({ ...summarize(latencies[k]), perSecond: summarize(rates[k]).p50 }));
}

module.exports = { interleaved, throughputRounds, now, micros };

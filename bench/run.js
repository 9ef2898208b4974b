'use strict';
// npm run bench: end-to-end latency of executeHandler for a trivial handler,
// the same handler under node:vm with a fresh context (the isolation peer),
// measured in the same run, plus fib(25) inside the sandbox.
const vm = require('vm');
const { NexusRuntime } = require('..');

const TRIVIAL = "$state.count++; $emit('changed', $state.count); return $state.count";
const FIB = 'function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2) } return fib(25)';
const N = Number(process.env.BENCH_N || 5000);
const WARMUP = Math.min(500, N);

function summarize(samples) {
  const s = Float64Array.from(samples).sort();
  const pick = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { mean, p50: pick(0.5), p99: pick(0.99) };
}

function fmt(name, r) {
  return `${name.padEnd(34)} mean ${r.mean.toFixed(1).padStart(8)} µs   p50 ${r.p50.toFixed(1).padStart(8)} µs   p99 ${r.p99.toFixed(1).padStart(8)} µs`;
}

async function measure(fn) {
  for (let i = 0; i < WARMUP; i++) await fn(i);
  const samples = [];
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint();
    await fn(i);
    samples.push(Number(process.hrtime.bigint() - t) / 1000);
  }
  return summarize(samples);
}

function context(count) {
  return {
    panelId: 'bench',
    handlerName: 'increment',
    stateSnapshot: { count },
    args: {},
    scope: {},
    capabilities: ['state:read:count', 'state:write:count', 'events:emit:changed'],
  };
}

async function sandboxTrivial(rt) {
  return measure(async (i) => {
    const r = await rt.executeHandler(TRIVIAL, context(i));
    if (r.status !== 'success' || r.returnValue !== i + 1) throw new Error(`bad result ${JSON.stringify(r)}`);
  });
}

async function vmTrivial() {
  const script = new vm.Script(`(async function () { ${TRIVIAL} })()`);
  return measure(async (i) => {
    const state = { count: i };
    const events = [];
    const sandbox = { $state: state, $emit: (name, payload) => events.push({ name, payload }) };
    const value = await script.runInNewContext(sandbox);
    if (value !== i + 1 || events.length !== 1) throw new Error('bad vm result');
  });
}

async function fib(rt) {
  const runs = [];
  for (let i = 0; i < 7; i++) {
    const r = await rt.executeHandler(FIB, context(0), 60000);
    if (r.returnValue !== 75025) throw new Error('bad fib');
    runs.push(r.metrics.durationUs / 1000);
  }
  runs.sort((a, b) => a - b);
  return { min: runs[0], median: runs[3] };
}

async function throughput(rt, concurrency, total) {
  let next = 0;
  const t = process.hrtime.bigint();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const i = next++;
      const r = await rt.executeHandler(TRIVIAL, context(i));
      if (r.status !== 'success') throw new Error('bad result');
    }
  }));
  return total / (Number(process.hrtime.bigint() - t) / 1e9);
}

async function main() {
  const rt = new NexusRuntime({ minInstances: 2 });
  console.log(`nexus-wasm-bridge bench: ${N} sequential executions after ${WARMUP} warm-up, node ${process.version}`);
  const ours = await sandboxTrivial(rt);
  const peer = await vmTrivial();
  console.log(fmt('executeHandler (trivial)', ours));
  console.log(fmt('node:vm fresh context (trivial)', peer));
  console.log(`speed-up over node:vm at p50: ${(peer.p50 / ours.p50).toFixed(1)}x, mean: ${(peer.mean / ours.mean).toFixed(1)}x`);
  const f = await fib(rt);
  console.log(`fib(25) in the sandbox: min ${f.min.toFixed(1)} ms, median ${f.median.toFixed(1)} ms (handler run time)`);
  const tput = await throughput(rt, 32, Math.max(2000, N));
  console.log(`throughput, 32 concurrent callers, ${rt.config.workers} workers: ${Math.round(tput)} executions/s`);
  await rt.shutdown();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

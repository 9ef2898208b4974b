'use strict';
// npm run bench: end-to-end latency of executeHandler for a trivial handler,
// the same handler under node:vm with a fresh context (the isolation peer),
// measured in the same run, plus fib(25) inside the sandbox and throughput.
// Then, each against a peer measured in the same run (no timed assertions:
// the figures are printed, never checked):
//   - suspend -> resume -> success round trip of one extension call, beside
//     the trivial handler measured in the same interleaved loop, directly and
//     through WasmSandboxExecutor;
//   - a precompiled trivial handler (executeCompiledHandler) beside the source;
//   - what a compile-cache hit saves: compilationTimeUs and end-to-end latency
//     of the first (miss) and second (hit) execution of distinct medium-size
//     handlers, and the same sources on a runtime without a memory cache.
// BENCH_N (default 5000) sets the sample counts; a summary block ends the output.
const vm = require('vm');
const { NexusRuntime, WasmSandboxExecutor } = require('..');
const { TRIVIAL, EXT, EXT_CAPS, N, WARMUP, context, extContext, summarize } = require('./common');

const FIB = 'function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2) } return fib(25)';
const SOURCES = Math.min(200, N); // distinct handlers for the compile-cache figures

function median(values) {
  return summarize(values).p50;
}

function fmt(name, r) {
  return `${name.padEnd(34)} mean ${r.mean.toFixed(1).padStart(8)} µs   p50 ${r.p50.toFixed(1).padStart(8)} µs   p99 ${r.p99.toFixed(1).padStart(8)} µs`;
}

const us = (v) => `${v.toFixed(1)} µs`;
const ratio = (a, b) => `${(a / b).toFixed(2)}x`;
const ratios = (a, b) => `p50 ${ratio(a.p50, b.p50)}, mean ${ratio(a.mean, b.mean)}, p99 ${ratio(a.p99, b.p99)}`;

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

// Several functions timed in one loop, one call of each per iteration, so
// that on a noisy machine every figure sees the same conditions and the
// ratios between them are fair. The order rotates every iteration: what a
// call follows (the previous call's reset still running on a worker, its
// garbage) would otherwise bias the figures.
async function measureInterleaved(fns) {
  for (let i = 0; i < WARMUP; i++) for (const fn of fns) await fn(i);
  const samples = fns.map(() => []);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < fns.length; j++) {
      const k = (i + j) % fns.length;
      const t = process.hrtime.bigint();
      await fns[k](i);
      samples[k].push(Number(process.hrtime.bigint() - t) / 1000);
    }
  }
  return samples.map(summarize);
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

// Trivial handler (source), suspend/resume round trip (direct and through
// the executor) and the precompiled trivial handler, in one interleaved loop.
async function roundTrips(rt) {
  const bytecode = await rt.precompileHandler(TRIVIAL);
  const executor = new WasmSandboxExecutor(rt);
  const extensions = { http: { async get(x) { return x; } } };
  const legs = { suspend: [], resume: [] };
  let timing = false;

  const trivial = async (i) => {
    const r = await rt.executeHandler(TRIVIAL, context(i));
    if (r.status !== 'success' || r.returnValue !== i + 1) throw new Error(`bad result ${JSON.stringify(r)}`);
  };
  const roundTrip = async (i) => {
    const t0 = process.hrtime.bigint();
    const r = await rt.executeHandler(EXT, extContext(i));
    const t1 = process.hrtime.bigint();
    if (r.status !== 'suspended' || r.suspension.extensionName !== 'http' || r.suspension.args[0] !== i) {
      throw new Error(`bad suspension ${JSON.stringify(r)}`);
    }
    const d = await rt.resumeHandler(r.suspension.suspensionId, { success: true, value: i });
    const t2 = process.hrtime.bigint();
    if (d.status !== 'success' || d.returnValue !== i || d.stateMutations[0]?.value !== i + 1) {
      throw new Error(`bad resumed result ${JSON.stringify(d)}`);
    }
    if (timing) {
      legs.suspend.push(Number(t1 - t0) / 1000);
      legs.resume.push(Number(t2 - t1) / 1000);
    }
  };
  const viaExecutor = async (i) => {
    const state = { count: i };
    const v = await executor.execute({
      code: EXT,
      panelId: 'bench',
      handlerName: 'fetch',
      state,
      capabilities: EXT_CAPS,
      extensions,
    });
    if (v !== i || state.count !== i + 1) throw new Error(`bad executor result ${v} ${JSON.stringify(state)}`);
  };
  const precompiled = async (i) => {
    const r = await rt.executeCompiledHandler(bytecode, context(i));
    if (r.status !== 'success' || r.returnValue !== i + 1) throw new Error(`bad result ${JSON.stringify(r)}`);
  };

  // The legs are recorded only in the timed part (warm-up comes first).
  const fns = [trivial, roundTrip, viaExecutor, precompiled];
  let calls = 0;
  const wrapped = fns.map((fn) => async (i) => {
    if (++calls > WARMUP * fns.length) timing = true;
    await fn(i);
  });
  const [tr, rtrip, exec, pre] = await measureInterleaved(wrapped);
  return {
    trivial: tr,
    roundTrip: rtrip,
    executor: exec,
    precompiled: pre,
    suspendLeg: summarize(legs.suspend),
    resumeLeg: summarize(legs.resume),
    bytecodeBytes: bytecode.byteLength,
  };
}

// A realistic medium-size handler (~40 lines: filter, score, sort, group a
// task list; state writes, events, a view command), distinct per k in its
// identifiers and constants, so each one is a compile-cache miss at first.
function mediumHandler(k) {
  return `// tasks panel, handler variant ${k}: filter, rank and summarise the task list
const items = Array.isArray($state.items) ? $state.items : [];
const minPriority${k} = ${k % 5} + ($args.minPriority ?? 0);
const query = String($args.query ?? '').trim().toLowerCase();
const now = $args.now ?? ${1700000000000 + k * 1000};
const DAY_${k} = 86400000;

function matches${k}(item) {
  if (item.archived) return false;
  if (item.priority < minPriority${k}) return false;
  if (query && !item.title.toLowerCase().includes(query)) return false;
  return true;
}

function score${k}(item) {
  const ageDays = Math.floor((now - item.createdAt) / DAY_${k});
  const due = item.dueAt ? Math.max(0, (item.dueAt - now) / DAY_${k}) : ${30 + (k % 11)};
  return item.priority * ${10 + (k % 13)} - ageDays * ${1 + (k % 3)} - Math.min(due, 30);
}

const visible = items.filter(matches${k}).map((item) => ({ id: item.id, title: item.title, tags: item.tags, score: score${k}(item) }));
visible.sort((a, b) => b.score - a.score || a.title.localeCompare(b.title));

const byTag = {};
for (const item of visible) {
  for (const tag of item.tags ?? []) byTag[tag] = (byTag[tag] ?? 0) + 1;
}
const topTags = Object.entries(byTag)
  .sort((a, b) => b[1] - a[1])
  .slice(0, ${3 + (k % 4)})
  .map(([tag, count]) => \`\${tag} (\${count})\`);

$state.visibleIds = visible.map((item) => item.id);
$state.summary = { total: items.length, shown: visible.length, topTags, variant: ${k} };
if (visible.length === 0) {
  $emit('tasks:empty', { query, variant: ${k} });
  $view.setFilter('task-list', { query, minPriority: minPriority${k} });
} else {
  $view.scrollTo('task-list', { position: 0 });
}
$emit('tasks:filtered', { shown: visible.length, hidden: items.length - visible.length });
return { shown: visible.length, first: visible.slice(0, 3).map((item) => item.id) };
`;
}

function taskState() {
  const tags = ['ui', 'backend', 'bug', 'docs', 'perf', 'infra'];
  const items = [];
  for (let i = 0; i < 20; i++) {
    items.push({
      id: `t${i}`,
      title: `Task number ${i} ${tags[i % tags.length]}`,
      priority: i % 6,
      archived: i % 9 === 0,
      createdAt: 1699000000000 + i * 3600000,
      dueAt: i % 3 ? 1701000000000 + i * 86400000 : null,
      tags: [tags[i % tags.length], tags[(i * 5) % tags.length]],
    });
  }
  return { items };
}

function mediumContext(k) {
  return {
    panelId: 'tasks',
    handlerName: `filter${k}`,
    stateSnapshot: taskState(),
    args: { query: k % 4 === 0 ? 'task' : '', minPriority: 1 },
    scope: {},
    capabilities: ['state:read:*', 'state:write:*', 'events:emit:*', 'view:update:*'],
  };
}

// One pass over the sources: per execution, compilationTimeUs, the end-to-end
// latency and whether the runtime reported a cache hit.
async function pass(rt, sources) {
  const out = { compile: [], e2e: [], hits: 0 };
  for (let k = 0; k < sources.length; k++) {
    const ctx = mediumContext(k);
    const t = process.hrtime.bigint();
    const r = await rt.executeHandler(sources[k], ctx);
    const e2e = Number(process.hrtime.bigint() - t) / 1000;
    if (r.status !== 'success' || typeof r.returnValue?.shown !== 'number') {
      throw new Error(`bad medium-handler result ${JSON.stringify(r.error ?? r)}`);
    }
    out.compile.push(r.metrics.compilationTimeUs);
    out.e2e.push(e2e);
    if (r.metrics.cacheHit) out.hits++;
  }
  return { compile: median(out.compile), e2e: median(out.e2e), hits: out.hits };
}

async function compileCache(rt, salt) {
  // Distinct from anything this process ran before (salted per run).
  const sources = Array.from({ length: SOURCES }, (_, k) => `// run ${salt}\n${mediumHandler(k)}`);
  const lines = sources[0].split('\n').length;
  const bytes = Math.round(sources.reduce((a, s) => a + s.length, 0) / sources.length);
  // Warm-up on other distinct sources, so that the miss pass is not also the
  // first time this process runs medium-size handlers.
  const warmSources = Array.from({ length: Math.min(50, SOURCES) }, (_, k) => `// warm-up ${salt}\n${mediumHandler(k)}`);
  await pass(rt, warmSources);
  const miss = await pass(rt, sources);
  const hit = await pass(rt, sources);
  const nocacheRt = new NexusRuntime({ minInstances: 2, maxCacheBytes: 0 });
  try {
    for (let i = 0; i < 50; i++) await nocacheRt.executeHandler(TRIVIAL, context(i)); // instances up, threads warm
    await pass(nocacheRt, warmSources);
    const first = await pass(nocacheRt, sources);
    const second = await pass(nocacheRt, sources);
    return { lines, bytes, miss, hit, first, second };
  } finally {
    await nocacheRt.shutdown();
  }
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

  console.log('');
  // The same loop on this runtime and on a 1-worker one: with two workers a
  // call may land on the worker that is asleep (a thread wake-up per hop), so
  // the distributions have several modes and a p50 can flip between them.
  const t = await roundTrips(rt);
  const rt1 = new NexusRuntime({ workers: 1, minInstances: 2 });
  let t1;
  try {
    t1 = await roundTrips(rt1);
  } finally {
    await rt1.shutdown();
  }
  for (const [r, workers] of [[t, rt.config.workers], [t1, 1]]) {
    console.log(`suspend/resume and precompiled, ${workers} worker(s), ${N} iterations interleaved (one call of each per iteration, rotating order):`);
    console.log(fmt('trivial (interleaved peer)', r.trivial));
    console.log(fmt('suspend -> resume -> success', r.roundTrip));
    console.log(fmt('  of which execute -> suspended', r.suspendLeg));
    console.log(fmt('  of which resume -> success', r.resumeLeg));
    console.log(fmt('same via WasmSandboxExecutor', r.executor));
    console.log(fmt('executeCompiledHandler (trivial)', r.precompiled));
    console.log(`round trip / trivial: ${ratios(r.roundTrip, r.trivial)} (target <= 2x); executor / trivial: ${ratios(r.executor, r.trivial)}`);
    console.log(`precompiled / source: ${ratios(r.precompiled, r.trivial)} (bytecode ${r.bytecodeBytes} bytes)`);
  }

  console.log('');
  const c = await compileCache(rt, `${process.pid}-${Date.now()}`);
  console.log(`compile cache, ${SOURCES} distinct handlers of ${c.lines} lines (~${c.bytes} bytes), medians:`);
  console.log(`  1st execution (miss, ${c.miss.hits} hits)        compilationTimeUs ${us(c.miss.compile).padStart(9)}   end to end ${us(c.miss.e2e).padStart(9)}`);
  console.log(`  2nd execution (hit, ${c.hit.hits} hits)        compilationTimeUs ${us(c.hit.compile).padStart(9)}   end to end ${us(c.hit.e2e).padStart(9)}`);
  console.log(`  maxCacheBytes: 0, 1st (${c.first.hits} hits)     compilationTimeUs ${us(c.first.compile).padStart(9)}   end to end ${us(c.first.e2e).padStart(9)}`);
  console.log(`  maxCacheBytes: 0, 2nd (${c.second.hits} hits)     compilationTimeUs ${us(c.second.compile).padStart(9)}   end to end ${us(c.second.e2e).padStart(9)}`);
  const saved = c.miss.compile - c.hit.compile;
  const e2eSaved = c.miss.e2e - c.hit.e2e;
  console.log(
    `  a hit saves ${us(saved)} of compilation (${ratio(c.miss.compile, c.hit.compile)}), ${us(e2eSaved)} end to end ` +
      `(${ratio(c.miss.e2e, c.hit.e2e)}); vs no memory cache (2nd pass): ${us(c.second.e2e - c.hit.e2e)} end to end`,
  );

  console.log('');
  console.log('summary:');
  console.log(`  trivial executeHandler p50 ${us(ours.p50)} / p99 ${us(ours.p99)}; node:vm fresh context p50 ${us(peer.p50)} (${(peer.p50 / ours.p50).toFixed(1)}x slower)`);
  for (const [r, w] of [[t, `${rt.config.workers} workers`], [t1, '1 worker']]) {
    console.log(
      `  ${w}: suspend->resume round trip p50 ${us(r.roundTrip.p50)} / p99 ${us(r.roundTrip.p99)} = ${ratios(r.roundTrip, r.trivial)} ` +
        `trivial (p50 ${us(r.trivial.p50)}, same loop; target <= 2x)`,
    );
    console.log(`  ${w}: via WasmSandboxExecutor p50 ${us(r.executor.p50)} / p99 ${us(r.executor.p99)} = ${ratios(r.executor, r.trivial)} trivial`);
    console.log(`  ${w}: precompiled trivial p50 ${us(r.precompiled.p50)} / p99 ${us(r.precompiled.p99)} = ${ratios(r.precompiled, r.trivial)} source`);
  }
  console.log(
    `  compile cache (${c.lines}-line handlers): miss compile ${us(c.miss.compile)}, hit (bytecode read) ${us(c.hit.compile)}; ` +
      `end to end ${us(c.miss.e2e)} -> ${us(c.hit.e2e)} (saves ${us(e2eSaved)}); maxCacheBytes 0: ${us(c.second.e2e)}`,
  );
  console.log(`  fib(25) median ${f.median.toFixed(1)} ms; throughput ${Math.round(tput)}/s (32 callers, ${rt.config.workers} workers)`);
  await rt.shutdown();
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

'use strict';
// Interleaved A/B of two builds of this package on small handlers:
//   node bench/ab.js DIR_A DIR_B [rounds] [callsPerRound]
// Each DIR is a package root (lib/ plus build/Release/). One child process
// per build; the parent lets them run in turn, a round each, so both see
// the same machine load. Prints p50/p99 of the result's durationUs (time
// inside the sandbox) and of the wall time per call, for the sync and the
// async path, and the best round's wall p50 (the machine may be shared:
// the quietest round is the closest to the cost itself).
const { fork } = require('child_process');
const path = require('path');
const { TRIVIAL, context, summarize } = require('./common');

const CASES = [
  { name: 'sync trivial', code: TRIVIAL, sync: true },
  { name: 'sync return 1', code: 'return 1', sync: true },
  { name: 'async trivial', code: TRIVIAL, sync: false },
];

if (process.argv[2] === '--child') {
  const { NexusRuntime } = require(path.join(process.argv[3], 'lib'));
  const rt = new NexusRuntime({ workers: 2 });
  process.on('message', async ({ round, calls }) => {
    if (round === 'stop') {
      await rt.shutdown();
      process.exit(0);
    }
    const out = {};
    for (const c of CASES) {
      const dur = new Float64Array(calls);
      const wall = new Float64Array(calls);
      for (let i = 0; i < calls; i++) {
        const ctx = context(i);
        const t = process.hrtime.bigint();
        const r = c.sync ? rt.executeHandlerSync(c.code, ctx) : await rt.executeHandler(c.code, ctx);
        wall[i] = Number(process.hrtime.bigint() - t) / 1000;
        if (r.status !== 'success') throw new Error(`${c.name}: ${JSON.stringify(r.error)}`);
        dur[i] = r.metrics.durationUs;
      }
      out[c.name] = { dur: Array.from(dur), wall: Array.from(wall) };
    }
    process.send(out);
  });
  process.send('ready');
  return;
}

const [dirA, dirB] = process.argv.slice(2, 4).map((d) => path.resolve(d));
const rounds = Number(process.argv[4] || 10);
const calls = Number(process.argv[5] || 500);
if (!dirA || !dirB) {
  console.error('usage: node bench/ab.js DIR_A DIR_B [rounds] [callsPerRound]');
  process.exit(2);
}

function start(dir) {
  const child = fork(__filename, ['--child', dir]);
  const next = () => new Promise((resolve) => child.once('message', resolve));
  return { child, next };
}

(async () => {
  const sides = { A: start(dirA), B: start(dirB) };
  await Promise.all(Object.values(sides).map((s) => s.next()));
  const acc = { A: {}, B: {} };
  for (let r = 0; r < rounds + 1; r++) {
    for (const k of r % 2 ? ['A', 'B'] : ['B', 'A']) {
      const s = sides[k];
      const reply = s.next();
      s.child.send({ round: r, calls });
      const res = await reply;
      if (r === 0) continue; // warm-up
      for (const [name, { dur, wall }] of Object.entries(res)) {
        const a = (acc[k][name] ??= { dur: [], wall: [], best: Infinity });
        a.dur.push(...dur);
        a.wall.push(...wall);
        a.best = Math.min(a.best, summarize(wall).p50);
      }
    }
  }
  for (const s of Object.values(sides)) s.child.send({ round: 'stop' });
  console.log(`A = ${dirA}\nB = ${dirB}\n${rounds} rounds x ${calls} calls, interleaved\n`);
  const f = (x) => x.toFixed(1).padStart(7);
  console.log('case             side  durUs p50    p99   wallUs p50    p99  best-round p50');
  for (const c of CASES) {
    for (const k of ['A', 'B']) {
      const d = summarize(acc[k][c.name].dur);
      const w = summarize(acc[k][c.name].wall);
      const best = acc[k][c.name].best;
      console.log(`${c.name.padEnd(16)} ${k}    ${f(d.p50)} ${f(d.p99)}    ${f(w.p50)} ${f(w.p99)}  ${f(best)}`);
    }
  }
})();

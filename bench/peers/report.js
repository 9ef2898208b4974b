'use strict';
// The tables (markdown, printed to stdout as they are and written to
// bench/RESULTS.md) and the machine description.
const os = require('os');
const { spawnSync } = require('child_process');
const path = require('path');

function time(us) {
  if (!Number.isFinite(us)) return '–';
  if (us < 1000) return `${us.toFixed(1)} µs`;
  if (us < 1e6) return `${(us / 1000).toFixed(2)} ms`;
  return `${(us / 1e6).toFixed(2)} s`;
}

const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : '–');
const rate = (v) => (Number.isFinite(v) ? `${Math.round(v).toLocaleString('en-US')}/s` : '–');

function gitRevision() {
  const root = path.join(__dirname, '../..');
  const rev = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' });
  if (rev.status !== 0) return null;
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src', 'lib'], { cwd: root, encoding: 'utf8' });
  return `${rev.stdout.trim()}${dirty.stdout.trim() ? ', uncommitted changes in src/ or lib/' : ''}`;
}

function machine() {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model?.trim() ?? 'unknown',
    cores: cpus.length,
    parallelism: os.availableParallelism ? os.availableParallelism() : cpus.length,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    v8: process.versions.v8,
    kernel: `${os.type()} ${os.release()} (${os.arch()})`,
  };
}

// One workload's table. Latency: p50/p99/mean and the ratios to ours' row.
// Throughput adds executions per second, its ratio taken the other way
// (ours/peer) so that in every ratio column > 1 means ours is faster.
function table(res) {
  const ref = res.rows.find((r) => r.reference && r.stats);
  const tp = res.workload.kind === 'throughput';
  const head = tp
    ? ['peer', 'exec/s', 'latency p50', 'latency p99', 'mean', 'p50 peer/ours', 'p99 peer/ours', 'exec/s ours/peer']
    : ['peer', 'p50', 'p99', 'mean', 'p50 peer/ours', 'p99 peer/ours'];
  const lines = [`| ${head.join(' | ')} |`, `| ${head.map((h, k) => (k === 0 ? '---' : '---:')).join(' | ')} |`];
  for (const r of res.rows) {
    const name = r.reference ? `**${r.label}**` : r.label;
    if (!r.stats) {
      lines.push(`| ${name} | ${r.error} |${' |'.repeat(head.length - 2)}`);
      continue;
    }
    const s = r.stats;
    const cells = [name];
    if (tp) cells.push(rate(s.perSecond));
    cells.push(time(s.p50), time(s.p99), time(s.mean), ratio(s.p50, ref?.stats.p50), ratio(s.p99, ref?.stats.p99));
    if (tp) cells.push(ratio(ref?.stats.perSecond, s.perSecond));
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

function section(res) {
  const w = res.workload;
  const what = w.kind === 'throughput'
    ? `${res.n} rounds of ${w.perRound} executions per subject, ${w.concurrency} concurrent callers, rounds interleaved; latency is per call, exec/s the median round`
    : `${res.n} samples per subject after ${res.warmup} warm-up, interleaved (one call of each per iteration, rotating order)`;
  const out = [`### ${w.title}`, ''];
  if (w.kind !== 'cold' && w.kind !== 'throughput') out.push(`Handler: \`${w.code.length > 160 ? `${w.code.slice(0, 157)}...` : w.code}\``, '');
  out.push(`${what}; took ${(res.seconds).toFixed(1)} s.`, '', table(res), '');
  // One line: what each subject did here, beyond its summary (Subjects).
  // Rows of one system that did the same are named once ("isolated-vm" for
  // both of its rows: the label up to its first comma).
  const groups = new Map();
  for (const r of res.rows.filter((x) => x.note)) {
    if (!groups.has(r.note)) groups.set(r.note, new Set());
    groups.get(r.note).add(r.label.split(', ')[0]);
  }
  const notes = [...groups].map(([note, who]) => `${[...who].join(' and ')}: ${note}`);
  out.push(`**What each did.** ${notes.length ? `${notes.join('; ')}.` : 'Each ran the handler as described under Subjects, nothing specific to this workload.'}`);
  if (res.skipped.length) out.push('', `Not in this table: ${res.skipped.map((s) => `${s.label} (${s.reason})`).join('; ')}.`);
  out.push('');
  return out.join('\n');
}

function document({ started, seconds, systems, subjects, results, baseN, load }) {
  const m = machine();
  const rev = gitRevision();
  const lines = [
    '# Peer benchmark results',
    '',
    `Written by \`npm run bench:peers\` (bench/peers/) on ${started.toISOString()}; the run took ${(seconds / 60).toFixed(1)} min (BENCH_N=${baseN}).`,
    '',
    '## Machine',
    '',
    `- CPU: ${m.cpu}, ${m.cores} cores (availableParallelism ${m.parallelism}), ${m.memory} RAM`,
    `- Node ${m.node} (V8 ${m.v8}), run with --no-node-snapshot (isolated-vm requires it on Node ≥ 20)`,
    `- Kernel: ${m.kernel}`,
    `- Load average (1 min) at the start ${load.start.toFixed(2)}, at the end ${load.end.toFixed(2)}: other processes share this machine, which is why every table is interleaved`,
    '',
    '## Versions',
    '',
    ...systems.map((s) => `- ${s.system}: ${s.version ?? `NOT AVAILABLE (${s.error})`}${s.system === 'nexus-wasm-bridge' && rev ? ` (git ${rev})` : ''}`),
    '',
    '## Method',
    '',
    'Every subject does the same observable work per call: the state and args are copied in, the handler runs with',
    '`$state`/`$emit`/`$args`/`$ext` semantics (writes recorded one per key, emitted payloads copied), and the return value,',
    'mutations and events are copied out; the peers run one shared wrapper (bench/peers/harness.js) inside their sandbox.',
    'Each subject\'s answer is checked against the expected one before timing. All subjects of a workload are timed in one',
    'loop, one call of each per iteration in rotating order, so the ratios are fair on a noisy machine. Ratios are',
    'peer/ours for latencies (> 1: the peer is slower) and ours/peer for throughput (> 1: ours is faster).',
    '',
    'What differs between the subjects, beyond speed:',
    '',
    '- ours runs every call in a pristine copy of an initialised sandbox on a worker thread, with a timeout that also covers',
    '  promise jobs, a per-sandbox memory limit, capability checks and tracking of in-place changes to objects read from',
    '  `$state`. The peers\' wrapper does no capability checks and no in-place tracking (both favour the peers).',
    '- "reused context" rows (isolated-vm, quickjs-emscripten) keep globals, patched prototypes and pending promises from',
    '  one call to the next: no isolation between executions. "fresh context" rows have it.',
    '- node:vm: `timeout` bounds only the synchronous part of a handler (up to its first `await`) and starts a watchdog',
    '  thread per call; node:vm is not a security boundary (Node\'s documentation says so).',
    '- isolated-vm: the memory limit is per isolate, shared by all its contexts, and exceeding it disposes the isolate',
    '  with every call in flight; so each isolate admits 2 calls at a time (as ours admits 2 per worker).',
    '- quickjs-emscripten: no API to run precompiled bytecode, so a fresh context compiles the handler on every call; it',
    '  runs on the JS thread.',
    '- new Function: no isolation and no timeout; the floor.',
    '- Throughput: node:vm, new Function and quickjs-emscripten run on the JS thread, so they appear in the 1-worker table only.',
    '',
    '## Subjects',
    '',
    ...subjects.map((s) => `- **${s.label}**: ${s.summary}.`),
    '',
    '## Results',
    '',
    ...results.map(section),
  ];
  return lines.join('\n');
}

module.exports = { document, section, table, machine };

'use strict';
// npm test: every test file once on the default (async) engine path in the
// default memoryCheck mode, then the semantic suites again:
//   sync, batch  NEXUS_TEST_PATH=sync|batch: executeHandlerSync and
//                executeBatch held to executeHandler's assertions
//                (test/paths.js routes the calls);
//   bounds       NEXUS_TEST_MEMORY_CHECK=bounds: the other compiled engine;
//   state        NEXUS_TEST_STATE=nexus: every plain stateSnapshot given as
//                runtime.createState(...) instead.
// Prints how many executions each pass really routed and how many fell back.
//
//   node scripts/test.js [async|sync|batch|bounds|state ...]   (default: all)

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.join(__dirname, '..');
const glob = (dir) =>
  fs
    .readdirSync(path.join(ROOT, dir))
    .filter((f) => f.endsWith('.test.js'))
    .map((f) => path.join(dir, f));

const SEMANTIC = [
  'test/core.test.js',
  'test/marshaling.test.js',
  'test/capabilities.test.js',
  'test/errors.test.js',
  'test/limits.test.js',
  'test/isolation.test.js',
  'test/bytecode.test.js',
  'test/state.test.js',
  ...glob('test/security'),
];

const PATHS = {
  async: [...glob('test'), ...glob('test/security')],
  // Nearly every handler of suspend.test.js calls $ext, which the sync path
  // refuses: it would run on the async path again, so it is left to batch.
  sync: SEMANTIC,
  // memory.test.js takes a minute per path; the sync run keeps it (sync.c
  // has its own sandbox life cycle), batch jobs reuse the worker's.
  batch: [...SEMANTIC.filter((f) => !f.endsWith('memory.test.js')), 'test/suspend.test.js'],
  // The async path again on the bounds-checked engine (guard pages are the
  // default): everything that runs handlers, and the memory-check tests.
  bounds: [...SEMANTIC, 'test/suspend.test.js', 'test/executor-real.test.js', 'test/guard.test.js'],
  // The async path with every plain stateSnapshot given as a NexusState
  // (runtime.createState): the state suites and everything that reads
  // $state. memory.test.js measures host memory, not semantics.
  state: [...SEMANTIC.filter((f) => !f.endsWith('memory.test.js')), 'test/suspend.test.js'],
};
// Which engine path and memoryCheck mode each pass runs on.
const MODE = { async: ['async'], sync: ['sync'], batch: ['batch'], bounds: ['async', 'bounds'], state: ['async', undefined, 'nexus'] };

const wanted = process.argv.slice(2);
for (const p of wanted) if (!PATHS[p]) throw new Error(`unknown pass ${p}: async, sync, batch, bounds or state`);
const log = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'nexus-test-')), 'paths.jsonl');

let failed = false;
const summary = [];
for (const name of wanted.length ? wanted : Object.keys(PATHS)) {
  const t0 = Date.now();
  const [enginePath, memoryCheck, state] = MODE[name];
  process.stdout.write(`\n== ${name}: ${PATHS[name].length} files ==\n`);
  const env = { ...process.env, NEXUS_TEST_PATH: enginePath, NEXUS_TEST_PATH_LOG: log };
  if (memoryCheck) env.NEXUS_TEST_MEMORY_CHECK = memoryCheck;
  if (state) env.NEXUS_TEST_STATE = state;
  const r = spawnSync(process.execPath, ['--test', ...PATHS[name]], { cwd: ROOT, stdio: 'inherit', env });
  if (r.status !== 0) failed = true;
  summary.push({ name, ok: r.status === 0, seconds: (Date.now() - t0) / 1000 });
}

const totals = {};
if (fs.existsSync(log)) {
  for (const line of fs.readFileSync(log, 'utf8').split('\n').filter(Boolean)) {
    const c = JSON.parse(line);
    const t = (totals[c.path] ??= { routed: 0, suspendFallback: 0, argumentFallback: 0, nexusState: 0 });
    for (const k of Object.keys(t)) t[k] += c[k];
  }
}
fs.rmSync(path.dirname(log), { recursive: true, force: true });

process.stdout.write('\n');
for (const s of summary) {
  const t = s.name === MODE[s.name][0] || s.name === 'state' ? totals[s.name] : undefined;
  let routing = '';
  if (t && s.name === 'state') {
    routing = `: ${t.nexusState} contexts given a NexusState, ${t.argumentFallback} left as they were (createState refused the state)`;
  } else if (t) {
    routing =
      `: ${t.routed} executions on the ${s.name} path, ${t.suspendFallback} re-run on async (they call $ext), ` +
      `${t.argumentFallback} bad-argument calls left to executeHandler's own checks`;
  }
  process.stdout.write(`${s.ok ? 'ok  ' : 'FAIL'} ${s.name} path (${s.seconds.toFixed(1)} s)${routing}\n`);
}
process.exit(failed ? 1 : 0);

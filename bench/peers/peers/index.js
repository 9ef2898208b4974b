'use strict';
// The adapters. Each module exports { system, version(), load() -> subjects }
// and a subject is
//   {
//     id, label,
//     reference?: true          the row every ratio is taken against (ours)
//     maxWorkers?: n            most workers it can use (1: single-threaded,
//                               left out of the 2-worker throughput table)
//     skips?: { [workload.topic]: reason }  workloads it cannot run at all
//                               (listed under their table, never timed)
//     summary: how it runs a handler, for RESULTS.md's list of subjects
//     notes: { [workload.topic]: string | (workload) => string }, what it
//            did in that kind of workload beyond the summary (ext, compute,
//            transform, bigState, bigStateNoop, throughput)
//     create({ workers }) -> { run(call, workload) -> Promise<result>, close() }
//     cold?: { label, note, run(call) -> { result, cleanup? } }
//   }
// where result is { returnValue, stateMutations, events }. Adding a subject
// (one more way of running ours, one more peer) is one entry here or one
// more element returned by load(); the suite needs no other change.
const MODULES = [
  require('./ours'),
  require('./function'),
  require('./node-vm'),
  require('./isolated-vm'),
  require('./quickjs-emscripten'),
];

// A peer that cannot be loaded (not installed, failed to build) is reported
// and left out rather than ending the run.
function loadAll() {
  const subjects = [];
  const systems = [];
  for (const m of MODULES) {
    try {
      const loaded = m.load();
      subjects.push(...loaded);
      systems.push({ system: m.system, version: m.version(), subjects: loaded.map((s) => s.label) });
    } catch (err) {
      if (m.system === 'nexus-wasm-bridge') throw err;
      systems.push({ system: m.system, version: null, error: String(err?.message ?? err).split('\n')[0] });
    }
  }
  return { subjects, systems };
}

module.exports = { loadAll };

'use strict';
// npm run bench:peers: this package beside the systems users would otherwise
// pick (new Function, node:vm, isolated-vm, quickjs-emscripten), in one
// interleaved run; writes bench/RESULTS.md. See bench/peers/suite.js.
//
// Two steps, because isolated-vm needs node started with --no-node-snapshot
// on Node >= 20 (its README; without it some operations crash the process):
// install the pinned peers if needed, then run the suite in a child node with
// that flag. Arguments and the environment (BENCH_N, BENCH_ONLY) pass through.
const path = require('path');
const { spawnSync } = require('child_process');
const { ensurePeers } = require('./install');

try {
  ensurePeers();
} catch (err) {
  console.error(err.message);
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--no-node-snapshot', path.join(__dirname, 'suite.js'), ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(r.status ?? 1);

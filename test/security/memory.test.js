'use strict';
// Host memory is bounded: each leak- or amplification-prone case runs many
// times in a child process (node --expose-gc) and the child's RSS may grow
// by at most BOUND_MIB over the runs after a warm-up; after shutdown() it
// must come back near where it started. A leak of 32 KiB per execution
// (the old watchdog-path leak was 150-200 MB, the trap-path one 1.8 KB)
// shows over RUNS executions; test:asan and the fuzzers look closer.
const test = require('node:test');
const assert = require('node:assert/strict');
const { runInChild } = require('./harness');

const BOUND_MIB = 24;
const AFTER_SHUTDOWN_MIB = 48;

const CASES = [
  ['a getter that exhausts the stack while the return value is copied', 1500, "return { get x() { const f = () => f() + 1; return f() } }", {}],
  ['the same on a 1 MiB worker stack (wasm traps)', 1500, "return { get x() { const f = () => f() + 1; return f() } }", { stackSizeBytes: 1 << 20 }],
  ['a shared-reference DAG (RESOURCE_LIMIT after 8 MiB)', 150, "let a = ['x'.repeat(65536)]; for (let i = 0; i < 30; i++) a = [a, a]; return a", {}],
  ['a DAG in $ext arguments', 150, "let a = ['x'.repeat(65536)]; for (let i = 0; i < 30; i++) a = [a, a]; await $ext.svc.call(a)", {}],
  ['an $emit flood up to the budget', 150, "const s = 'e'.repeat(1 << 20); for (;;) $emit('e', s)", {}],
  ['a host-call flood', 300, 'for (;;) $state.x', {}],
  ['a getter that loops in $ext arguments (TIMEOUT)', 40, "await $ext.svc.call({ get a() { for (;;) {} } })", {}, 20],
  ['MEMORY_LIMIT while a getter copies', 150, "return { get a() { const s = []; for (;;) s.push('z'.repeat(1e5) + s.length) } }", {}],
  ['suspensions with 1 MiB of arguments, cancelled', 300, "await $ext.svc.call('a'.repeat(1 << 20))", {}, 5000, 'cancel'],
];

const SCRIPT = (runs, code, config, timeout, mode) => `
  const { testConfig } = require(process.env.NX_PKG + '/test/helpers.js');
  const rss = () => { global.gc(); global.gc(); return process.memoryUsage().rss; };
  const start = rss();
  const rt2 = new NexusRuntime(testConfig({ workers: 2, maxInstances: 2, ...${JSON.stringify(config)} }));
  const c = ctx({ extensionRegistry: { svc: ['call'] } });
  const one = async () => {
    const r = await rt2.executeHandler(${JSON.stringify(code)}, c, ${timeout});
    if (r.status === 'suspended') ${mode === 'cancel' ? 'await rt2.cancelSuspended(r.suspension.suspensionId)' : 'throw new Error("suspended")'};
    return r.status === 'error' ? r.error.code : r.status;
  };
  const warm = Math.max(10, Math.floor(${runs} / 5));
  const codes = {};
  const batch = async (n) => { for (let i = 0; i < n; i += 2) for (const k of await Promise.all([one(), one()])) codes[k] = (codes[k] || 0) + 1; };
  await batch(warm);
  const before = rss();
  await batch(${runs});
  const after = rss();
  await rt2.shutdown();
  const end = rss();
  return { start, before, after, end, codes };`;

let results;
test.before(async () => {
  const cases = CASES.map(([name, runs, code, config, timeout = 5000, mode]) => ({ name, script: SCRIPT(runs, code, config, timeout, mode) }));
  // glibc raises its mmap threshold to the size of the last big block
  // freed, after which freed megabyte blocks stay in the heap and RSS keeps
  // what the allocator caches, not what is live. A fixed threshold makes
  // RSS follow live memory.
  results = await runInChild(cases, { args: ['--expose-gc'], env: { MALLOC_MMAP_THRESHOLD_: '131072' }, timeoutMs: 600000 });
});

CASES.forEach(([name, runs], i) => {
  test(`${name}: ${runs} runs grow RSS by less than ${BOUND_MIB} MiB, and shutdown gives it back`, (t) => {
    const r = results[i];
    assert.equal(r.crashed, undefined, r.crashed);
    // The child still ran every case under ASan (a report aborts it: `crashed` above).
    if (process.env.NEXUS_ASAN) return t.skip('RSS bound not checked under ASan: RSS there holds its quarantine of freed blocks and the shadow pages of every address a large block ever used, not live memory');
    const { start, before, after, end, codes } = r.result;
    const mib = (b) => (b / 1048576).toFixed(1);
    const growth = after - before;
    t.diagnostic(`${name}: start ${mib(start)} MiB, after warm-up ${mib(before)}, after ${runs} runs ${mib(after)}, after shutdown ${mib(end)}; outcomes ${JSON.stringify(codes)}`);
    assert.ok(growth < BOUND_MIB * 1048576, `RSS grew ${mib(growth)} MiB over ${runs} runs (${JSON.stringify(codes)})`);
    assert.ok(end - start < AFTER_SHUTDOWN_MIB * 1048576, `RSS after shutdown ${mib(end)} MiB vs ${mib(start)} MiB at start`);
    assert.equal(r.next, true);
  });
});

'use strict';
// Hostile handlers run in a child process: a crash or a hang there fails the
// test that ran the case instead of taking the test runner down with it.
//
// A case is { name, code, over?, timeout?, config? } or { name, script } where
// `script` is the body of an async function of (rt, ctx, strip, sleep,
// NexusRuntime) run in the child and returning something JSON can carry. After every case the
// child runs a plain handler on the same runtime and reports whether it
// still answers: `next` is true when it did.

const path = require('path');
const { spawn } = require('child_process');

const PKG = path.join(__dirname, '..', '..');

const CHILD = String.raw`
'use strict';
// The runtime class on the engine path NEXUS_TEST_PATH selects (test/paths.js).
const NexusRuntime = require(process.env.NX_PATHS).routed(require(process.env.NX_PKG).NexusRuntime);
const { testConfig } = require(process.env.NX_PKG + '/test/helpers.js');
const ALL = ['state:read:*', 'state:write:*', 'events:emit:*', 'view:update:*', 'ext:*'];
const ctx = (over = {}) => ({ panelId: 'p', handlerName: 'h', stateSnapshot: {}, args: {}, scope: {},
  capabilities: ALL, extensionRegistry: {}, ...over });
const strip = (r) => {
  const out = { status: r.status };
  if (r.error) out.error = { code: r.error.code, message: r.error.message };
  if (r.status === 'success') out.returnValue = r.returnValue;
  if (r.status === 'suspended') out.pending = r.pendingCalls.map((c) => [c.extensionName, c.method, c.args]);
  out.events = r.events;
  out.viewCommands = r.viewCommands;
  out.stateMutations = r.stateMutations;
  out.logs = r.logs.length;
  return out;
};
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));
// undefined has no JSON form: carry it as a marker the parent turns back.
const replacer = (k, v) => (v === undefined ? '\u0000undefined' : typeof v === 'bigint' ? v + 'n' : v);
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
(async () => {
  const runtimes = new Map();
  const runtimeFor = (config) => {
    const key = JSON.stringify(config);
    if (!runtimes.has(key)) runtimes.set(key, new NexusRuntime(testConfig(config)));
    return runtimes.get(key);
  };
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i];
    const rt = runtimeFor(c.config || { workers: 1, maxInstances: 2 });
    let result;
    try {
      if (c.script) {
        const fn = new Function('rt', 'ctx', 'strip', 'sleep', 'NexusRuntime', 'return (async () => {' + c.script + '})()');
        result = await fn(rt, ctx, strip, sleep, NexusRuntime);
      } else {
        result = strip(await rt.executeHandler(c.code, ctx(c.over), c.timeout || 5000));
      }
    } catch (err) {
      result = { threw: String(err && err.message), code: err && err.code };
    }
    const next = await rt.executeHandler('return $args.n + 1', ctx({ args: { n: 41 } }));
    process.stdout.write(JSON.stringify({ i, result, next: next.status === 'success' && next.returnValue === 42 }, replacer) + '\n');
  }
  for (const rt of runtimes.values()) await rt.shutdown();
  process.stdout.write('DONE\n');
})().catch((err) => {
  process.stderr.write(String(err && err.stack) + '\n');
  process.exit(3);
});
`;

// Undefined comes back through the parent: a reviver that returned it for
// an element would delete the element instead.
const MARK = '\u0000undefined';
function reviver(k, v) {
  if (v && typeof v === 'object') for (const key of Object.keys(v)) if (v[key] === MARK) v[key] = undefined;
  return k === '' && v === MARK ? undefined : v;
}

// Runs `cases` in one child; resolves with one { result, next } per case,
// or { crashed } for the case the child was running when it died and for
// every case after it.
function runInChild(cases, { args = [], env = {}, timeoutMs = 120000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...args, '-e', CHILD], {
      env: { ...process.env, ...env, NX_PKG: PKG, NX_PATHS: path.join(__dirname, '..', 'paths.js') },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const lines = out.split('\n').filter((l) => l.startsWith('{'));
      const results = cases.map(() => ({ crashed: `the child never ran it (exit ${code}, signal ${signal}): ${err.slice(-2000)}` }));
      for (const line of lines) {
        const { i, result, next } = JSON.parse(line, reviver);
        results[i] = { result, next };
      }
      const done = lines.length;
      if (!out.includes('DONE\n') && done < cases.length) {
        results[done] = { crashed: `the child died here (exit ${code}, signal ${signal}): ${err.slice(-2000)}` };
      }
      resolve(results);
    });
    child.stdin.end(JSON.stringify(cases));
  });
}

// Declares one node:test test per case; each asserts the case's outcome
// (`expect(result)`), that the child survived it and that the runtime then
// served a plain handler.
function suite(test, assert, cases, options) {
  let results;
  test.before(async () => {
    results = await runInChild(cases.map(({ expect, ...c }) => c), options);
  });
  cases.forEach((c, i) => {
    test(c.name, () => {
      const r = results[i];
      assert.equal(r.crashed, undefined, r.crashed);
      c.expect(r.result);
      assert.equal(r.next, true, 'the next execution on the same runtime succeeds');
    });
  });
}

module.exports = { runInChild, suite };

'use strict';
// The smoke suite scripts/test-runtimes.js runs under each runtime (Node,
// Bun, Deno): execute, suspend -> resume, timeout, memory limit, shutdown.
// Prints one line per check and a last line `RESULT {json}`; exits 1 if a
// check failed. Usage: RUNTIME smoke.cjs PACKAGE_DIR
const path = require('path');

const dir = path.resolve(process.argv[2] || path.join(__dirname, '..', '..'));
const results = {};

function context(extra) {
  return {
    panelId: 'smoke', handlerName: 'h', stateSnapshot: { n: 1 }, args: {}, scope: {},
    capabilities: ['state:read:*', 'state:write:*', 'events:emit:*', 'ext:kv'], extensionRegistry: { kv: ['get'] },
    ...extra,
  };
}

async function check(name, fn) {
  try {
    const detail = await fn();
    results[name] = 'ok';
    console.log(`ok    ${name}: ${detail}`);
  } catch (err) {
    results[name] = 'FAIL';
    console.log(`FAIL  ${name}: ${err && err.stack ? err.stack : err}`);
  }
}

function expect(cond, what) {
  if (!cond) throw new Error(what);
}

(async () => {
  let mod;
  await check('load', () => {
    mod = require(dir);
    const runtime = process.versions.bun ? `bun ${process.versions.bun}` : process.versions.deno ? `deno ${process.versions.deno}` : `node ${process.version}`;
    // Which addon file this process mapped (a prebuild or a local build).
    const maps = require('fs').readFileSync('/proc/self/maps', 'utf8').split('\n').map((l) => l.split(/\s+/)[5]);
    const addon = [...new Set(maps.filter((f) => f && f.endsWith('.node') && f.startsWith(dir + path.sep) &&
      !path.relative(dir, f).split(path.sep).includes('node_modules')))];
    expect(addon.length === 1, `expected one addon of ${dir} mapped, got ${JSON.stringify(addon)}`);
    return `${runtime}, node-api ${process.versions.napi}, ${path.relative(dir, addon[0])}`;
  });
  if (!mod) return finish();
  const rt = new mod.NexusRuntime({ workers: 2, memoryLimitBytes: 16 << 20 });

  await check('execute', async () => {
    const r = await rt.executeHandler("$state.n++; $emit('bumped', $state.n); return { n: $state.n }", context());
    expect(r.status === 'success' && r.returnValue.n === 2, JSON.stringify(r));
    expect(r.stateMutations.length === 1 && r.stateMutations[0].value === 2, JSON.stringify(r.stateMutations));
    expect(r.events.length === 1 && r.events[0].name === 'bumped', JSON.stringify(r.events));
    return `returned ${JSON.stringify(r.returnValue)}, ${r.stateMutations.length} mutation, ${r.events.length} event`;
  });

  await check('suspend-resume', async () => {
    const r = await rt.executeHandler("$state.n = 5; const v = await $ext.kv.get('k'); return v * $state.n", context());
    expect(r.status === 'suspended' && r.suspension.method === 'get', JSON.stringify(r));
    expect(JSON.stringify(r.suspension.args) === '["k"]', JSON.stringify(r.suspension));
    const done = await rt.resumeHandler(r.suspension.suspensionId, { success: true, value: 8 });
    expect(done.status === 'success' && done.returnValue === 40, JSON.stringify(done));
    return `suspended on kv.get("k"), resumed with 8, returned ${done.returnValue}`;
  });

  await check('timeout', async () => {
    const r = await rt.executeHandler('while (true) {}', context(), 100);
    expect(r.status === 'error' && r.error.code === 'TIMEOUT', JSON.stringify(r));
    const after = await rt.executeHandler('return 1', context());
    expect(after.returnValue === 1, `runtime unusable after the timeout: ${JSON.stringify(after)}`);
    return `${r.error.code}, and the next execution succeeds`;
  });

  await check('memory-limit', async () => {
    const r = await rt.executeHandler('const a = []; for (;;) a.push(new Array(100000).fill(1.5));', context(), 5000);
    expect(r.status === 'error' && r.error.code === 'MEMORY_LIMIT', JSON.stringify(r));
    const after = await rt.executeHandler('return 2', context());
    expect(after.returnValue === 2, `runtime unusable after the memory limit: ${JSON.stringify(after)}`);
    return `${r.error.code}, and the next execution succeeds`;
  });

  await check('shutdown', async () => {
    const pending = await rt.executeHandler("return await $ext.kv.get('x')", context());
    expect(pending.status === 'suspended', JSON.stringify(pending));
    await rt.shutdown();
    let code = null;
    try {
      await rt.executeHandler('return 1', context());
    } catch (err) {
      code = err.code || err.message;
    }
    expect(code !== null, 'executeHandler after shutdown did not reject');
    let resumeCode = null;
    try {
      await rt.resumeHandler(pending.suspension.suspensionId, { success: true, value: 1 });
    } catch (err) {
      resumeCode = err.code;
    }
    expect(resumeCode === 'SUSPENSION_NOT_FOUND', `resume after shutdown: ${resumeCode}`);
    return `shut down with a suspended execution; executeHandler then rejects (${code}), resume rejects (${resumeCode})`;
  });
  finish();
})();

function finish() {
  console.log(`RESULT ${JSON.stringify(results)}`);
  // No process.exit on success: the process must end by itself once the
  // runtime is shut down (worker threads joined, nothing keeps it alive).
  if (Object.values(results).includes('FAIL') || !results.shutdown) process.exitCode = 1;
}

'use strict';
// npm run demo:portable: a handler suspended in one process and resumed in
// another, through a real Redis. It starts redis-server on a free loopback
// port, runs examples/weather.js in child process A until it awaits
// $ext.weather.forecast (A's executor exports the suspension to Redis while
// the call is out) and A exits; child process B finishes the extension call
// itself, claims the suspension, imports it and drives it to its end. Then
// the same handler runs in this process without a store, and the two
// outcomes are compared. Prints the timeline.
//   node scripts/demo-portable.js            the whole demo
//   node scripts/demo-portable.js --role a|b  one side (the demo runs these)
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');

const ROOT = path.join(__dirname, '..');
const CODE = fs.readFileSync(path.join(ROOT, 'examples/weather.js'), 'utf8');
const EXTENSIONS = require(path.join(ROOT, 'examples/weather-extensions.js'));
const STATE = { city: 'Oslo', loading: false, forecast: null };

const t0 = Number(process.env.DEMO_T0 || Date.now());
const say = (who, what) => console.log(`[${((Date.now() - t0) / 1000).toFixed(3)} s] ${who}: ${what}`);

function nexus() {
  return require(ROOT);
}

// What both sides see of an execution, in the order the host gets it.
function recorder(who, seen) {
  const note = (kind) => (list) => {
    seen.push([kind, list]);
    if (who) say(who, `${kind} ${JSON.stringify(list)}`);
  };
  return { onMutations: note('mutations'), onEvents: note('events'), onViewCommands: note('view'), onLogs: note('logs') };
}

function runtimeAndStore() {
  const { NexusRuntime, RedisSuspensionStore } = nexus();
  const runtime = new NexusRuntime({ workers: 1, suspensionKeys: [process.env.DEMO_KEY] });
  const store = new RedisSuspensionStore({ url: process.env.DEMO_REDIS });
  return { runtime, store };
}

// Process A: runs the handler; the store it parks to is wrapped so that the
// size of what went into Redis is shown. The extension call never comes
// back here: A reports it (what B must do) and exits, as a process being
// replaced by a deploy would.
async function sideA() {
  const { WasmSandboxExecutor } = nexus();
  const { runtime, store } = runtimeAndStore();
  const state = { ...STATE };
  let parked = null;
  const shown = {
    put: async (id, blob, ttlMs) => {
      const t = process.hrtime.bigint();
      await store.put(id, blob, ttlMs);
      parked = { id, bytes: blob.length };
      say('A', `suspension ${id} exported: ${blob.length} bytes put in Redis in ${(Number(process.hrtime.bigint() - t) / 1000).toFixed(0)} µs (ttl ${ttlMs} ms)`);
    },
    claim: (id) => store.claim(id),
    delete: (id) => store.delete(id),
  };
  const executor = new WasmSandboxExecutor(runtime, { store: shown });
  const extensions = {
    weather: {
      forecast(city) {
        say('A', `handler awaits weather.forecast(${JSON.stringify(city)}); A hands it over and exits`);
        console.log(`HANDOFF ${JSON.stringify({ ...parked, city, state })}`);
        setImmediate(() => process.exit(0));
        return new Promise(() => {});
      },
    },
  };
  say('A', 'executes examples/weather.js');
  await executor.execute({ code: CODE, panelId: 'weather', handlerName: 'refresh', state, args: { city: 'Oslo' }, extensions, ...recorder('A', []) });
}

// Process B: performs the call A left, then resumes the execution from the
// store with its answer.
async function sideB() {
  const { WasmSandboxExecutor } = nexus();
  const { runtime, store } = runtimeAndStore();
  const handoff = JSON.parse(process.env.DEMO_HANDOFF);
  const executor = new WasmSandboxExecutor(runtime, { store });
  say('B', `performs weather.forecast(${JSON.stringify(handoff.city)})`);
  let answer;
  try {
    answer = { success: true, value: await EXTENSIONS.weather.forecast(handoff.city) };
  } catch (err) {
    answer = { success: false, error: err.message };
  }
  const seen = [];
  const state = handoff.state;
  say('B', `claims ${handoff.id} from Redis, imports it and resumes it with ${JSON.stringify(answer)}`);
  const value = await executor.resume(handoff.id, answer, { state, extensions: EXTENSIONS, ...recorder('B', seen) });
  say('B', `returned ${JSON.stringify(value)}`);
  say('B', `host state now ${JSON.stringify(state)}`);
  console.log(`OUTCOME ${JSON.stringify({ value, state, seen })}`);
  await store.close();
  await runtime.shutdown();
}

function child(role, env) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [__filename, '--role', role], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout.on('data', (d) => {
      out += d;
      process.stdout.write(String(d).split('\n').filter((l) => l && !/^(HANDOFF|OUTCOME) /.test(l)).map((l) => `${l}\n`).join(''));
    });
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`process ${role} exited with ${code}`))));
  });
}

const lineOf = (out, tag) => JSON.parse(out.split('\n').find((l) => l.startsWith(`${tag} `)).slice(tag.length + 1));

async function main() {
  const { startRedis } = require(path.join(ROOT, 'test/redis.js'));
  const redis = await startRedis();
  const env = { DEMO_T0: String(t0), DEMO_KEY: crypto.randomBytes(32).toString('hex'), DEMO_REDIS: redis.url };
  try {
    say('demo', `redis-server ${redis.url} (a temporary one); process A and process B share only it and the key`);
    const handoff = lineOf(await child('a', env), 'HANDOFF');
    say('demo', `process A is gone; its execution waits in Redis (${handoff.bytes} bytes)`);
    const b = lineOf(await child('b', { ...env, DEMO_HANDOFF: JSON.stringify(handoff) }), 'OUTCOME');

    // The same execution in one process, without a store: the reference.
    const { NexusRuntime, WasmSandboxExecutor } = nexus();
    const runtime = new NexusRuntime({ workers: 1 });
    const state = { ...STATE };
    const seen = [];
    const value = await new WasmSandboxExecutor(runtime).execute({
      code: CODE, panelId: 'weather', handlerName: 'refresh', state, args: { city: 'Oslo' }, extensions: EXTENSIONS, ...recorder(null, seen),
    });
    await runtime.shutdown();
    // B saw the effects after the suspension: the reference's last ones.
    const same = JSON.stringify(value) === JSON.stringify(b.value) && JSON.stringify(state) === JSON.stringify(b.state) &&
      JSON.stringify(seen.slice(seen.length - b.seen.length)) === JSON.stringify(b.seen);
    say('demo', `in one process the handler returns ${JSON.stringify(value)} with state ${JSON.stringify(state)}`);
    say('demo', same ? 'A→B gives the same result, state and effects after the suspension as one process' : 'A→B DIFFERS from one process');
    if (!same) process.exitCode = 1;
  } finally {
    await redis.stop();
  }
}

const role = process.argv[2] === '--role' ? process.argv[3] : null;
(role === 'a' ? sideA() : role === 'b' ? sideB() : main()).catch((err) => {
  console.error(err);
  process.exit(1);
});

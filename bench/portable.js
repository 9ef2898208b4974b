'use strict';
// Portable-suspension figures: what exportSuspension and importSuspension
// cost next to the handler round trip they carry, and how big a blob is.
// Run it as
//
//     npm run bench:portable      (node bench/portable.js)
//
// Figures are printed, never checked (no timed assertions).
//
//   1. PORTABLE_N rounds (default 500, after 20 untimed), each timing, in
//      this order, one sample of:
//        execute   executeHandler of the trivial suspending handler on
//                  runtime A, to its suspended result (the reference)
//        export    A.exportSuspension of it (native save, deflate, HMAC)
//        import    B.importSuspension of the blob into a second runtime
//                  (HMAC check, inflate, native restore)
//        resume    B.resumeHandler of it to the end (after the import)
//      and, outside the carried chain, an in-process resume on A, so that a
//      resume after an import can be compared with an ordinary one.
//      p50 and p99 in µs; export and import also as a ratio of execute's p50.
//   2. Blob sizes (bytes, and the native payload before deflate): the
//      trivial handler's suspension, and the weather demo's
//      (examples/weather.js with the context `npm run demo` gives it).
const zlib = require('zlib');
const { NexusRuntime } = require('..');
const { peekSuspension } = require('../lib/suspension');
const { summarize } = require('./common');

const N = Number(process.env.PORTABLE_N || 500);
const WARMUP = 20;
const KEYS = [Buffer.from('bench-portable-key-0123456789abcdef')];

const TRIVIAL = "$state.count++; $emit('changed', $state.count); const v = await $ext.http.get($state.count); return v + 1";
const context = (count) => ({
  panelId: 'bench',
  handlerName: 'fetch',
  stateSnapshot: { count },
  args: {},
  scope: {},
  capabilities: ['state:read:count', 'state:write:count', 'events:emit:changed', 'ext:http'],
  extensionRegistry: { http: ['get'] },
});

// The weather demo's handler and context, as the tests carry it.
const { WEATHER, WEATHER_CONTEXT } = require('../test/fixtures/portable-child');

const us = (t0) => Number(process.hrtime.bigint() - t0) / 1000;

function expect(r, status, what) {
  if (r.status !== status) throw new Error(`${what}: expected ${status}, got ${JSON.stringify(r)}`);
  return r;
}

// The blob and its native payload's size before deflate.
function sizes(blob) {
  const f = peekSuspension(blob);
  const raw = zlib.inflateRawSync(Buffer.from(blob).subarray(f.payloadAt, f.payloadAt + f.payloadLen));
  return { blob: blob.length, payload: raw.length };
}

async function main() {
  const A = new NexusRuntime({ workers: 1, suspensionKeys: KEYS });
  const B = new NexusRuntime({ workers: 1, suspensionKeys: KEYS });
  const samples = { execute: [], export: [], import: [], 'resume (imported)': [], 'resume (in-process)': [] };
  const blobBytes = [];
  let last;
  try {
    for (let i = 0; i < WARMUP + N; i++) {
      const keep = i >= WARMUP;
      let t = process.hrtime.bigint();
      const s = expect(await A.executeHandler(TRIVIAL, context(i)), 'suspended', 'execute');
      const tExec = us(t);
      const id = s.suspension.suspensionId;
      t = process.hrtime.bigint();
      const blob = await A.exportSuspension(id);
      const tExport = us(t);
      t = process.hrtime.bigint();
      const got = await B.importSuspension(blob);
      const tImport = us(t);
      if (got !== id) throw new Error(`import gave ${got}, exported ${id}`);
      t = process.hrtime.bigint();
      const done = expect(await B.resumeHandler(id, { success: true, value: i }), 'success', 'resume');
      const tResume = us(t);
      if (done.returnValue !== i + 1) throw new Error(`bad result ${JSON.stringify(done)}`);
      // The same handler resumed where it suspended, for comparison.
      const local = expect(await A.executeHandler(TRIVIAL, context(i)), 'suspended', 'execute');
      t = process.hrtime.bigint();
      expect(await A.resumeHandler(local.suspension.suspensionId, { success: true, value: i }), 'success', 'resume');
      const tLocal = us(t);
      if (keep) {
        samples.execute.push(tExec);
        samples.export.push(tExport);
        samples.import.push(tImport);
        samples['resume (imported)'].push(tResume);
        samples['resume (in-process)'].push(tLocal);
        blobBytes.push(blob.length);
      }
      last = blob;
    }

    const weather = expect(await A.executeHandler(WEATHER, WEATHER_CONTEXT), 'suspended', 'weather');
    const weatherBlob = await A.exportSuspension(weather.suspension.suspensionId);
    const forecast = await require('../examples/weather-extensions').weather.forecast('Oslo');
    await B.importSuspension(weatherBlob);
    expect(await B.resumeHandler(weather.suspension.suspensionId, { success: true, value: forecast }), 'success', 'weather resume');

    const ref = summarize(samples.execute).p50;
    console.log(`Portable suspensions: ${N} rounds (after ${WARMUP} untimed), Node ${process.version}, ${require('os').cpus()[0].model}`);
    console.log('');
    console.log('| step | p50 µs | p99 µs | p50 / execute p50 |');
    console.log('|---|---:|---:|---:|');
    for (const [name, list] of Object.entries(samples)) {
      const s = summarize(list);
      console.log(`| ${name} | ${s.p50.toFixed(1)} | ${s.p99.toFixed(1)} | ${(s.p50 / ref).toFixed(2)} |`);
    }
    const t = sizes(last);
    const w = sizes(weatherBlob);
    const sorted = [...blobBytes].sort((a, b) => a - b);
    console.log('');
    console.log('| blob | bytes | native payload before deflate |');
    console.log('|---|---:|---:|');
    console.log(`| trivial handler (min–max over the rounds: ${sorted[0]}–${sorted.at(-1)}) | ${t.blob} | ${t.payload} |`);
    console.log(`| weather demo (examples/weather.js) | ${w.blob} | ${w.payload} |`);
  } finally {
    await A.shutdown();
    await B.shutdown();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

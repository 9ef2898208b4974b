'use strict';
// Ours: NexusRuntime, as adapters. The async executeHandler is the reference
// row of every table. The other entry points the runtime may grow are
// detected (typeof ... === 'function') and then measured beside it, each as
// its own adapter, without touching the rest of the suite:
//   - executeHandlerSync(code, context, timeoutMs) -> WasmResult (never
//     suspends, so it skips the $ext workloads)
//   - executeBatch([{ code, context, timeoutMs }, ...]) -> Promise<WasmResult[]>
//   - createState(obj) -> a state object built by the runtime, passed as the
//     context's stateSnapshot
// Their exact signatures are assumptions written down here; when one lands
// with a different shape, only its adapter below changes.
const path = require('path');
const { NexusRuntime } = require('../../..');
const { hostCall } = require('../harness');

const CAPABILITIES = ['state:read:*', 'state:write:*', 'events:emit:*', 'ext:*'];

function context(call, stateSnapshot = call.state) {
  return {
    panelId: 'bench',
    handlerName: 'handler',
    stateSnapshot,
    args: call.args,
    scope: {},
    capabilities: CAPABILITIES,
    extensionRegistry: call.registry,
  };
}

function failure(r) {
  const e = new Error(`${r.error?.code}: ${r.error?.message}`);
  e.result = r;
  return e;
}

// Follows an execution through its suspensions to the end: every pending
// call is answered by the same host implementation the peers call, all of
// one suspension in one resumeAll round (what a Promise.all needs). The
// segments' effects are merged into one result shaped like the peers':
// one mutation per key, last value wins, in order of first change.
async function drive(rt, first, call, resumeAll = (answers) => rt.resumeAll(answers)) {
  const mutations = new Map();
  const events = [];
  let r = first;
  for (;;) {
    if (r.status === 'error') throw failure(r);
    for (const m of r.stateMutations) mutations.set(m.key, m); // a Map keeps the first-insertion position
    events.push(...r.events);
    if (r.status !== 'suspended') break;
    const answers = await Promise.all(r.pendingCalls.map(async (p) => {
      try {
        return { suspensionId: p.suspensionId, result: { success: true, value: await hostCall(call, p.extensionName, p.method, p.args) } };
      } catch (err) {
        return { suspensionId: p.suspensionId, result: { success: false, error: String(err?.message ?? err) } };
      }
    }));
    r = await resumeAll(answers);
  }
  return { returnValue: r.returnValue, stateMutations: [...mutations.values()], events };
}

const version = () => require(path.join(__dirname, '../../../package.json')).version;

// Latency workloads run on the runtime's defaults (workers = CPU count), like
// a user's; the throughput workloads set `workers`.
const runtimeConfig = (workers) => (workers ? { workers, minInstances: Math.min(2, workers * 2) } : { minInstances: 2 });

// What ours does in each kind of workload; the other ours adapters share
// these and override what differs.
const NOTES = {
  ext: 'suspends at the await; the host runs the pending call(s) and answers them in one resumeAll round (one answer, or three)',
  compute: 'QuickJS-NG interpreter, its wasm translated to C by wasm2c and compiled natively',
  transform: 'records MessagePack-encoded on the JS thread, decoded into the sandbox',
  bigState: 'plain state object: checked and MessagePack-encoded whole on every call, its keys walked in the addon; $state.items is a lazy Proxy in the sandbox, items[1234] decoded alone, the array indexed by one pass over its bytes, only the item read compared at the end',
  bigStateNoop: 'plain state object: checked and MessagePack-encoded whole on every call, never read in the addon or the sandbox (no $state read)',
  throughput: (w) => `a runtime with workers: ${w.workers} (maxInstances ${2 * w.workers}, the rest queue)`,
};
const SUMMARY = 'NexusRuntime on its defaults (workers = CPU count) with minInstances 2: each call on a worker thread, in a pristine copy of an initialised QuickJS-NG sandbox (wasm2c, native code); the context MessagePack-encoded on the JS thread; $state read key by key through host calls; timeout and memory limit per sandbox';

const asyncSubject = {
  id: 'ours',
  label: 'ours: executeHandler',
  reference: true,
  summary: `executeHandler (async). ${SUMMARY}`,
  notes: NOTES,
  async create({ workers } = {}) {
    const rt = new NexusRuntime(runtimeConfig(workers));
    return {
      async run(call) {
        return drive(rt, await rt.executeHandler(call.code, context(call), call.timeoutMs), call);
      },
      close: () => rt.shutdown(),
    };
  },
  cold: {
    label: 'ours: new NexusRuntime() + executeHandler',
    note: 'new NexusRuntime() on its defaults (starts CPU-count worker threads, builds the sandbox snapshot), the first executeHandler to its result; shutdown() untimed',
    async run(call) {
      const rt = new NexusRuntime();
      const result = await drive(rt, await rt.executeHandler(call.code, context(call), call.timeoutMs), call);
      return { result, cleanup: () => rt.shutdown() };
    },
  },
};

const syncSubject = {
  id: 'ours-sync',
  label: 'ours: executeHandlerSync',
  // A synchronous call blocks the JS thread, so concurrent callers cannot
  // overlap: it belongs to the 1-worker throughput table only.
  maxWorkers: 1,
  // It cannot suspend: an $ext call ends the execution with its documented
  // EXECUTION_ERROR, so the extension workloads are not run through it.
  skips: { ext: 'executeHandlerSync cannot suspend: a handler that calls $ext needs executeHandler' },
  summary: `executeHandlerSync (blocks the calling thread). ${SUMMARY}`,
  notes: { ...NOTES, throughput: 'synchronous calls from the JS thread: the 64 callers take turns' },
  async create({ workers } = {}) {
    const rt = new NexusRuntime(runtimeConfig(workers));
    return {
      async run(call) {
        return drive(rt, rt.executeHandlerSync(call.code, context(call), call.timeoutMs), call);
      },
      close: () => rt.shutdown(),
    };
  },
};

// Concurrent callers are coalesced into one executeBatch per turn of the
// event loop (setImmediate), which is what a server with a batch API would
// do; a lone sequential caller gets batches of one.
const batchSubject = {
  id: 'ours-batch',
  label: 'ours: executeBatch',
  summary: `executeBatch of the calls queued in one event-loop turn (batches of one for a sequential caller). ${SUMMARY}`,
  notes: { ...NOTES, throughput: (w) => `workers: ${w.workers}; the 64 callers' calls coalesced into batches of up to 64` },
  async create({ workers } = {}) {
    const rt = new NexusRuntime(runtimeConfig(workers));
    let queue = [];
    const flush = () => {
      const batch = queue;
      queue = [];
      rt.executeBatch(batch.map((q) => q.item)).then(
        (results) => batch.forEach((q, k) => q.resolve(results[k])),
        (err) => batch.forEach((q) => q.reject(err)),
      );
    };
    const submit = (item) => new Promise((resolve, reject) => {
      if (queue.length === 0) setImmediate(flush);
      queue.push({ item, resolve, reject });
    });
    return {
      async run(call) {
        return drive(rt, await submit({ code: call.code, context: context(call), timeoutMs: call.timeoutMs }), call);
      },
      close: () => rt.shutdown(),
    };
  },
};

// The state is built by the runtime for each call, except in the workloads
// whose state is the same object every call (the large state), where it is
// built once and reused: that reuse is what such an API is for.
const createStateSubject = {
  id: 'ours-createState',
  label: 'ours: createState + executeHandler',
  summary: `executeHandler with stateSnapshot = runtime.createState(state): built per call (timed), or once when a workload's state is the same object every call (the large state). ${SUMMARY}`,
  notes: {
    ...NOTES,
    bigState: 'runtime.createState(state) built once, reused by every call: its per-key encodings and item offsets go in as they are; the sandbox decodes and validates items[1234] alone and compares only it at the end',
    bigStateNoop: 'runtime.createState(state) built once, reused by every call: nothing of the state is read',
  },
  async create({ workers } = {}) {
    const rt = new NexusRuntime(runtimeConfig(workers));
    const built = new WeakMap();
    const stateFor = (call, constant) => {
      if (!constant) return rt.createState(call.state);
      if (!built.has(call.state)) built.set(call.state, rt.createState(call.state));
      return built.get(call.state);
    };
    return {
      async run(call, workload) {
        const ctx = context(call, stateFor(call, workload?.constantState));
        return drive(rt, await rt.executeHandler(call.code, ctx, call.timeoutMs), call);
      },
      close: () => rt.shutdown(),
    };
  },
};

// The methods live on NexusRuntime's prototype, so this is
// `typeof rt.executeHandlerSync === 'function'` without starting a runtime.
function load() {
  const proto = NexusRuntime.prototype;
  const subjects = [asyncSubject];
  if (typeof proto.executeHandlerSync === 'function') subjects.push(syncSubject);
  if (typeof proto.executeBatch === 'function') subjects.push(batchSubject);
  if (typeof proto.createState === 'function') subjects.push(createStateSubject);
  return subjects;
}

module.exports = { system: 'nexus-wasm-bridge', version, load, drive, context };

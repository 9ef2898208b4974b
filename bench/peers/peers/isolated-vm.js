'use strict';
// isolated-vm: V8 isolates with their own heap, run on isolated-vm's own
// threads. Two ways a user runs handlers in it:
//   - fresh: one long-lived isolate, a new context per call (no state can
//     leak between calls through globals; the isolate's heap is shared);
//   - reused: one long-lived context, the handler's function kept as a
//     Reference and applied per call (cheapest, but globals, patched
//     prototypes and pending promises survive from call to call).
// State and args go in as an ExternalCopy (structured clone), the result
// comes out with `copy: true`. An extension call is a Reference to a host
// async function, applied from inside the isolate with
// `result: { promise: true }`: the isolate gets a promise and stays free, so
// a Promise.all of three calls overlaps (applySyncPromise would block the
// isolate on each call in turn). Every run has `timeout` set and the isolate
// a 32 MiB memoryLimit (ours' default memoryLimitBytes).
// Throughput: `workers` isolates, calls dealt round robin; each isolate runs
// on its own thread, so two isolates use both cores. An isolate's
// memoryLimit is shared by all its contexts, and past it isolated-vm
// disposes the whole isolate (every call in flight fails): 64 concurrent
// fresh contexts in a 32 MB isolate did exactly that. So each isolate admits
// at most IN_FLIGHT calls and queues the rest, as ours admits
// maxInstances = 2 x workers executions and queues the rest.
const path = require('path');
const { harnessSource, harnessInput, hostCall } = require('../harness');

const MEMORY_LIMIT_MB = 32;
const IN_FLIGHT = 2;
const TRANSFER = { arguments: { copy: true }, result: { promise: true, copy: true } };

// The script evaluates to (input, hostRef) => harness(input, ext), ext being
// the in-isolate side of the extension call.
const factory = (code) =>
  `(function () { const run = ${harnessSource(code, { json: false })};
  return (input, ref) => run(input, (n, m, a) => ref.apply(undefined, [n, m, a], ${JSON.stringify(TRANSFER)})); })()`;

function load() {
  const ivm = require(path.join(__dirname, '../node_modules/isolated-vm'));

  const apply = (fnRef, call) => {
    const hostRef = new ivm.Reference((name, method, args) => hostCall(call, name, method, args));
    const input = new ivm.ExternalCopy(harnessInput(call)).copyInto({ release: true });
    return fnRef
      .apply(undefined, [input, hostRef], { timeout: call.timeoutMs, result: { promise: true, copy: true } })
      .finally(() => hostRef.release());
  };

  // One isolate with its compiled scripts (per isolate, reused by every
  // context) and, for the reused mode, its one context and function refs.
  // The maps hold promises, so that concurrent first calls share one.
  const memo = (map, key, make) => {
    if (!map.has(key)) map.set(key, make());
    return map.get(key);
  };
  class Worker {
    constructor() {
      this.isolate = new ivm.Isolate({ memoryLimit: MEMORY_LIMIT_MB });
      this.scripts = new Map();
      this.fns = new Map();
      this.context = null;
      this.free = IN_FLIGHT;
      this.waiting = [];
    }

    // Runs fn once one of the isolate's IN_FLIGHT slots is free.
    async admit(fn) {
      if (this.free > 0) this.free--;
      else await new Promise((resolve) => this.waiting.push(resolve));
      try {
        return await fn();
      } finally {
        const next = this.waiting.shift();
        if (next) next();
        else this.free++;
      }
    }

    script(code) {
      return memo(this.scripts, code, () => this.isolate.compileScript(factory(code), { filename: 'file:///handler.js' }));
    }

    async fresh(call) {
      const script = await this.script(call.code);
      const context = await this.isolate.createContext();
      try {
        const fn = await script.run(context, { reference: true });
        try {
          return await apply(fn, call);
        } finally {
          fn.release();
        }
      } finally {
        context.release();
      }
    }

    async reused(call) {
      this.context ??= this.isolate.createContext();
      const context = await this.context;
      const fn = await memo(this.fns, call.code, async () => (await this.script(call.code)).run(context, { reference: true }));
      return apply(fn, call);
    }

    close() {
      if (!this.isolate.isDisposed) this.isolate.dispose();
    }
  }

  const subject = (mode, label, summary) => ({
    id: `isolated-vm-${mode}`,
    label,
    summary,
    notes: {
      ext: '$ext is a Reference to a host async function, apply()\'d with result.promise (the isolate is not blocked while it waits, so calls overlap)',
      compute: 'V8, optimised, in the isolate',
      transform: 'records in as an ExternalCopy',
      bigState: '10 000 items in as an ExternalCopy',
      bigStateNoop: '10 000 items in as an ExternalCopy',
      throughput: (w) => `${w.workers} isolate${w.workers > 1 ? 's, each on its own thread, calls dealt round robin' : ''}; ${IN_FLIGHT} calls in flight per isolate, the rest queued`,
    },
    async create({ workers = 1 } = {}) {
      const pool = Array.from({ length: workers }, () => new Worker());
      let next = 0;
      return {
        run(call) {
          const worker = pool[next];
          next = (next + 1) % pool.length;
          return worker.admit(() => worker[mode](call));
        },
        close() {
          for (const w of pool) w.close();
        },
      };
    },
  });

  const fresh = subject(
    'fresh',
    'isolated-vm, fresh context per call',
    `one isolate (memoryLimit ${MEMORY_LIMIT_MB} MB), a new context per call, the script compiled once per isolate; state and args in as an ExternalCopy, result out with copy: true; timeout set; runs on isolated-vm's threads`,
  );
  fresh.cold = {
    label: 'isolated-vm: new Isolate + context',
    note: 'new ivm.Isolate, createContext, compileScript and the first run; dispose() untimed',
    async run(call) {
      const worker = new Worker();
      return { result: await worker.fresh(call), cleanup: () => worker.close() };
    },
  };
  const reused = subject(
    'reused',
    'isolated-vm, reused context',
    'one isolate, one context for every call (globals persist between calls), the handler\'s function kept as a Reference; ExternalCopy in, copy: true out; timeout set',
  );
  return [fresh, reused];
}

const version = () => require(path.join(__dirname, '../node_modules/isolated-vm/package.json')).version;

module.exports = { system: 'isolated-vm', version, load };

'use strict';
// new Function: no isolation at all, the floor. It still does the same
// observable work as everyone else (state and args structured-cloned in, the
// harness's $state/$emit/$args/$ext, result cloned out), so the gap between
// it and a sandbox is the price of the sandbox, not of the semantics.
const { harnessSource, harnessInput, hostCall } = require('../harness');

function load() {
  // One compiled function per distinct handler, as a user would cache it.
  const compiled = new Map();
  const compile = (code) => {
    let fn = compiled.get(code);
    if (!fn) {
      fn = new Function(`return ${harnessSource(code, { json: false })}`)();
      compiled.set(code, fn);
    }
    return fn;
  };
  const execute = async (call, fn) => {
    const ext = (name, method, args) => hostCall(call, name, method, structuredClone(args)).then(structuredClone);
    return structuredClone(await fn(structuredClone(harnessInput(call)), ext));
  };
  return [{
    id: 'function',
    label: 'new Function (no isolation)',
    maxWorkers: 1, // runs on the JS thread
    summary: 'the harness compiled once per handler with `new Function`, run on the JS thread; state and args structuredClone\'d in, result structuredClone\'d out; no isolation, no timeout',
    notes: {
      ext: '$ext is the host async function itself (args and value structuredClone\'d)',
      compute: 'V8, optimised',
      transform: 'records structuredClone\'d in',
      bigState: '10 000 items structuredClone\'d in',
      bigStateNoop: '10 000 items structuredClone\'d in',
      throughput: 'JS thread; the 64 callers take turns',
    },
    async create() {
      return { run: (call) => execute(call, compile(call.code)), close() {} };
    },
    cold: {
      label: 'new Function (no isolation)',
      note: 'nothing to start: compiles the harness with new Function (no cache) and runs it',
      async run(call) {
        return { result: await execute(call, new Function(`return ${harnessSource(call.code, { json: false })}`)()) };
      },
    },
  }];
}

module.exports = { system: 'new Function', version: () => `Node ${process.version}`, load };

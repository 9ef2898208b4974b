'use strict';
// node:vm with a fresh context per call: the isolation Node ships with (not
// a security boundary, per Node's own docs, but what many hosts use).
// The state goes in as a JSON string parsed inside the context and the
// result comes out as a JSON string made inside it, so the host never walks
// objects of the context's realm (getters, toJSON, foreign prototypes).
// `timeout` is set on runInContext; it bounds only the synchronous part of
// the handler (up to its first await): continuations run on the process's
// microtask queue, which vm's timeout does not cover. (microtaskMode:
// 'afterEvaluate' would cover them but then a promise settled by the host
// never resumes the handler, so extension calls could not work.)
const vm = require('vm');
const { harnessSource, harnessInput, hostCall } = require('../harness');

const wrap = (code) => `(${harnessSource(code, { json: true })})(globalThis.__in, globalThis.__call)`;

function load() {
  // vm.Script is compiled once per handler and is not tied to a context.
  const scripts = new Map();
  const script = (code) => {
    let s = scripts.get(code);
    if (!s) {
      s = new vm.Script(wrap(code), { filename: 'handler.js' });
      scripts.set(code, s);
    }
    return s;
  };
  const execute = async (call, s) => {
    // The extension call crosses as JSON strings both ways (the harness
    // stringifies the arguments inside the context and parses the value).
    const ext = (name, method, argsJson) => hostCall(call, name, method, JSON.parse(argsJson)).then((v) => JSON.stringify(v) ?? 'null');
    const context = vm.createContext({ __in: JSON.stringify(harnessInput(call)), __call: ext });
    return JSON.parse(await s.runInContext(context, { timeout: call.timeoutMs }));
  };
  return [{
    id: 'node-vm',
    label: 'node:vm, fresh context per call',
    maxWorkers: 1, // single-threaded: runs on the JS thread
    summary: 'vm.createContext per call, vm.Script compiled once per handler, runInContext with `timeout` (a watchdog thread per call); state and args in as a JSON string parsed inside, result out as JSON made inside; on the JS thread',
    notes: {
      ext: '$ext is a host async function taking and returning JSON strings',
      compute: 'V8, but every call in a new context (cold inline caches)',
      transform: 'records in as JSON',
      bigState: '10 000 items in as JSON',
      bigStateNoop: '10 000 items in as JSON',
      throughput: 'JS thread only (node:vm is single-threaded); the 64 callers take turns',
    },
    async create() {
      return { run: (call) => execute(call, script(call.code)), close() {} };
    },
    cold: {
      label: 'node:vm: createContext + new vm.Script',
      note: 'vm.createContext, a new vm.Script (no script cache of ours) and its first run',
      async run(call) {
        return { result: await execute(call, new vm.Script(wrap(call.code))) };
      },
    },
  }];
}

module.exports = { system: 'node:vm', version: () => `Node ${process.version}`, load };

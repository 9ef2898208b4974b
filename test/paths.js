'use strict';
// Which engine path the semantic suites run on: NEXUS_TEST_PATH=async (the
// default), sync or batch. In sync and batch mode the runtimes the tests
// make are a subclass whose executeHandler / executeCompiledHandler go
// through executeHandlerSync (wrapped in a promise) or executeBatch([one]),
// so the same assertions check every path (scripts/test-paths.js runs them).
//
// executeHandlerSync cannot suspend: a handler that calls $ext ends with
// its documented EXECUTION_ERROR, and then runs again on the async path so
// the suite still sees what executeHandler gives (a sandbox starts pristine,
// so the second run sees nothing of the first). Arguments that are not what
// executeHandler accepts also go to the async path, so the suites keep
// checking its TypeErrors. Every routing is counted; with
// NEXUS_TEST_PATH_LOG set, each process appends its counts there at exit.

const fs = require('fs');
const { isProxy } = require('util').types;

// NEXUS_TEST_STATE=nexus: every plain stateSnapshot a test passes goes in as
// runtime.createState(stateSnapshot) instead, so the same suites check the
// NexusState path (lib/state.js, its key index and item offsets). Contexts
// that are Proxies or carry accessors, and states createState refuses, go
// in as they are: their tests are about executeHandler's own checks.
const STATE = process.env.NEXUS_TEST_STATE || 'plain';
if (!['plain', 'nexus'].includes(STATE)) throw new Error(`NEXUS_TEST_STATE must be plain or nexus, got ${STATE}`);

const PATH = process.env.NEXUS_TEST_PATH || 'async';
if (!['async', 'sync', 'batch'].includes(PATH)) throw new Error(`NEXUS_TEST_PATH must be async, sync or batch, got ${PATH}`);

const SYNC_REFUSAL = /^executeHandlerSync cannot run a handler that calls an extension \(\$ext\..+\..+\): use executeHandler$/;

const counts = { path: STATE === 'nexus' ? 'state' : PATH, routed: 0, suspendFallback: 0, argumentFallback: 0, nexusState: 0 };
if ((PATH !== 'async' || STATE === 'nexus') && process.env.NEXUS_TEST_PATH_LOG) {
  process.on('exit', () => {
    if (counts.routed + counts.suspendFallback + counts.argumentFallback + counts.nexusState === 0) return;
    const file = process.argv[1] && process.argv[1] !== '-e' ? process.argv[1] : 'child process';
    fs.appendFileSync(process.env.NEXUS_TEST_PATH_LOG, JSON.stringify({ file, ...counts }) + '\n');
  });
}

function refusedSync(r) {
  return r.status === 'error' && r.error.code === 'EXECUTION_ERROR' && SYNC_REFUSAL.test(r.error.message);
}

// A context executeHandler could accept (anything else goes to it, for its
// own TypeError and message).
function plainContext(context) {
  return context !== null && typeof context === 'object' && !Array.isArray(context);
}

function dataOnly(o) {
  if (o === null || typeof o !== 'object' || isProxy(o) || Object.getPrototypeOf(o) !== Object.prototype) return false;
  return Object.values(Object.getOwnPropertyDescriptors(o)).every((d) => 'value' in d);
}

function withNexusState(Base) {
  return class NexusStateRuntime extends Base {
    #state(context) {
      if (!dataOnly(context) || !dataOnly(context.stateSnapshot)) return context;
      try {
        const state = this.createState(context.stateSnapshot);
        counts.nexusState++;
        return { ...context, stateSnapshot: state };
      } catch {
        counts.argumentFallback++;
        return context;
      }
    }

    executeHandler(code, context, ...rest) {
      return super.executeHandler(code, this.#state(context), ...rest);
    }

    executeCompiledHandler(bytecode, context, ...rest) {
      return super.executeCompiledHandler(bytecode, this.#state(context), ...rest);
    }
  };
}

function routed(NexusRuntime) {
  return STATE === 'nexus' ? withNexusState(onPath(NexusRuntime)) : onPath(NexusRuntime);
}

function onPath(NexusRuntime) {
  if (PATH === 'async') return NexusRuntime;
  if (PATH === 'sync') {
    return class SyncPathRuntime extends NexusRuntime {
      #run(handler, context, timeoutMs, fallback) {
        let r;
        try {
          r = this.executeHandlerSync(handler, context, timeoutMs);
        } catch (err) {
          return Promise.reject(err);
        }
        if (refusedSync(r)) {
          counts.suspendFallback++;
          return fallback();
        }
        counts.routed++;
        return Promise.resolve(r);
      }

      executeHandler(code, context, timeoutMs) {
        if (typeof code !== 'string' || !plainContext(context)) {
          counts.argumentFallback++;
          return super.executeHandler(code, context, timeoutMs);
        }
        return this.#run(code, context, timeoutMs, () => super.executeHandler(code, context, timeoutMs));
      }

      executeCompiledHandler(bytecode, context, timeoutMs) {
        if (!(bytecode instanceof Uint8Array) || !plainContext(context)) {
          counts.argumentFallback++;
          return super.executeCompiledHandler(bytecode, context, timeoutMs);
        }
        return this.#run({ bytecode }, context, timeoutMs, () => super.executeCompiledHandler(bytecode, context, timeoutMs));
      }
    };
  }
  return class BatchPathRuntime extends NexusRuntime {
    executeHandler(code, context, timeoutMs) {
      if (typeof code !== 'string' || !plainContext(context)) {
        counts.argumentFallback++;
        return super.executeHandler(code, context, timeoutMs);
      }
      counts.routed++;
      return this.executeBatch([{ code, context, timeoutMs }]).then((r) => r[0]);
    }

    executeCompiledHandler(bytecode, context, timeoutMs) {
      if (!(bytecode instanceof Uint8Array) || !plainContext(context)) {
        counts.argumentFallback++;
        return super.executeCompiledHandler(bytecode, context, timeoutMs);
      }
      counts.routed++;
      return this.executeBatch([{ bytecode, context, timeoutMs }]).then((r) => r[0]);
    }
  };
}

module.exports = { PATH, STATE, SYNC_REFUSAL, counts, routed };

'use strict';
// Shared fixtures for the tests: one runtime per file, contexts built from
// a few fields, and a helper that runs a handler and returns its result.
// The package (and its native addon) loads only when a runtime is made, so
// tests of the JS-only layers can use these fixtures without it.
//
// NEXUS_TEST_MEMORY_CHECK=guard|bounds sets config.memoryCheck of every
// runtime the tests create (unless a test sets its own), so that
// `npm test` runs the whole suite in either mode. Tests make their runtimes
// through runtime() or testConfig(), child processes included (they inherit
// the variable); test/contract.test.js checks that none bypasses them.

const ALL_CAPS = ['state:read:*', 'state:write:*', 'events:emit:*', 'view:update:*', 'ext:*'];

function context(over = {}) {
  return {
    panelId: 'panel-1',
    handlerName: 'test',
    stateSnapshot: {},
    args: {},
    scope: {},
    capabilities: ALL_CAPS,
    extensionRegistry: {},
    ...over,
  };
}

// A promise with its resolve and reject, for tests that settle it later.
function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const MEMORY_CHECK = process.env.NEXUS_TEST_MEMORY_CHECK || undefined;
if (MEMORY_CHECK !== undefined && !['guard', 'bounds'].includes(MEMORY_CHECK)) {
  throw new Error(`NEXUS_TEST_MEMORY_CHECK must be guard or bounds, got ${JSON.stringify(MEMORY_CHECK)}`);
}

// `config` with the memoryCheck the run asks for, unless it names one.
function testConfig(config = {}) {
  return MEMORY_CHECK === undefined || 'memoryCheck' in config ? config : { ...config, memoryCheck: MEMORY_CHECK };
}

// A runtime on the engine path NEXUS_TEST_PATH selects (test/paths.js), in
// the memoryCheck mode NEXUS_TEST_MEMORY_CHECK selects.
function runtime(config = { workers: 2 }) {
  const NexusRuntime = require('./paths').routed(require('..').NexusRuntime);
  return new NexusRuntime(testConfig(config));
}

// On the sync path executions run in the runtime's sync sandboxes, which
// are outside the pool: pool figures (liveInstances) and worker settings
// (stackSizeBytes) do not describe them.
const { PATH } = require('./paths');
const POOLED = PATH !== 'sync';
const SYNC_SKIP_WORKER_STACK = PATH === 'sync' && 'executeHandlerSync runs on the calling thread: stackSizeBytes sets worker stacks only';

module.exports = { ALL_CAPS, MEMORY_CHECK, POOLED, PATH, SYNC_SKIP_WORKER_STACK, context, deferred, runtime, testConfig };

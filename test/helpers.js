'use strict';
// Shared fixtures for the tests: one runtime per file, contexts built from
// a few fields, and a helper that runs a handler and returns its result.
// The package (and its native addon) loads only when a runtime is made, so
// tests of the JS-only layers can use these fixtures without it.

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

// A runtime on the engine path NEXUS_TEST_PATH selects (test/paths.js).
function runtime(config = { workers: 2 }) {
  const NexusRuntime = require('./paths').routed(require('..').NexusRuntime);
  return new NexusRuntime(config);
}

// On the sync path executions run in the runtime's sync sandboxes, which
// are outside the pool: pool figures (liveInstances) and worker settings
// (stackSizeBytes) do not describe them.
const { PATH } = require('./paths');
const POOLED = PATH !== 'sync';
const SYNC_SKIP_WORKER_STACK = PATH === 'sync' && 'executeHandlerSync runs on the calling thread: stackSizeBytes sets worker stacks only';

module.exports = { ALL_CAPS, POOLED, PATH, SYNC_SKIP_WORKER_STACK, context, deferred, runtime };

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

function runtime(config = { workers: 2 }) {
  const { NexusRuntime } = require('..');
  return new NexusRuntime(config);
}

module.exports = { ALL_CAPS, context, deferred, runtime };

'use strict';
// Shared fixtures for the tests: one runtime per file, contexts built from
// a few fields, and a helper that runs a handler and returns its result.
const { NexusRuntime } = require('..');

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

function runtime(config = { workers: 2 }) {
  return new NexusRuntime(config);
}

module.exports = { ALL_CAPS, context, runtime };

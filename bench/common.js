'use strict';
// Fixtures shared by the benchmarks (bench/snapshot.js, bench/peers/): the
// handlers, their contexts and the summary of a sample.

const TRIVIAL = "$state.count++; $emit('changed', $state.count); return $state.count";
const EXT = 'const v = await $ext.http.get($state.count); $state.count = v + 1; return v';

function context(count) {
  return {
    panelId: 'bench',
    handlerName: 'increment',
    stateSnapshot: { count },
    args: {},
    scope: {},
    capabilities: ['state:read:count', 'state:write:count', 'events:emit:changed'],
  };
}

const EXT_CAPS = ['state:read:count', 'state:write:count', 'ext:http'];

function extContext(count) {
  return {
    panelId: 'bench',
    handlerName: 'fetch',
    stateSnapshot: { count },
    args: {},
    scope: {},
    capabilities: EXT_CAPS,
    extensionRegistry: { http: ['get'] },
  };
}

function summarize(samples) {
  const s = Float64Array.from(samples).sort();
  const pick = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { mean, p50: pick(0.5), p99: pick(0.99) };
}

module.exports = { TRIVIAL, EXT, EXT_CAPS, context, extContext, summarize };

'use strict';
// The handler semantics every peer runs inside its sandbox, as JavaScript
// source: the peers have no $state/$emit/$args/$ext of their own, so each one
// evaluates this wrapper around the handler body. Keeping it in one place is
// what makes the comparison fair: every peer does the same observable work as
// NexusRuntime.executeHandler, namely
//   - the state and args arrive as a copy (never the host's objects),
//   - $state writes and deletes are recorded, one mutation per key, last
//     value wins, in order of first change (the README's rule),
//   - $emit copies its payload when called,
//   - $ext.NAME.METHOD(...) goes to the host through the peer's own async
//     host-function mechanism (`call` below), its arguments copied,
//   - the return value, mutations and events leave as a copy.
// Not emulated (ours does it, so these favour the peers): capability checks,
// recording in-place changes of objects read from $state
// ($state.items.push(x)), $view/$log/$scope, host-call counting.

// With `json: true` the input arrives as a JSON string, parsed inside the
// sandbox, and the result leaves as a JSON string made inside the sandbox:
// that is how node:vm and quickjs-emscripten users copy data safely (the
// host never walks an object the handler could have booby-trapped with
// getters or a toJSON). `call` then also speaks JSON. With `json: false` the
// peer's own copying does it (isolated-vm's structured clone).
//
// The source is an expression evaluating to
//   async function (input, call) -> { returnValue, stateMutations, events }
// where call(extensionName, method, args) returns a promise of the value.
function harnessSource(code, { json }) {
  const decode = json ? 'JSON.parse' : '';
  const encode = json ? 'JSON.stringify' : '';
  const callExt = json
    ? '(name, method, args) => __call(name, method, JSON.stringify(args)).then(JSON.parse)'
    : '(name, method, args) => __call(name, method, args)';
  const copyPayload = 'payload === undefined ? undefined : JSON.parse(JSON.stringify(payload))';
  return `(function () {
  return async function __nexusRun(__in, __call) {
    const __input = ${decode}(__in);
    const __target = __input.state;
    const __changes = new Map();
    const $state = new Proxy(__target, {
      set(t, k, v) { t[k] = v; __changes.set(k, true); return true; },
      deleteProperty(t, k) { delete t[k]; __changes.set(k, false); return true; },
    });
    const __events = [];
    const $emit = (name, payload) => { __events.push({ name: String(name), payload: ${copyPayload} }); };
    const $args = __input.args;
    const __callExt = ${callExt};
    const $ext = {};
    for (const name of Object.keys(__input.extensions)) {
      $ext[name] = {};
      for (const method of __input.extensions[name]) $ext[name][method] = (...a) => __callExt(name, method, a);
    }
    const returnValue = await (async () => {
${code}
    })();
    const stateMutations = [];
    for (const [key, isSet] of __changes) {
      stateMutations.push(isSet ? { key, operation: 'set', value: __target[key] } : { key, operation: 'delete' });
    }
    return ${encode}({ returnValue, stateMutations, events: __events });
  };
})()`;
}

// The input every peer copies in: state, args and the extension registry
// (names and methods only; the implementations stay on the host).
function harnessInput(call) {
  return { state: call.state, args: call.args, extensions: call.registry };
}

// The host side of an extension call: the same async implementation for
// every peer and for ours.
function hostCall(call, name, method, args) {
  const target = call.extensions[name];
  if (!target || typeof target[method] !== 'function') return Promise.reject(new Error(`no extension ${name}.${method}`));
  return target[method](...args);
}

module.exports = { harnessSource, harnessInput, hostCall };

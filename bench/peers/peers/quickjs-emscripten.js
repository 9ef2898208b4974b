'use strict';
// quickjs-emscripten: QuickJS compiled to wasm by emscripten, run by V8's
// wasm compiler on the JS thread and driven handle by handle from JS. The
// release-sync builds (VARIANTS) with promise-based host functions: an
// extension call returns a QuickJS promise (newPromise) that the host settles
// when its async function does, then runs the pending jobs. That keeps
// Promise.all concurrent; the asyncified build would suspend the whole wasm
// module on each call, one call at a time.
//   - fresh: one long-lived QuickJSRuntime (32 MiB memory limit, interrupt
//     deadline per call = the timeout), a new context per call;
//   - reused: one context, the handler's function evaluated once and kept.
// quickjs-emscripten exposes no way to run precompiled bytecode, so a fresh
// context compiles the handler every call. State/args go in as a JSON string
// parsed inside, the result comes out as a JSON string made inside.
// Single-threaded (the wasm instance lives on the JS thread): 1 worker only.
const path = require('path');
const { harnessSource, harnessInput, hostCall } = require('../harness');

const MEMORY_LIMIT = 32 << 20;
const MODULES = path.join(__dirname, '../node_modules');
const PKG = path.join(MODULES, 'quickjs-emscripten');

// Two engine builds: the package's default (release-sync, Bellard's
// QuickJS), what `quickjs-emscripten` users get; and its QuickJS-NG build,
// the engine ours embeds, so that fib and the transform compare the same
// interpreter run by V8's wasm compiler against ours' wasm2c + C compiler.
const VARIANTS = [
  { id: 'quickjs-emscripten', name: 'quickjs-emscripten', pkg: '@jitl/quickjs-wasmfile-release-sync', engine: 'QuickJS' },
  { id: 'quickjs-emscripten-ng', name: 'quickjs-emscripten (NG)', pkg: '@jitl/quickjs-ng-wasmfile-release-sync', engine: 'QuickJS-NG' },
];

function load() {
  const { newQuickJSWASMModuleFromVariant, shouldInterruptAfterDeadline } = require(PKG);

  // Runs the pending promise jobs of a runtime; a job's exception reaches
  // the handler's promise, so the error handle here is only released.
  const pump = (runtime) => {
    const r = runtime.executePendingJobs();
    if (r.error) r.error.dispose();
  };

  // The host function behind `__call`: a QuickJS promise settled by the
  // host's async function, arguments and value as JSON strings.
  const extFunction = (ctx, call) => ctx.newFunction('__call', (nameH, methodH, argsH) => {
    const deferred = ctx.newPromise();
    hostCall(call, ctx.getString(nameH), ctx.getString(methodH), JSON.parse(ctx.getString(argsH))).then(
      (value) => ctx.alive && ctx.newString(JSON.stringify(value) ?? 'null').consume((h) => deferred.resolve(h)),
      (err) => ctx.alive && ctx.newError(String(err?.message ?? err)).consume((h) => deferred.reject(h)),
    );
    deferred.settled.then(() => ctx.alive && pump(ctx.runtime));
    return deferred.handle;
  });

  // The timeout: a deadline checked by QuickJS's interrupt handler. Armed
  // before anything of the call runs (compiling included): a deadline left
  // over from an earlier call would interrupt this one.
  const arm = (runtime, call) => runtime.setInterruptHandler(shouldInterruptAfterDeadline(Date.now() + call.timeoutMs));

  // Calls fnH(inputJson, __call) and awaits the handler's promise.
  async function invoke(ctx, fnH, call) {
    const promiseH = ctx.newString(JSON.stringify(harnessInput(call))).consume((inputH) =>
      extFunction(ctx, call).consume((callH) => ctx.unwrapResult(ctx.callFunction(fnH, ctx.undefined, inputH, callH))));
    const settled = ctx.resolvePromise(promiseH);
    promiseH.dispose();
    pump(ctx.runtime);
    return JSON.parse(ctx.unwrapResult(await settled).consume((h) => ctx.getString(h)));
  }

  const newRuntime = (module) => {
    const runtime = module.newRuntime();
    runtime.setMemoryLimit(MEMORY_LIMIT);
    return runtime;
  };

  async function fresh(runtime, call) {
    arm(runtime, call);
    const ctx = runtime.newContext();
    try {
      const fnH = ctx.unwrapResult(ctx.evalCode(harnessSource(call.code, { json: true }), 'handler.js'));
      return await fnH.consume((h) => invoke(ctx, h, call));
    } finally {
      ctx.dispose();
    }
  }

  const notes = (engine) => ({
    ext: '$ext is a host function returning a QuickJS promise (newPromise) that the host settles, then executePendingJobs',
    compute: `${engine} interpreter, wasm compiled by V8`,
    transform: 'records in as a JSON string, parsed inside',
    bigState: '10 000 items in as a JSON string, parsed inside',
    bigStateNoop: '10 000 items in as a JSON string, parsed inside',
    throughput: 'JS thread only; the 64 callers take turns',
  });

  // The fresh and reused subjects of one variant (one engine build).
  const subjects = ({ id, name, variant, engine }) => {
    const newModule = () => newQuickJSWASMModuleFromVariant(variant);
    let modulePromise = null;
    const sharedModule = () => (modulePromise ??= newModule());
    return [
      {
        id: `${id}-fresh`,
        label: `${name}, fresh context per call`,
        maxWorkers: 1,
        summary: `${engine}: one QuickJSRuntime (32 MiB memory limit, deadline interrupt handler), a new context per call, the handler compiled every call (no API runs precompiled bytecode); JSON in, JSON out; on the JS thread`,
        notes: notes(engine),
        async create() {
          const runtime = newRuntime(await sharedModule());
          return { run: (call) => fresh(runtime, call), close: () => runtime.dispose() };
        },
        cold: {
          label: `${name}: new wasm module + runtime + context`,
          note: 'a new QuickJSWASMModule (a new wasm instance), newRuntime, newContext, eval and the first run',
          async run(call) {
            const runtime = newRuntime(await newModule());
            return { result: await fresh(runtime, call), cleanup: () => runtime.dispose() };
          },
        },
      },
      {
        id: `${id}-reused`,
        label: `${name}, reused context`,
        maxWorkers: 1,
        summary: `${engine}: one context for every call (globals persist between calls), the handler's function evaluated once and its handle kept; JSON in, JSON out`,
        notes: notes(engine),
        async create() {
          const runtime = newRuntime(await sharedModule());
          const ctx = runtime.newContext();
          const fns = new Map();
          const fnFor = (code) => {
            let h = fns.get(code);
            if (!h) {
              h = ctx.unwrapResult(ctx.evalCode(harnessSource(code, { json: true }), 'handler.js'));
              fns.set(code, h);
            }
            return h;
          };
          return {
            run(call) {
              arm(runtime, call);
              return invoke(ctx, fnFor(call.code), call);
            },
            close() {
              for (const h of fns.values()) h.dispose();
              ctx.dispose();
              runtime.dispose();
            },
          };
        },
      },
    ];
  };

  return VARIANTS.flatMap((v) => subjects({ ...v, variant: require(path.join(MODULES, v.pkg)).default }));
}

const version = () => {
  const v = require(path.join(PKG, 'package.json')).version;
  const variants = VARIANTS.map((x) => `${x.pkg} ${require(path.join(MODULES, x.pkg, 'package.json')).version} (${x.engine})`);
  return `${v}; variants ${variants.join(', ')}`;
};

module.exports = { system: 'quickjs-emscripten', version, load };

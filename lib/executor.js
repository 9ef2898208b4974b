'use strict';
// WasmSandboxExecutor: the host side of suspend/resume. It drives one handler
// execution to its end: applies each result's effects to the host's state,
// performs the extension calls the handler awaits, and resumes it with them.
//
// It receives a NexusRuntime instance and never requires lib/index.js (which
// requires this file), so there is no require cycle.

const { isNativeError } = require('util').types;
const { checkCrossable } = require('./values');
const { languageOf } = require('./typescript');
const { NexusState } = require('./state');
const { peekSuspension } = require('./suspension');

const isNexusState = (s) => s instanceof NexusState;
const { AbortError, TimeoutError, InternalError, errorFromResult } = require('./errors');

const CALLBACKS = ['onMutations', 'onEvents', 'onViewCommands', 'onLogs'];
const OPTIONS = new Set([
  'code',
  'language',
  'bytecode',
  'panelId',
  'handlerName',
  'state',
  'args',
  'scope',
  'capabilities',
  'extensions',
  'timeoutMs',
  'runTimeoutMs',
  'signal',
  ...CALLBACKS,
]);
// The codes a handler's own failure carries (src/contract.js).
const HANDLER_ERROR_CODES = new Set(require('../src/contract').errorCodes);
// setTimeout fires at once for longer delays, so they cannot be honoured.
const MAX_DEADLINE_MS = 2 ** 31 - 1;

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

function validateOptions(options) {
  if (!isObject(options)) throw new TypeError('execute() options must be an object');
  for (const key of Object.keys(options)) {
    if (!OPTIONS.has(key)) throw new TypeError(`execute() option ${key} is not a known option`);
  }
  const o = { ...options };
  const hasCode = o.code !== undefined;
  const hasBytecode = o.bytecode !== undefined;
  if (hasCode === hasBytecode) throw new TypeError('execute() needs exactly one of options.code and options.bytecode');
  if (hasCode && typeof o.code !== 'string') throw new TypeError('options.code must be a string');
  if (hasBytecode && !(o.bytecode instanceof Uint8Array)) throw new TypeError('options.bytecode must be a Uint8Array');
  if (o.language !== undefined && hasBytecode) {
    throw new TypeError('options.language goes with options.code (bytecode was compiled from its language already)');
  }
  o.language = languageOf({ language: o.language });
  for (const key of ['panelId', 'handlerName']) {
    if (typeof o[key] !== 'string') throw new TypeError(`options.${key} must be a string`);
  }
  for (const key of ['args', 'scope']) {
    if (o[key] === undefined) o[key] = {};
    else if (!isObject(o[key])) throw new TypeError(`options.${key} must be an object`);
  }
  if (o.capabilities !== undefined) {
    if (!Array.isArray(o.capabilities) || o.capabilities.some((c) => typeof c !== 'string')) {
      throw new TypeError('options.capabilities must be an array of strings');
    }
  } else if (hasBytecode) {
    // Inference reads the source, and bytecode has none.
    throw new TypeError('options.capabilities is required with options.bytecode (there is no source to infer them from)');
  }
  return checkDriveOptions(o);
}

// What resume() takes: how to drive the execution on from here (the handler
// and its context travel inside the suspension).
const RESUME_OPTIONS = new Set(['state', 'extensions', 'timeoutMs', 'runTimeoutMs', 'signal', ...CALLBACKS]);

function validateResumeOptions(options) {
  if (!isObject(options)) throw new TypeError('resume() options must be an object');
  for (const key of Object.keys(options)) {
    if (!RESUME_OPTIONS.has(key)) throw new TypeError(`resume() option ${key} is not a known option`);
  }
  return checkDriveOptions({ ...options });
}

// The options execute() and resume() share.
function checkDriveOptions(o) {
  if (!isObject(o.state)) throw new TypeError('options.state must be an object (the host state the handler mutates)');
  if (o.extensions === undefined) o.extensions = {};
  else if (!isObject(o.extensions)) {
    throw new TypeError('options.extensions must be an object mapping names to extension objects');
  }
  for (const [name, ext] of Object.entries(o.extensions)) {
    if (ext === null || typeof ext !== 'object') throw new TypeError(`options.extensions.${name} must be an object`);
  }
  if (o.timeoutMs !== undefined) {
    if (typeof o.timeoutMs !== 'number') throw new TypeError('options.timeoutMs must be a number');
    if (!(o.timeoutMs > 0 && o.timeoutMs <= MAX_DEADLINE_MS)) {
      throw new RangeError(`options.timeoutMs must be in (0, ${MAX_DEADLINE_MS}], got ${o.timeoutMs}`);
    }
  }
  // Range checks are the runtime's (it owns the per-segment timeout).
  if (o.runTimeoutMs !== undefined && typeof o.runTimeoutMs !== 'number') {
    throw new TypeError('options.runTimeoutMs must be a number');
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new TypeError('options.signal must be an AbortSignal');
  for (const key of CALLBACKS) {
    if (o[key] !== undefined && typeof o[key] !== 'function') throw new TypeError(`options.${key} must be a function`);
  }
  return o;
}

// Method names a handler may call on one extension object: its own
// enumerable function-valued properties, then the methods on its prototype
// chain below Object.prototype (class instances). Descriptors are read, not
// values, so building the registry runs no getters; a name already seen
// closer to the object shadows the same name further up, as lookup does.
function methodNames(ext) {
  const names = [];
  const seen = new Set(Object.getOwnPropertyNames(ext));
  for (const key of Object.keys(ext)) {
    if (typeof Object.getOwnPropertyDescriptor(ext, key)?.value === 'function') names.push(key);
  }
  for (let p = Object.getPrototypeOf(ext); p !== null && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const key of Object.getOwnPropertyNames(p)) {
      if (seen.has(key)) continue;
      seen.add(key);
      if (key !== 'constructor' && typeof Object.getOwnPropertyDescriptor(p, key).value === 'function') names.push(key);
    }
  }
  return names;
}

function buildRegistry(extensions) {
  const registry = {};
  for (const [name, ext] of Object.entries(extensions)) registry[name] = methodNames(ext);
  return registry;
}

// The permissive fallback: without explicit capabilities the handler gets
// every token its source visibly uses (inferCapabilities), nothing else.
function inferCapabilities(runtime, code, language) {
  try {
    return runtime.inferCapabilities(code, { language });
  } catch (err) {
    if (!HANDLER_ERROR_CODES.has(err?.code)) throw err;
    // Not err.stack: that is the host's stack, not frames of the handler.
    const { code: errCode, message, location, snippet } = err;
    throw errorFromResult({ code: errCode, message, location, snippet }, { cause: err });
  }
}

function message(err) {
  if (err instanceof Error || isNativeError(err)) return String(err.message); // the latter: other realms
  try {
    return String(err);
  } catch {
    return Object.prototype.toString.call(err); // e.g. Object.create(null)
  }
}

// Runs one pending call. Never rejects: every way of failing becomes the
// `{ success: false, error }` the handler sees as a rejected promise.
function callExtension(extensions, registry, call) {
  const { extensionName, method, args } = call;
  // Only names from the registry the handler was given: a handler must not
  // reach `constructor`, `__proto__` or Object.prototype methods.
  const allowed = Object.hasOwn(registry, extensionName) && registry[extensionName].includes(method);
  const target = allowed ? extensions[extensionName] : undefined;
  const fn = target?.[method];
  if (typeof fn !== 'function') {
    return Promise.resolve({ success: false, error: `extension method ${extensionName}.${method} is not available` });
  }
  try {
    return Promise.resolve(Reflect.apply(fn, target, Array.isArray(args) ? args : [])).then(
      (value) => ({ success: true, value }),
      (err) => ({ success: false, error: message(err) }),
    );
  } catch (err) {
    return Promise.resolve({ success: false, error: message(err) });
  }
}

// pendingCalls is the list; a runtime that only fills `suspension` has one.
function pendingCallsOf(result) {
  if (Array.isArray(result.pendingCalls) && result.pendingCalls.length > 0) return result.pendingCalls;
  return result.suspension ? [result.suspension] : [];
}

function applyMutation(state, { key, operation, value }) {
  if (operation === 'delete') {
    delete state[key];
  } else if (key === '__proto__') {
    // A plain assignment would replace the state object's prototype.
    Object.defineProperty(state, key, { value, writable: true, enumerable: true, configurable: true });
  } else {
    state[key] = value;
  }
}

// Effects first, then callbacks, in this order; each callback only when its
// list is non-empty. A callback may return a promise: it is awaited, so the
// host has finished with these effects before any extension call starts.
async function deliver(result, o) {
  const lists = [result.stateMutations, result.events, result.viewCommands, result.logs].map((l) => (Array.isArray(l) ? l : []));
  // A NexusState (runtime.createState) re-encodes just these keys.
  if (isNexusState(o.state)) o.state.apply(lists[0]);
  else for (const m of lists[0]) applyMutation(o.state, m);
  for (let i = 0; i < CALLBACKS.length; i++) {
    const cb = o[CALLBACKS[i]];
    if (cb && lists[i].length > 0) await cb(lists[i]);
  }
}

// The round's values are refused as a whole, so find out which answer to
// turn into a rejection: the only success if there is one, else those the
// host-side check (the same rule the runtime applies) refuses, else all.
function refuseUnencodable(round, pending, err) {
  const ok = round.map((a, i) => i).filter((i) => round[i].result.success);
  if (ok.length === 0) return null;
  let blamed = new Map();
  if (ok.length === 1) blamed.set(ok[0], err.message);
  else {
    for (const i of ok) {
      try {
        checkCrossable(round[i].result.value, `${pending[i].extensionName}.${pending[i].method}() result`);
      } catch (e) {
        blamed.set(i, e.message);
      }
    }
    if (blamed.size === 0) blamed = new Map(ok.map((i) => [i, err.message]));
  }
  return round.map((a, i) =>
    blamed.has(i) ? { suspensionId: a.suspensionId, result: { success: false, error: `TypeError: ${blamed.get(i)}` } } : a,
  );
}

// Turns an AbortSignal and the overall deadline into one `error` field, set
// by whichever comes first, and wakes whoever waits in until().
class Stop {
  constructor(signal, timeoutMs) {
    this.error = null;
    this.wake = null;
    this.fire = (error) => {
      this.error ??= error;
      this.wake?.();
    };
    this.signal = signal;
    this.onAbort = () => this.fire(new AbortError(undefined, { cause: signal.reason }));
    signal?.addEventListener('abort', this.onAbort, { once: true });
    const late = () => new TimeoutError(`execution did not finish within its overall deadline of ${timeoutMs} ms`);
    this.timer = timeoutMs === undefined ? null : setTimeout(() => this.fire(late()), timeoutMs);
  }

  // Resolves with `promise`'s value, or with undefined as soon as a stop
  // comes. One waiter at a time (the executor waits on one thing at a time),
  // so nothing accumulates over many rounds as with Promise.race.
  until(promise) {
    if (this.error) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      this.wake = resolve;
      promise.then(resolve, reject);
    }).finally(() => {
      this.wake = null;
    });
  }

  dispose() {
    this.signal?.removeEventListener('abort', this.onAbort);
    if (this.timer) clearTimeout(this.timer);
  }
}

function claimedElsewhere(suspensionId) {
  const err = new Error(
    `suspension ${suspensionId} is not in the store: another process claimed it (and continues it), ` +
      'or it expired',
  );
  err.code = 'SUSPENSION_NOT_FOUND';
  return err;
}

class WasmSandboxExecutor {
  #runtime;
  #store;

  // options.store: a SuspensionStore (lib/stores.js). Then every suspension
  // is exported to it while its extension calls run, so that any process's
  // executor can resume it (resume()); this one claims it back when its own
  // calls finish, unless another process did first.
  constructor(runtime, options = {}) {
    // What every execution needs; executeCompiledHandler and inferCapabilities
    // are looked up only when bytecode or inference is asked for.
    for (const m of ['executeHandler', 'resumeAll', 'cancelSuspended']) {
      if (typeof runtime?.[m] !== 'function') {
        throw new TypeError(`WasmSandboxExecutor needs a NexusRuntime (no ${m}() on the argument)`);
      }
    }
    if (!isObject(options)) throw new TypeError('WasmSandboxExecutor options must be an object');
    for (const key of Object.keys(options)) {
      if (key !== 'store') throw new TypeError(`WasmSandboxExecutor option ${key} is not a known option`);
    }
    if (options.store !== undefined) {
      for (const m of ['put', 'claim', 'delete']) {
        if (typeof options.store?.[m] !== 'function') {
          throw new TypeError(`options.store must be a SuspensionStore (no ${m}() on it)`);
        }
      }
      for (const m of ['exportSuspension', 'importSuspension']) {
        if (typeof runtime[m] !== 'function') throw new TypeError(`options.store needs a runtime with ${m}()`);
      }
    }
    this.#runtime = runtime;
    this.#store = options.store ?? null;
  }

  get store() {
    return this.#store;
  }

  get runtime() {
    return this.#runtime;
  }

  // Resolves with the handler's return value; rejects with a NexusError
  // subclass (errors.js) for a failed handler, AbortError / TimeoutError when
  // the signal or the overall deadline ended it, or what a callback threw
  // (after cancelling the suspension, if any). Effects delivered at earlier
  // suspensions stay applied whatever the end: the host has already shown
  // them, which is the point of delivering them early.
  async execute(options) {
    const o = validateOptions(options);
    if (o.signal?.aborted) throw new AbortError(undefined, { cause: o.signal.reason });
    const extensionRegistry = buildRegistry(o.extensions);
    const capabilities = o.capabilities ?? inferCapabilities(this.#runtime, o.code, o.language);
    const context = {
      panelId: o.panelId,
      handlerName: o.handlerName,
      // The runtime encodes the context before it returns, so later changes
      // to the host state (ours included) do not reach this execution.
      stateSnapshot: o.state,
      args: o.args,
      scope: o.scope,
      capabilities,
      extensionRegistry,
    };
    const rt = this.#runtime;
    const stop = new Stop(o.signal, o.timeoutMs);
    try {
      return await this.#drive(o, extensionRegistry, stop, () =>
        o.code !== undefined
          ? rt.executeHandler(o.code, context, o.runTimeoutMs, { language: o.language })
          : rt.executeCompiledHandler(o.bytecode, context, o.runTimeoutMs),
      );
    } finally {
      stop.dispose();
    }
  }

  // Takes a suspension out of the store (in any process: the one that
  // parked it may be gone), answers call `suspensionId` with `result`
  // ({ success: true, value } or { success: false, error }), performs the
  // execution's other pending calls with options.extensions, and drives it
  // to its end as execute() does, from options.state and callbacks.
  // Rejects with code SUSPENSION_NOT_FOUND when the store does not have it.
  async resume(suspensionId, result, options = {}) {
    if (this.#store === null) throw new TypeError('resume() needs an executor made with { store }');
    if (typeof suspensionId !== 'string') throw new TypeError('suspensionId must be a string');
    if (!isObject(result) || typeof result.success !== 'boolean') {
      throw new TypeError('result must be { success: true, value } or { success: false, error }');
    }
    const o = validateResumeOptions(options);
    if (o.signal?.aborted) throw new AbortError(undefined, { cause: o.signal.reason });
    const registry = buildRegistry(o.extensions);
    const rt = this.#runtime;
    const stop = new Stop(o.signal, o.timeoutMs);
    try {
      return await this.#drive(o, registry, stop, async () => {
        const blob = await this.#store.claim(suspensionId);
        if (!blob) throw claimedElsewhere(suspensionId);
        const returnTo = { store: this.#store, id: suspensionId };
        const pending = pendingCallsOf(await rt.importSuspension(blob, { result: true, returnTo }));
        if (!pending.some((call) => call.suspensionId === suspensionId)) {
          await this.#cancel(pending);
          throw claimedElsewhere(suspensionId);
        }
        const others = pending.filter((call) => call.suspensionId !== suspensionId);
        const outcomes = await Promise.all(others.map((call) => callExtension(o.extensions, registry, call)));
        return rt.resumeAll([
          { suspensionId, result: result.success ? { success: true, value: result.value } : { success: false, error: message(result.error) } },
          ...others.map((call, i) => ({ suspensionId: call.suspensionId, result: outcomes[i] })),
        ]);
      });
    } finally {
      stop.dispose();
    }
  }

  // Into the store while the calls run. Should the store refuse it, the
  // execution is imported back and goes on here: nothing is lost.
  async #park(id) {
    const blob = await this.#runtime.exportSuspension(id);
    try {
      await this.#store.put(id, blob, Math.max(1, peekSuspension(blob).expiresAt - Date.now()));
      return true;
    } catch {
      await this.#runtime.importSuspension(blob);
      return false;
    }
  }

  async #unpark(id) {
    const blob = await this.#store.claim(id);
    if (!blob) throw claimedElsewhere(id);
    await this.#runtime.importSuspension(blob, { returnTo: { store: this.#store, id } });
  }

  async #drive(o, registry, stop, first) {
    const logs = []; // the whole execution's, for the error
    let result;
    try {
      result = await first();
    } catch (err) {
      throw stop.error ?? err;
    }
    for (;;) {
      const suspended = result?.status === 'suspended';
      const pending = suspended ? pendingCallsOf(result) : [];
      // A stop is only acted on between segments: a running segment is
      // waited for (its run-time timeout bounds it) so that it can be
      // cancelled if it parks. Nothing of a result that arrives after the
      // stop is applied.
      if (stop.error) {
        await this.#cancel(pending);
        throw stop.error;
      }
      if (Array.isArray(result?.logs)) logs.push(...result.logs);
      try {
        await deliver(result ?? {}, o);
      } catch (err) {
        await this.#cancel(pending);
        throw err;
      }
      if (result?.status === 'success') return result.returnValue;
      if (result?.status === 'error') throw errorFromResult(result.error, { logs, metrics: result.metrics ?? null });
      if (pending.length === 0) {
        // Nothing to answer, and without an id nothing can be cancelled.
        const what = suspended ? 'a suspended result without pending calls' : `a result with status ${String(result?.status)}`;
        throw new InternalError(`runtime returned ${what}`, { logs });
      }
      if (stop.error) {
        await this.#cancel(pending);
        throw stop.error;
      }
      const stored = this.#store !== null && (await this.#park(pending[0].suspensionId));
      // All calls start now, in this tick; a stop does not wait for them
      // (their outcomes are dropped).
      const calls = Promise.all(pending.map((call) => callExtension(o.extensions, registry, call)));
      const outcomes = await stop.until(calls);
      if (stop.error) {
        if (stored) await this.#store.delete(pending[0].suspensionId).catch(() => {});
        else await this.#cancel(pending);
        throw stop.error;
      }
      if (stored) await this.#unpark(pending[0].suspensionId);
      result = await this.#resume(pending, outcomes, stop);
    }
  }

  // One resumeAll round; a value the runtime cannot encode becomes a
  // TypeError rejection of that call in the handler and the round is retried
  // (the runtime leaves the suspension resumable after such a refusal).
  async #resume(pending, outcomes, stop) {
    let round = pending.map((call, i) => ({ suspensionId: call.suspensionId, result: outcomes[i] }));
    for (;;) {
      try {
        return await this.#runtime.resumeAll(round);
      } catch (err) {
        const retry = err instanceof TypeError && !stop.error ? refuseUnencodable(round, pending, err) : null;
        if (!retry) {
          // Whatever went wrong, leave nothing parked.
          await this.#cancel(pending);
          throw stop.error ?? err;
        }
        round = retry;
      }
    }
  }

  // Discards the parked execution. All ids belong to it; the first one the
  // runtime still knows is enough. Failures are ignored: an unknown id or a
  // shut-down runtime means there is nothing left to free.
  async #cancel(pending) {
    for (const call of pending) {
      try {
        if (await this.#runtime.cancelSuspended(call.suspensionId)) return;
      } catch {
        // next id
      }
    }
  }
}

module.exports = { WasmSandboxExecutor, buildRegistry };

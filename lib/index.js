'use strict';
// Package entry: argument checking, MessagePack and the stripping of
// TypeScript's types on the host side; all execution happens in the native
// module (src/).
const os = require('os');
const { Packr } = require('msgpackr');
const native = require('./native');
const { checkCrossable } = require('./values');
const { NexusState } = require('./state');
const { inferCapabilities } = require('./infer');
const { languageOf, strip, engineLocation } = require('./typescript');
const { WasmSandboxExecutor } = require('./executor');
const { sealSuspension, openSuspension, peekSuspension, InvalidSuspensionError, NATIVE_REMAINING_AT } = require('./suspension');
const errors = require('./errors');
const { MemorySuspensionStore, RedisSuspensionStore } = require('./stores');

// moreTypes: typed arrays and ArrayBuffers travel as extension 0x74, which
// the native bridge understands in both directions (docs/marshaling.md).
const packr = new Packr({ useRecords: false, moreTypes: true, mapsAsObjects: true });

const contract = require('../src/contract');

const BUILTIN_QUICKJS = require.resolve('quickjs-wasi/quickjs.wasm');

// Integer options, their ranges and defaults: src/contract.js, the table the
// native module is built from too.
const INTEGER_FIELDS = contract.config;
// String options with a fixed set of values (memoryCheck), the same way.
const CHOICE_FIELDS = contract.choices;
const BOOLEAN_FIELDS = ['enableSIMD', 'enableBulkMemory', 'enableAOT'];
const STRING_FIELDS = ['quickjsModulePath', 'cacheDir'];
const MAX_TIMEOUT_MS = contract.limits.timeoutMs;
// Items of one executeBatch() call (the native bound, shared with resumeAll).
const MAX_BATCH = contract.limits.answers;
const CAPABILITY = /^(?:state:(?:read|write):.+|events:emit:.+|view:update:.+|ext:.+)$/;

// 'a', 'b' or 'c': the wording the native layer uses too (src/args.c).
function choiceList(values) {
  const quoted = values.map((v) => `'${v}'`);
  return quoted.length < 2 ? quoted.join('') : `${quoted.slice(0, -1).join(', ')} or ${quoted[quoted.length - 1]}`;
}

function validateConfig(config) {
  if (config === undefined) config = {};
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new TypeError('config must be an object');
  }
  const out = {};
  for (const key of Object.keys(config)) {
    const value = config[key];
    if (value === undefined) continue;
    if (Object.hasOwn(INTEGER_FIELDS, key)) {
      const { min, max } = INTEGER_FIELDS[key];
      if (typeof value !== 'number') throw new TypeError(`config.${key} must be a number`);
      if (!Number.isInteger(value) || value < min || value > max) {
        throw new RangeError(`config.${key} must be an integer in [${min}, ${max}], got ${value}`);
      }
    } else if (Object.hasOwn(CHOICE_FIELDS, key)) {
      const { values } = CHOICE_FIELDS[key];
      if (typeof value !== 'string') throw new TypeError(`config.${key} must be a string`);
      if (!values.includes(value)) {
        throw new RangeError(`config.${key} must be ${choiceList(values)}, got ${JSON.stringify(value)}`);
      }
    } else if (BOOLEAN_FIELDS.includes(key)) {
      if (typeof value !== 'boolean') throw new TypeError(`config.${key} must be a boolean`);
    } else if (STRING_FIELDS.includes(key)) {
      if (typeof value !== 'string' || value === '') throw new TypeError(`config.${key} must be a non-empty string`);
    } else {
      throw new TypeError(`config.${key} is not a known option`);
    }
    out[key] = value;
  }
  const workers = out.workers ?? Math.max(1, os.availableParallelism ? os.availableParallelism() : os.cpus().length);
  const maxInstances = out.maxInstances ?? workers * 2;
  const minInstances = out.minInstances ?? 0;
  if (minInstances > maxInstances) {
    throw new RangeError(`config.minInstances (${minInstances}) must not exceed config.maxInstances (${maxInstances})`);
  }
  if (out.quickjsModulePath !== undefined && require('path').resolve(out.quickjsModulePath) !== BUILTIN_QUICKJS) {
    throw new RangeError(
      `config.quickjsModulePath: only the built-in engine (${BUILTIN_QUICKJS}) can be used; ` +
        'it is compiled into the addon ahead of time, so another .wasm cannot be loaded at run time',
    );
  }
  const tabled = {};
  for (const [key, { default: value }] of Object.entries({ ...INTEGER_FIELDS, ...CHOICE_FIELDS })) tabled[key] = out[key] ?? value;
  return Object.freeze({
    ...tabled,
    workers,
    maxInstances,
    minInstances,
    enableSIMD: out.enableSIMD ?? false,
    enableBulkMemory: out.enableBulkMemory ?? true,
    enableAOT: true,
    quickjsModulePath: BUILTIN_QUICKJS,
    cacheDir: out.cacheDir === undefined ? null : require('path').resolve(out.cacheDir),
  });
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function validateContext(context) {
  if (!isPlainObject(context)) throw new TypeError('context must be an object');
  for (const key of ['panelId', 'handlerName']) {
    if (typeof context[key] !== 'string') throw new TypeError(`context.${key} must be a string`);
  }
  for (const key of ['stateSnapshot', 'args', 'scope']) {
    // A NexusState was checked and encoded when its values came in.
    if (key === 'stateSnapshot' && context[key] instanceof NexusState) continue;
    if (!isPlainObject(context[key])) {
      throw new TypeError(`context.${key} must be an object${key === 'stateSnapshot' ? ' or a NexusState' : ''}`);
    }
    checkCrossable(context[key], `context.${key}`);
  }
  const caps = context.capabilities;
  if (!Array.isArray(caps)) throw new TypeError('context.capabilities must be an array of strings');
  caps.forEach((cap, i) => {
    if (typeof cap !== 'string') throw new TypeError(`context.capabilities[${i}] must be a string`);
    if (!CAPABILITY.test(cap)) throw new TypeError(`context.capabilities[${i}] is not a capability token: ${JSON.stringify(cap)}`);
  });
  const registry = context.extensionRegistry ?? {};
  if (!isPlainObject(registry)) throw new TypeError('context.extensionRegistry must be an object');
  for (const [name, methods] of Object.entries(registry)) {
    if (!Array.isArray(methods) || methods.some((m) => typeof m !== 'string')) {
      throw new TypeError(`context.extensionRegistry.${name} must be an array of method names`);
    }
  }
  // stateSnapshot goes last: the native side then reads it only as far as
  // the handler looks into it (src/engine.c, parse_context).
  return {
    panelId: context.panelId,
    handlerName: context.handlerName,
    args: context.args,
    capabilities: caps,
    scope: context.scope,
    extensionRegistry: registry,
    stateSnapshot: context.stateSnapshot,
  };
}

function validateTimeout(timeoutMs) {
  if (timeoutMs === undefined || timeoutMs === null) return 0;
  if (typeof timeoutMs !== 'number') throw new TypeError('timeoutMs must be a number');
  if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > MAX_TIMEOUT_MS) {
    throw new RangeError(`timeoutMs must be an integer in [0, ${MAX_TIMEOUT_MS}], got ${timeoutMs}`);
  }
  return timeoutMs;
}

// The context as the native side reads it. A NexusState's encodings go in
// as they are, after the other fields, with the index of its keys
// (lib/state.js); msgpackr writes the other fields (as a map 16).
const STATE_INDEX_KEY = Buffer.from(packr.pack('stateIndex'));
const STATE_ITEMS_KEY = Buffer.from(packr.pack('stateItems'));
const STATE_KEY = Buffer.from(packr.pack('stateSnapshot'));
function bin32(n) {
  const b = Buffer.alloc(5);
  b[0] = 0xc6;
  b.writeUInt32BE(n, 1);
  return b;
}
function encodeContext(ctx) {
  if (!(ctx.stateSnapshot instanceof NexusState)) return packr.pack(ctx);
  const { stateSnapshot, ...fields } = ctx;
  const head = Buffer.from(packr.pack(fields));
  const n = Object.keys(fields).length;
  if (head[0] !== 0xde || head.readUInt16BE(1) !== n) throw new Error('internal error: unexpected context encoding');
  head.writeUInt16BE(n + 3, 1);
  const { bytes, index, items } = stateSnapshot.encoded();
  return Buffer.concat([head, STATE_INDEX_KEY, bin32(index.length), index, STATE_ITEMS_KEY, bin32(items.length), items, STATE_KEY, bytes]);
}


const MODE_SOURCE = 0;
const MODE_BYTECODE = 1;
const MODE_COMPILE = 2;
const EMPTY_CONTEXT = Buffer.alloc(0);

// What the native side needs besides a source written in `language`:
// nothing for JavaScript; for TypeScript the language's index and the
// source with its types stripped (positions kept), or why it could not be
// stripped and where, as the engine counts (line, column in UTF-8 bytes).
function languageArgs(code, language) {
  if (language === 'js') return [];
  const stripped = strip(code);
  const index = contract.languages.indexOf(language);
  if (stripped.engineJs !== undefined) return [index, stripped.engineJs];
  const at = stripped.offset === null ? { line: 0, column: 0 } : engineLocation(code, stripped.offset);
  return [index, { message: `SyntaxError: ${stripped.message}`, line: at.line, column: at.column }];
}

function encodeAnswer(value, where) {
  try {
    return packr.pack(value);
  } catch (err) {
    throw new TypeError(`${where}.value cannot be encoded: ${err.message}`);
  }
}

// The guest sees a failed call as an Error whose message is this.
function errorMessage(error) {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  try {
    return String(error);
  } catch {
    return 'extension call failed';
  }
}

// HMAC keys for exported suspensions: sign with the first, accept any (so a
// key can be rotated in while blobs signed with the old one still import).
function validateKeys(keys) {
  if (keys === undefined) return null;
  if (!Array.isArray(keys) || keys.length === 0) {
    throw new TypeError('config.suspensionKeys must be a non-empty array of keys (Buffer, Uint8Array or string)');
  }
  return keys.map((key, i) => {
    let b = null;
    if (typeof key === 'string') b = Buffer.from(key, 'utf8');
    else if (key instanceof Uint8Array) b = Buffer.from(key);
    if (b === null) throw new TypeError(`config.suspensionKeys[${i}] must be a Buffer, Uint8Array or string`);
    if (b.length < 16) throw new RangeError(`config.suspensionKeys[${i}] must be at least 16 bytes, got ${b.length}`);
    return b;
  });
}

// What an export must have been made by: this package, its engine, this
// very addon binary and the snapshot image (which covers the bootstrap and
// the options that shape the image). Computed once per process.
let addonDigest = null;
function engineBuild(nat) {
  if (addonDigest === null) {
    const crypto = require('crypto');
    addonDigest = crypto.createHash('sha256').update(require('fs').readFileSync(native.file)).digest('hex').slice(0, 16);
  }
  return `nexus-wasm-bridge@${require('../package.json').version} quickjs-wasi@${require('quickjs-wasi/package.json').version} ` +
    `addon:${addonDigest} image:${nat.imageSha256().slice(0, 32)}`;
}

function validateStore(store, where) {
  for (const m of ['put', 'claim', 'delete']) {
    if (typeof store?.[m] !== 'function') throw new TypeError(`${where} must be a SuspensionStore (no ${m}() on it)`);
  }
}

function shutDownError() {
  const err = new Error('NexusRuntime has been shut down');
  err.code = 'SHUT_DOWN';
  return err;
}

class NexusRuntime {
  #native;
  #config;
  #shutdown = null;
  #keys;
  #build = null;
  #imported = new Map(); // nonce -> expiresAt: blobs imported here
  #importedKept = 0; // its size after the last sweep

  constructor(config) {
    const { suspensionKeys, ...rest } = config ?? {};
    if (config !== undefined && (config === null || typeof config !== 'object' || Array.isArray(config))) {
      throw new TypeError('config must be an object');
    }
    this.#keys = validateKeys(suspensionKeys);
    this.#config = validateConfig(rest);
    this.#native = new native.Runtime(this.#config);
  }

  get config() {
    return this.#config;
  }

  // A panel state kept encoded key by key (lib/state.js): pass it as
  // context.stateSnapshot, and apply() each result's stateMutations to it.
  createState(values = {}) {
    return new NexusState(packr, values);
  }

  inferCapabilities(code, options) {
    return inferCapabilities(code, options);
  }

  // options: { language: 'js' | 'ts' }, default 'js'.
  async executeHandler(code, context, timeoutMs, options) {
    if (this.#shutdown) throw shutDownError();
    if (typeof code !== 'string') throw new TypeError('handler code must be a string');
    const ctx = validateContext(context);
    const timeout = validateTimeout(timeoutMs);
    const language = languageOf(options);
    const encoded = encodeContext(ctx);
    const tail = languageArgs(code, language);
    const result = await (tail.length
      ? this.#native.execute(code, encoded, timeout, MODE_SOURCE, ...tail)
      : this.#native.execute(code, encoded, timeout));
    return packr.unpack(result);
  }

  // Compiles once, in a sandbox; the buffer (header + QuickJS bytecode) runs
  // with executeCompiledHandler() in any runtime of the same engine build.
  async precompileHandler(code, options) {
    if (this.#shutdown) throw shutDownError();
    if (typeof code !== 'string') throw new TypeError('handler code must be a string');
    const language = languageOf(options);
    const tail = languageArgs(code, language);
    const result = packr.unpack(await this.#native.execute(code, EMPTY_CONTEXT, 0, MODE_COMPILE, ...tail));
    if (result.status !== 'success') throw errors.errorFromResult(result.error);
    return new Uint8Array(result.returnValue.buffer, result.returnValue.byteOffset, result.returnValue.byteLength);
  }

  // The handler runs on this thread, now: for handlers that do not suspend
  // (an $ext call ends it with EXECUTION_ERROR). Same result, limits and
  // isolation as executeHandler; `handler` is source, or { bytecode } from
  // precompileHandler().
  executeHandlerSync(handler, context, timeoutMs, options) {
    if (this.#shutdown) throw shutDownError();
    let mode = 0;
    const language = languageOf(options);
    const bytecode = handler !== null && typeof handler === 'object' ? handler.bytecode : undefined; // read once
    if (bytecode !== undefined) {
      if (!(bytecode instanceof Uint8Array)) throw new TypeError('handler.bytecode must be a Uint8Array');
      handler = bytecode;
      mode = MODE_BYTECODE;
    } else if (typeof handler !== 'string') {
      throw new TypeError('handler must be source code (a string) or { bytecode }');
    }
    const ctx = validateContext(context);
    const timeout = validateTimeout(timeoutMs);
    const tail = mode === MODE_BYTECODE ? [] : languageArgs(handler, language);
    if (mode === MODE_BYTECODE && language !== 'js') throw new TypeError('options.language does not apply to { bytecode }');
    return packr.unpack(this.#native.executeSync(handler, encodeContext(ctx), timeout, mode, ...tail));
  }

  // Several executions in one round trip to the workers: one hand-off each
  // way for the whole batch. Each item is { code | bytecode, context,
  // timeoutMs }; the results are what executeHandler / executeCompiledHandler
  // would have given, in the same order. Every item is checked before any
  // runs: a malformed one rejects the batch with a TypeError naming it;
  // what goes wrong while an item runs is that item's error result.
  async executeBatch(items) {
    if (this.#shutdown) throw shutDownError();
    if (!Array.isArray(items)) throw new TypeError('executeBatch(items): items must be an array');
    if (items.length === 0) return [];
    if (items.length > MAX_BATCH) {
      throw new RangeError(`executeBatch(items): at most ${MAX_BATCH} items per batch, got ${items.length}`);
    }
    const jobs = items.map((item, i) => {
      if (item === null || typeof item !== 'object') throw new TypeError(`items[${i}] must be an object`);
      const { code, bytecode, context, timeoutMs } = item;
      if ((code === undefined) === (bytecode === undefined)) throw new TypeError(`items[${i}] needs exactly one of code and bytecode`);
      if (code !== undefined && typeof code !== 'string') throw new TypeError(`items[${i}].code must be a string`);
      if (bytecode !== undefined && !(bytecode instanceof Uint8Array)) throw new TypeError(`items[${i}].bytecode must be a Uint8Array`);
      const ctx = encodeContext(validateContext(context));
      return [code ?? bytecode, ctx, validateTimeout(timeoutMs), code !== undefined ? 0 : MODE_BYTECODE];
    });
    return (await this.#native.executeBatch(jobs)).map((buf) => packr.unpack(buf));
  }

  async executeCompiledHandler(bytecode, context, timeoutMs) {
    if (this.#shutdown) throw shutDownError();
    if (!(bytecode instanceof Uint8Array)) throw new TypeError('bytecode must be a Uint8Array');
    const ctx = validateContext(context);
    const timeout = validateTimeout(timeoutMs);
    const result = await this.#native.execute(bytecode, encodeContext(ctx), timeout, MODE_BYTECODE);
    return packr.unpack(result);
  }

  getPrometheusMetrics() {
    if (this.#shutdown) throw shutDownError();
    return this.#native.prometheus();
  }

  // One pending extension call answered; the execution then continues and
  // this resolves with its next result (suspended again, success or error).
  async resumeHandler(suspensionId, result) {
    return this.resumeAll([{ suspensionId, result }]);
  }

  // Several pending calls of one suspended execution answered in one round
  // (what a Promise.all over extension calls needs).
  async resumeAll(answers) {
    if (!Array.isArray(answers) || answers.length === 0) {
      throw new TypeError('resumeAll(answers): answers must be a non-empty array');
    }
    const ids = [];
    const oks = [];
    const payloads = [];
    answers.forEach((answer, i) => {
      const where = answers.length === 1 ? 'result' : `answers[${i}].result`;
      if (answer === null || typeof answer !== 'object') throw new TypeError(`answers[${i}] must be an object`);
      const { suspensionId, result } = answer;
      if (typeof suspensionId !== 'string') throw new TypeError('suspensionId must be a string');
      if (result === null || typeof result !== 'object' || typeof result.success !== 'boolean') {
        throw new TypeError(`${where} must be { success: true, value } or { success: false, error }`);
      }
      ids.push(suspensionId);
      oks.push(result.success);
      if (result.success) {
        checkCrossable(result.value, `${where}.value`);
        payloads.push(encodeAnswer(result.value, where));
      } else {
        payloads.push(packr.pack(errorMessage(result.error)));
      }
    });
    return packr.unpack(await this.#native.resume(ids, oks, payloads));
  }

  // Drops a suspended execution (its sandbox goes back to the pool); true
  // when the id named one.
  async cancelSuspended(suspensionId) {
    if (typeof suspensionId !== 'string') throw new TypeError('suspensionId must be a string');
    return this.#native.cancelSuspended(suspensionId);
  }

  #requireKeys(what) {
    if (this.#keys === null) throw new TypeError(`${what} needs config.suspensionKeys (the HMAC keys blobs are signed with)`);
  }

  get engineBuild() {
    this.#build ??= engineBuild(this.#native);
    return this.#build;
  }

  // A parked execution as a signed blob (lib/suspension.js) that any
  // runtime of the same engine build with one of the keys can import. The
  // execution is released here: its ids answer SUSPENSION_NOT_FOUND.
  async exportSuspension(suspensionId) {
    if (this.#shutdown) throw shutDownError();
    return this.#export(suspensionId);
  }

  async #export(suspensionId) {
    this.#requireKeys('exportSuspension');
    if (typeof suspensionId !== 'string') throw new TypeError('suspensionId must be a string');
    const build = this.engineBuild;
    const payload = this.#native.exportSuspension(suspensionId);
    const remainingMs = Number(payload.readBigUInt64LE(NATIVE_REMAINING_AT) / 1000000n);
    return sealSuspension(this.#keys, { build, suspensionId, expiresAt: Date.now() + Math.max(1, remainingMs), payload });
  }

  // Parks an exported execution here. Resolves with its suspension id, or
  // with options.result its suspended result (pendingCalls: what it waits
  // for). Refusals reject with code INVALID_SUSPENSION and `check`: format,
  // signature, expiry, build, payload, replay or engine; a refusal that is
  // not the blob's fault with SHUT_DOWN, RESOURCE_LIMIT (maxSuspended) or
  // INTERNAL_ERROR. options.returnTo ({ store, id }): after such a refusal,
  // the blob goes back into that store under `id`, signed again with a new
  // nonce (a store refuses the claimed one), so a blob claimed for this
  // import is not lost.
  async importSuspension(blob, options) {
    if (this.#shutdown) throw shutDownError();
    this.#requireKeys('importSuspension');
    const now = Date.now();
    const opened = openSuspension(this.#keys, blob, this.engineBuild, now);
    // Expired nonces go in sweeps, each when the map has doubled: amortised
    // O(1) per import.
    if (this.#imported.size > 2 * this.#importedKept + 64) {
      for (const [nonce, expiresAt] of this.#imported) if (expiresAt <= now) this.#imported.delete(nonce);
      this.#importedKept = this.#imported.size;
    }
    if (this.#imported.has(opened.nonce)) throw new InvalidSuspensionError('replay', 'this blob was imported here already');
    this.#imported.set(opened.nonce, opened.expiresAt);
    // It parks here until the blob expires (time spent in a store counts),
    // and no longer than this runtime's own suspensionTimeoutMs: the native
    // header's remaining time is rewritten to say so.
    const remainingMs = Math.max(1, Math.min(opened.expiresAt - now, this.#config.suspensionTimeoutMs));
    if (opened.payload.length >= NATIVE_REMAINING_AT + 8) {
      opened.payload.writeBigUInt64LE(BigInt(remainingMs) * 1000000n, NATIVE_REMAINING_AT);
    }
    let result;
    try {
      result = await this.#native.importSuspension(opened.payload);
    } catch (err) {
      // Not imported: it may be tried again (a refusal may be for now only:
      // maxSuspended reached, or the same execution parked here already).
      this.#imported.delete(opened.nonce);
      if (err.code === 'INVALID_SUSPENSION') throw new InvalidSuspensionError('engine', err.message);
      const back = options?.returnTo;
      if (back && opened.expiresAt > Date.now()) {
        const again = sealSuspension(this.#keys, opened);
        await back.store.put(back.id, again, Math.max(1, opened.expiresAt - Date.now())).catch(() => {});
      }
      throw err;
    }
    return options?.result ? packr.unpack(result) : opened.suspensionId;
  }

  getStats() {
    const s = this.#native.stats();
    return {
      totalExecutions: s.totalExecutions,
      activeInstances: s.activeInstances,
      availableInstances: s.availableInstances,
      // Share of source executions whose bytecode came from the compile cache.
      cacheHitRate: s.cacheHits + s.cacheMisses ? s.cacheHits / (s.cacheHits + s.cacheMisses) : 0,
      avgExecutionTimeUs: s.avgExecutionTimeUs,
      totalMemoryBytes: s.totalMemoryBytes,
      liveInstances: s.liveInstances,
      queuedExecutions: s.queuedExecutions,
      inFlightExecutions: s.inFlight,
      suspendedExecutions: s.suspendedExecutions,
      workers: s.workers,
      executionsByStatus: { success: s.successes, error: s.errors, suspended: s.suspensions },
      errorsByCode: { ...s.executionsByCode },
      cacheEntries: s.cacheEntries,
      cacheBytes: s.cacheBytes,
      cacheHits: s.cacheHits,
      cacheMisses: s.cacheMisses,
      snapshotBytes: s.snapshotBytes,
      // How long handing out a pristine sandbox takes: a reset after each
      // execution, an instantiation from the image for a new one.
      avgResetUs: s.avgResetUs,
      avgInstantiateUs: s.avgInstantiateUs,
      // How many of each those averages are over.
      resets: s.resets,
      instantiations: s.instantiations,
      snapshotCreateUs: s.snapshotCreateUs,
      // What the sandboxes use: config.memoryCheck, unless guard pages were
      // asked for and the fault handler could not be installed (then 'bounds').
      memoryCheck: s.memoryCheck ?? this.#config.memoryCheck,
    };
  }

  // options.drainTo: a SuspensionStore every parked execution is exported
  // to first (put under its suspension id until it would have expired), so
  // that another process can resume it. Resolves with { drained: ids,
  // failed: [{ suspensionId, error }] } then; an execution still running a
  // segment that parks after the drain ends with an error result as before.
  shutdown(options) {
    if (!this.#shutdown) {
      const store = options?.drainTo;
      if (store !== undefined) {
        validateStore(store, 'shutdown({ drainTo })');
        this.#requireKeys('shutdown({ drainTo })');
      }
      this.#shutdown = store === undefined ? this.#native.shutdown() : this.#drain(store);
    }
    return this.#shutdown;
  }

  async #drain(store) {
    const drained = [];
    const failed = [];
    const tried = new Set();
    for (;;) {
      const ids = this.#native.parkedIds().filter((id) => !tried.has(id));
      if (ids.length === 0) break;
      for (const id of ids) {
        tried.add(id);
        try {
          const blob = await this.#export(id);
          await store.put(id, blob, Math.max(1, peekSuspension(blob).expiresAt - Date.now()));
          drained.push(id);
        } catch (error) {
          failed.push({ suspensionId: id, error });
        }
      }
    }
    await this.#native.shutdown();
    return { drained, failed };
  }
}

module.exports = {
  NexusRuntime,
  NexusState,
  WasmSandboxExecutor,
  MemorySuspensionStore,
  RedisSuspensionStore,
  InvalidSuspensionError,
  validateConfig,
  inferCapabilities,
  ...errors,
};

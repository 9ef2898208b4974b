#!/usr/bin/env node
'use strict';
// nexus-run FILE [--state JSON] [--args JSON] [--scope JSON] [--caps LIST]
//                [--timeout MS] [--ext MODULE] [--precompiled] [--language js|ts]
//                [--json]
// Runs one handler file in a sandbox and prints what it did. With --ext, the
// handler's extension calls are answered by MODULE's objects through
// WasmSandboxExecutor, and every step of suspend/resume is printed. A .ts,
// .mts or .cts file is TypeScript unless --language says otherwise.
const fs = require('fs');
const path = require('path');
const util = require('util');
const { performance } = require('perf_hooks');
const { NexusRuntime, WasmSandboxExecutor, NexusError } = require('..');
const { buildRegistry } = require('../lib/executor');

const ALL_CAPS = ['state:read:*', 'state:write:*', 'events:emit:*', 'view:update:*', 'ext:*'];
const LANGUAGES = require('../src/contract').languages;
const TS_EXTENSIONS = ['.ts', '.mts', '.cts'];

const USAGE = `usage: nexus-run FILE [--state JSON] [--args JSON] [--scope JSON]
                  [--caps TOKEN,TOKEN,...] [--timeout MS] [--ext MODULE]
                  [--precompiled] [--language js|ts] [--json]
  --caps defaults to granting everything (state:read:*, state:write:*,
  events:emit:*, view:update:*, ext:*).
  --ext MODULE   a CommonJS file exporting { extName: { method() {...} } }:
                 the handler's \`await $ext.extName.method(...)\` calls are
                 answered by it (suspend, call, resume), each step printed.
  --precompiled  precompile the handler to bytecode first, then run that.
  --timeout MS   run-time limit of each sandbox segment (0: the default).
  --language L   js or ts; default: ts for a .ts, .mts or .cts FILE, else js.
  --json         print only the final result as JSON.`;

function parse(argv) {
  const opts = {
    state: {}, args: {}, scope: {}, caps: null, timeout: 0, json: false, file: null, ext: null, precompiled: false,
    language: null,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    const json = (name) => {
      const text = next();
      try {
        return JSON.parse(text);
      } catch (err) {
        throw new Error(`${name} is not valid JSON: ${err.message}`);
      }
    };
    if (a === '--state') opts.state = json('--state');
    else if (a === '--args') opts.args = json('--args');
    else if (a === '--scope') opts.scope = json('--scope');
    else if (a === '--caps') opts.caps = next().split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '--timeout') opts.timeout = Number(next());
    else if (a === '--ext') opts.ext = next();
    else if (a === '--precompiled') opts.precompiled = true;
    else if (a === '--language') {
      opts.language = next();
      if (!LANGUAGES.includes(opts.language)) throw new Error(`--language must be one of ${LANGUAGES.join(', ')}, got ${opts.language}`);
    }
    else if (a === '--json') opts.json = true;
    else if (a === '-h' || a === '--help') opts.help = true;
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else if (opts.file === null) opts.file = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (!opts.help && opts.file === null) throw new Error('missing FILE');
  if (opts.file !== null) opts.language ??= TS_EXTENSIONS.includes(path.extname(opts.file).toLowerCase()) ? 'ts' : 'js';
  return opts;
}

function show(value) {
  return util.inspect(value, { depth: 6, colors: false, breakLength: 100 });
}

// One line, for the step-by-step trace.
function show1(value) {
  return util.inspect(value, { depth: 6, colors: false, breakLength: Infinity });
}

const callText = (c) => `${c.extensionName}.${c.method}(${(c.args ?? []).map(show1).join(', ')})`;
const shortId = (id) => `${String(id).slice(0, 8)}…`;
const hostCalls = (m) => Object.entries(m.hostCalls ?? {}).map(([k, v]) => `${k}×${v}`).join(' ') || 'no host calls';

function errorLines(e, out) {
  out.push(`error    ${e.code}: ${e.message}`);
  if (e.location) out.push(`at       line ${e.location.line}, column ${e.location.column}`);
  if (e.snippet) out.push(e.snippet.replace(/^/gm, '         '));
}

function effectLines(r, out) {
  const section = (title, items, fmt) => {
    if (!items || items.length === 0) return;
    out.push(`${title}:`);
    for (const item of items) out.push(`  ${fmt(item)}`.replace(/\n/g, '\n    '));
  };
  section('state mutations', r.stateMutations, (m) =>
    m.operation === 'delete' ? `delete ${m.key}` : `set    ${m.key} = ${show(m.value)}`);
  section('events', r.events, (e) => `${e.name} ${show(e.payload)}`);
  section('view commands', r.viewCommands, (v) => `${v.type}(${v.componentId}) ${show(v.args)}`);
  section('logs', r.logs, (l) => `[${l.level}] ${l.message}`);
}

const handlerLine = (opts) => `handler  ${opts.file}${opts.language === 'ts' ? ' (TypeScript)' : ''}`;

function print(opts, result, bytecode) {
  const out = [];
  out.push(handlerLine(opts));
  if (bytecode) out.push(`bytecode ${bytecode.bytes} bytes, precompiled in ${bytecode.us} µs`);
  out.push(`status   ${result.status}`);
  if (result.status === 'success') out.push(`returned ${show(result.returnValue)}`);
  if (result.error) errorLines(result.error, out);
  effectLines(result, out);
  const m = result.metrics;
  if (m) {
    out.push(`metrics  ${m.durationUs} µs total, ${m.compilationTimeUs} µs compiling, ${hostCalls(m)}`);
  }
  return out.join('\n');
}

// A failed precompileHandler() as a result, so that it prints like any other.
function compileFailure(err) {
  if (!err || typeof err.code !== 'string' || err.code === 'SHUT_DOWN') throw err;
  const error = { code: err.code, message: err.message, stack: null, location: err.location ?? null, snippet: err.snippet ?? null };
  return { status: 'error', stateMutations: [], events: [], viewCommands: [], logs: [], error, metrics: null };
}

async function precompile(rt, code, language) {
  const t0 = performance.now();
  const bytecode = await rt.precompileHandler(code, { language });
  return { bytecode, bytes: bytecode.byteLength, us: Math.round((performance.now() - t0) * 1000) };
}

// Without --ext: one execution, its result printed. No extension is
// registered, so `$ext.NAME` is undefined in the handler.
async function runPlain(opts, code) {
  const rt = new NexusRuntime({ workers: 1 });
  try {
    const context = {
      panelId: 'cli',
      handlerName: opts.file,
      stateSnapshot: opts.state,
      args: opts.args,
      scope: opts.scope,
      capabilities: opts.caps ?? ALL_CAPS,
      extensionRegistry: {},
    };
    let result;
    let compiled = null;
    if (opts.precompiled) {
      try {
        compiled = await precompile(rt, code, opts.language);
        result = await rt.executeCompiledHandler(compiled.bytecode, context, opts.timeout);
      } catch (err) {
        result = compileFailure(err);
      }
    } else {
      result = await rt.executeHandler(code, context, opts.timeout, { language: opts.language });
    }
    console.log(opts.json ? JSON.stringify(result, null, 2) : print(opts, result, compiled));
    return result.status === 'success' ? 0 : 1;
  } finally {
    await rt.shutdown();
  }
}

function loadExtensions(file) {
  let mod;
  try {
    mod = require(path.resolve(file));
  } catch (err) {
    throw new Error(`--ext ${file}: cannot load it: ${String(err.message).split('\n')[0]}`);
  }
  if (mod === null || typeof mod !== 'object' || Array.isArray(mod) || Object.keys(mod).length === 0) {
    throw new Error(`--ext ${file}: must export an object of extensions ({ name: { method() {...} } })`);
  }
  for (const [name, ext] of Object.entries(mod)) {
    if (ext === null || typeof ext !== 'object') throw new Error(`--ext ${file}: export ${name} is not an object`);
  }
  return mod;
}

// The steps of one execution driven by WasmSandboxExecutor, printed as they
// happen (unless --json) and collected for the final summary.
class Trace {
  constructor(quiet) {
    this.quiet = quiet;
    this.t0 = performance.now();
    this.segments = [];
    this.effects = { stateMutations: [], events: [], viewCommands: [], logs: [] };
    this.extMs = 0;
    this.firstEffectMs = null;
  }

  effect() {
    this.firstEffectMs ??= this.now();
  }

  now() {
    return performance.now() - this.t0;
  }

  step(label, text) {
    if (this.quiet) return;
    console.log(`${`+${this.now().toFixed(1)} ms`.padStart(10)}  ${label.padEnd(9)} ${text}`);
  }

  segment(result) {
    const n = this.segments.length + 1;
    const m = result.metrics ?? {};
    this.segments.push({ status: result.status, pendingCalls: result.pendingCalls, metrics: result.metrics });
    const cost = `${m.durationUs} µs${m.compilationTimeUs ? `, ${m.compilationTimeUs} µs compiling` : ''}`;
    if (result.status === 'suspended') {
      const [first, ...more] = result.pendingCalls ?? [result.suspension];
      const id = (c) => `suspension ${shortId(c.suspensionId)}`;
      this.step('suspend', `segment ${n} (${cost}) awaits ${callText(first)}, ${id(first)}`);
      for (const c of more) this.step('', `and ${callText(c)}, ${id(c)}`);
    } else {
      const what = result.status === 'error' ? `error ${result.error?.code}` : result.status;
      this.step('end', `segment ${n} (${cost}) finished: ${what}`);
    }
  }

  resume(answers, pending) {
    for (const { suspensionId, result } of answers) {
      const call = pending.get(suspensionId);
      const what = result.success ? 'its value' : `an error (${result.error})`;
      this.step('resume', `suspension ${shortId(suspensionId)} with ${what}${call ? ` from ${call.extensionName}.${call.method}` : ''}`);
    }
  }
}

// The executor's runtime, with every result and resume reported to a Trace.
class TracingRuntime extends NexusRuntime {
  #trace;
  #pending = new Map();

  constructor(config, trace) {
    super(config);
    this.#trace = trace;
  }

  #seen(result) {
    this.#pending.clear();
    for (const c of result.pendingCalls ?? (result.suspension ? [result.suspension] : [])) this.#pending.set(c.suspensionId, c);
    this.#trace.segment(result);
    return result;
  }

  async executeHandler(code, context, timeoutMs, options) {
    return this.#seen(await super.executeHandler(code, context, timeoutMs, options));
  }

  async executeCompiledHandler(bytecode, context, timeoutMs) {
    return this.#seen(await super.executeCompiledHandler(bytecode, context, timeoutMs));
  }

  async resumeAll(answers) {
    this.#trace.resume(answers, this.#pending);
    return this.#seen(await super.resumeAll(answers));
  }
}

// The same extensions, each method reporting when its call starts and ends.
function traced(extensions, trace, file) {
  const registry = buildRegistry(extensions);
  const out = {};
  for (const [name, ext] of Object.entries(extensions)) {
    const wrapper = {};
    for (const method of registry[name]) {
      wrapper[method] = async (...args) => {
        const text = callText({ extensionName: name, method, args });
        trace.step('ext call', `${text} starts on the host (${file}); the handler stays parked`);
        const t0 = performance.now();
        try {
          const value = await Reflect.apply(ext[method], ext, args);
          trace.step('ext done', `${name}.${method} returned after ${(performance.now() - t0).toFixed(1)} ms: ${show1(value)}`);
          return value;
        } catch (err) {
          trace.step('ext fail', `${name}.${method} failed after ${(performance.now() - t0).toFixed(1)} ms: ${err?.message ?? err}`);
          throw err;
        } finally {
          trace.extMs += performance.now() - t0;
        }
      };
    }
    out[name] = wrapper;
  }
  return out;
}

// With --ext: the whole execution through WasmSandboxExecutor.
async function runWithExtensions(opts, code, extensions) {
  const trace = new Trace(opts.json);
  const rt = new TracingRuntime({ workers: 1 }, trace);
  const state = structuredClone(opts.state);
  const fx = trace.effects;
  const out = [];
  let compiled = null;
  let status = 'success';
  let returnValue;
  let error = null;
  try {
    if (!opts.json) {
      console.log(handlerLine(opts));
      console.log(`ext      ${opts.ext}: ${Object.entries(buildRegistry(extensions)).map(([n, ms]) => ms.map((m) => `${n}.${m}`).join(', ')).join(', ')}`);
      console.log(`state    ${show1(state)}   (host state before)`);
    }
    trace.t0 = performance.now();
    if (opts.precompiled) {
      try {
        compiled = await precompile(rt, code, opts.language);
      } catch (err) {
        const failure = compileFailure(err);
        if (opts.json) console.log(JSON.stringify(failure, null, 2));
        else console.log(print(opts, failure).split('\n').slice(1).join('\n'));
        return 1;
      }
      trace.step('compile', `${compiled.bytes} bytes of bytecode in ${compiled.us} µs`);
    }
    const executor = new WasmSandboxExecutor(rt);
    try {
      returnValue = await executor.execute({
        ...(compiled ? { bytecode: compiled.bytecode } : { code, language: opts.language }),
        panelId: 'cli',
        handlerName: opts.file,
        state,
        args: opts.args,
        scope: opts.scope,
        capabilities: opts.caps ?? ALL_CAPS,
        extensions: traced(extensions, trace, opts.ext),
        runTimeoutMs: opts.timeout || undefined,
        onMutations(list) {
          fx.stateMutations.push(...list);
          trace.effect();
          for (const m of list) {
            trace.step('state', m.operation === 'delete' ? `delete ${m.key}` : `set ${m.key} = ${show1(m.value)}`);
          }
          trace.step('', `host state is now ${show1(state)}`);
        },
        onEvents(list) {
          fx.events.push(...list);
          trace.effect();
          for (const e of list) trace.step('event', `${e.name} ${show1(e.payload)}`);
        },
        onViewCommands(list) {
          fx.viewCommands.push(...list);
          trace.effect();
          for (const v of list) trace.step('view', `${v.type}(${v.componentId}) ${show1(v.args)}`);
        },
        onLogs(list) {
          fx.logs.push(...list);
          for (const l of list) trace.step('log', `[${l.level}] ${l.message}`);
        },
      });
    } catch (err) {
      if (!(err instanceof NexusError)) throw err;
      status = 'error';
      error = { code: err.code, message: err.message, stack: err.handlerStack, location: err.location, snippet: err.snippet };
    }
  } finally {
    await rt.shutdown();
  }
  const wallMs = trace.now();
  if (opts.json) {
    const result = { status, ...(status === 'success' ? { returnValue } : { error }), ...fx, state, segments: trace.segments };
    console.log(JSON.stringify(result, null, 2));
    return status === 'success' ? 0 : 1;
  }
  out.push('');
  out.push(`status   ${status}${trace.segments.length > 1 ? ` after ${trace.segments.length - 1} suspension${trace.segments.length > 2 ? 's' : ''}` : ''}`);
  if (status === 'success') out.push(`returned ${show(returnValue)}`);
  else errorLines(error, out);
  effectLines(fx, out);
  out.push(`state    ${show(state)}   (host state after)`);
  trace.segments.forEach((s, i) => {
    const m = s.metrics;
    if (!m) return;
    out.push(`${i === 0 ? 'metrics ' : '        '} segment ${i + 1}: ${m.durationUs} µs, ${m.compilationTimeUs} µs compiling` +
      `${m.cacheHit ? ' (cache hit)' : ''}, ${hostCalls(m)}`);
  });
  const first = trace.firstEffectMs === null ? '' : `; first effects reached the host at +${trace.firstEffectMs.toFixed(1)} ms`;
  out.push(`wall     ${wallMs.toFixed(1)} ms, ${trace.extMs.toFixed(1)} ms of it in extension calls${first}`);
  console.log(out.join('\n'));
  return status === 'success' ? 0 : 1;
}

async function main() {
  let opts;
  let extensions = null;
  try {
    opts = parse(process.argv.slice(2));
    if (!opts.help && opts.ext !== null) extensions = loadExtensions(opts.ext);
  } catch (err) {
    console.error(`nexus-run: ${err.message}\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  const code = fs.readFileSync(opts.file, 'utf8');
  return extensions ? runWithExtensions(opts, code, extensions) : runPlain(opts, code);
}

main().then((code) => { process.exitCode = code; }, (err) => {
  console.error(`nexus-run: ${err.message}`);
  process.exitCode = 2;
});

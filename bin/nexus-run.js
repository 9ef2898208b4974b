#!/usr/bin/env node
'use strict';
// nexus-run FILE [--state JSON] [--args JSON] [--scope JSON] [--caps LIST]
//                [--timeout MS] [--json]
// Runs one handler file in a sandbox and prints what it did.
const fs = require('fs');
const util = require('util');
const { NexusRuntime } = require('..');

const USAGE = `usage: nexus-run FILE [--state JSON] [--args JSON] [--scope JSON]
                  [--caps TOKEN,TOKEN,...] [--timeout MS] [--json]
  --caps defaults to granting everything (state:read:*, state:write:*,
  events:emit:*, view:update:*, ext:*).`;

function parse(argv) {
  const opts = { state: {}, args: {}, scope: {}, caps: null, timeout: 0, json: false, file: null };
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
    else if (a === '--json') opts.json = true;
    else if (a === '-h' || a === '--help') opts.help = true;
    else if (a.startsWith('-')) throw new Error(`unknown option ${a}`);
    else if (opts.file === null) opts.file = a;
    else throw new Error(`unexpected argument ${a}`);
  }
  if (!opts.help && opts.file === null) throw new Error('missing FILE');
  return opts;
}

function show(value) {
  return util.inspect(value, { depth: 6, colors: false, breakLength: 100 });
}

function print(file, result) {
  const out = [];
  out.push(`handler  ${file}`);
  out.push(`status   ${result.status}`);
  if (result.status === 'success') out.push(`returned ${show(result.returnValue)}`);
  if (result.error) {
    const e = result.error;
    out.push(`error    ${e.code}: ${e.message}`);
    if (e.location) out.push(`at       line ${e.location.line}, column ${e.location.column}`);
    if (e.snippet) out.push(e.snippet.replace(/^/gm, '         '));
  }
  const section = (title, items, fmt) => {
    if (!items || items.length === 0) return;
    out.push(`${title}:`);
    for (const item of items) out.push(`  ${fmt(item)}`);
  };
  section('state mutations', result.stateMutations, (m) =>
    m.operation === 'delete' ? `delete ${m.key}` : `set    ${m.key} = ${show(m.value)}`);
  section('events', result.events, (e) => `${e.name} ${show(e.payload)}`);
  section('view commands', result.viewCommands, (v) => `${v.type}(${v.componentId}) ${show(v.args)}`);
  section('logs', result.logs, (l) => `[${l.level}] ${l.message}`);
  const m = result.metrics;
  out.push(`metrics  ${m.durationUs} µs total, ${m.compilationTimeUs} µs compiling, ` +
    `${Object.entries(m.hostCalls).map(([k, v]) => `${k}×${v}`).join(' ') || 'no host calls'}`);
  return out.join('\n');
}

async function main() {
  let opts;
  try {
    opts = parse(process.argv.slice(2));
  } catch (err) {
    console.error(`nexus-run: ${err.message}\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    console.log(USAGE);
    return 0;
  }
  const code = fs.readFileSync(opts.file, 'utf8');
  const rt = new NexusRuntime({ workers: 1 });
  try {
    const result = await rt.executeHandler(code, {
      panelId: 'cli',
      handlerName: opts.file,
      stateSnapshot: opts.state,
      args: opts.args,
      scope: opts.scope,
      capabilities: opts.caps ?? ['state:read:*', 'state:write:*', 'events:emit:*', 'view:update:*', 'ext:*'],
      extensionRegistry: {},
    }, opts.timeout);
    console.log(opts.json ? JSON.stringify(result, null, 2) : print(opts.file, result));
    return result.status === 'success' ? 0 : 1;
  } finally {
    await rt.shutdown();
  }
}

main().then((code) => { process.exitCode = code; }, (err) => {
  console.error(`nexus-run: ${err.message}`);
  process.exitCode = 2;
});

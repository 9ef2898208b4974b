'use strict';
// The contract is written once (src/contract.js): lib/ reads it, the build
// turns it into contract.h, and these tests hold the places that cannot
// read it (types, README) and both layers' checks to it.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const path = require('path');
const contract = require('../src/contract');
const { validateConfig } = require('..');

const ROOT = path.join(__dirname, '..');
const read = (f) => fs.readFileSync(path.join(ROOT, f), 'utf8');

test('index.d.ts lists exactly the contract error codes and every config option', () => {
  const dts = read('index.d.ts');
  const union = dts.match(/export type ErrorCode =([^;]+);/)[1];
  assert.deepEqual([...union.matchAll(/'([A-Z_]+)'/g)].map((m) => m[1]), contract.errorCodes);
  const config = dts.match(/export interface RuntimeConfig \{([\s\S]*?)\n\}/)[1];
  for (const key of Object.keys(contract.config)) assert.match(config, new RegExp(`\\b${key}\\?: number;`), key);
  const languages = dts.match(/export type HandlerLanguage =([^;]+);/)[1];
  assert.deepEqual([...languages.matchAll(/'([a-z]+)'/g)].map((m) => m[1]), contract.languages);
  for (const [key, f] of Object.entries(contract.choices)) {
    assert.ok(config.includes(`${key}?: ${f.values.map((v) => `'${v}'`).join(' | ')};`), key);
  }
});

test('the README configuration table lists every option with the contract default', () => {
  const readme = read('README.md');
  const table = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('## Known limitations'));
  const human = (n) => (n >= 1 << 20 && n % (1 << 20) === 0 ? `${n / (1 << 20)} MiB` : String(n));
  for (const [key, f] of Object.entries(contract.config)) {
    const row = table.split('\n').find((l) => l.startsWith(`| \`${key}\``));
    assert.ok(row, `no row for ${key}`);
    if (f.default !== null && f.default !== 0) assert.ok(row.includes(human(f.default)), `${key}: ${row}`);
  }
  for (const [key, f] of Object.entries(contract.choices)) {
    const row = table.split('\n').find((l) => l.startsWith(`| \`${key}\``));
    assert.ok(row, `no row for ${key}`);
    assert.ok(row.includes(`\`'${f.default}'\``), `${key}: ${row}`);
  }
});

test('lib applies the contract defaults, and refuses each bound plus or minus one', () => {
  const c = validateConfig({});
  for (const [key, f] of Object.entries(contract.config)) {
    if (f.default !== null) assert.equal(c[key], f.default, key);
    assert.throws(() => validateConfig({ [key]: f.max + 1 }), { name: 'RangeError', message: new RegExp(`^config\\.${key} must be an integer in \\[${f.min}, ${f.max}\\]`) });
    if (f.min > 0) assert.throws(() => validateConfig({ [key]: f.min - 1 }), { name: 'RangeError' });
  }
  assert.equal(c.maxInstances, 2 * c.workers);
});

test('the native layer checks the same bounds (it reads contract.h)', () => {
  const native = require('../lib/native');
  for (const [key, f] of Object.entries(contract.config)) {
    assert.throws(() => new native.Runtime({ [key]: f.max + 1 }), {
      name: 'RangeError',
      message: `config.${key} must be an integer in [${f.min}, ${f.max}]`,
    }, key);
  }
});

test('the generated contract.h carries the same table', () => {
  const h = read('build/Release/obj/gen/nexus/contract.h');
  for (const [key, f] of Object.entries(contract.config)) {
    assert.ok(h.includes(`X("${key}", ${f.c}, UINT64_C(${f.min}), UINT64_C(${f.max}), UINT64_C(${f.default ?? 0}))`), key);
  }
  for (const [key, f] of Object.entries(contract.choices)) {
    const names = `NX_${key.replace(/[A-Z]/g, (m) => '_' + m).toUpperCase()}`;
    assert.ok(h.includes(`X("${key}", ${f.c}, ${names}_NAMES, ${f.values.length}u, ${names}_${f.default.toUpperCase()})`), key);
    f.values.forEach((v, i) => assert.ok(h.includes(`#define ${names}_${v.toUpperCase()} ${i}u`), v));
  }
  for (const code of contract.errorCodes) assert.ok(h.includes(`X(${code})`), code);
  for (const l of contract.languages) assert.ok(h.includes(`X(${l.toUpperCase()}, "${l}")`), l);
  assert.ok(h.includes(`#define NX_HANDLER_PREFIX ${JSON.stringify(contract.handler.prefix)}`));
});

// npm test runs the suites in each memoryCheck mode through
// NEXUS_TEST_MEMORY_CHECK, which test/helpers.js applies: a runtime made
// around it would run in the default mode both times.
test('every runtime the tests make goes through test/helpers.js (or names its memoryCheck)', () => {
  const files = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.join(dir, e.name);
      if (e.isDirectory() && e.name !== 'fuzz') walk(rel);
      else if (e.name.endsWith('.js') && e.name !== 'helpers.js') files.push(rel);
    }
  };
  walk('test');
  const bypass = [];
  for (const f of files) {
    read(f).split('\n').forEach((line, i) => {
      if (/new (NexusRuntime|native\.Runtime)\(/.test(line) && !/testConfig\(|memoryCheck|assert\.throws/.test(line)) {
        bypass.push(`${f}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  assert.ok(files.length > 20);
  assert.deepEqual(bypass, []);
});

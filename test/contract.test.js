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
  for (const code of contract.errorCodes) assert.ok(h.includes(`X(${code})`), code);
  for (const l of contract.languages) assert.ok(h.includes(`X(${l.toUpperCase()}, "${l}")`), l);
  assert.ok(h.includes(`#define NX_HANDLER_PREFIX ${JSON.stringify(contract.handler.prefix)}`));
});

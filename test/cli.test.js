'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('path');
const { spawnSync } = require('child_process');

const CLI = path.join(__dirname, '..', 'bin', 'nexus-run.js');
const EXAMPLE = path.join(__dirname, '..', 'examples', 'counter.js');
const cli = (...args) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20000 });

test('nexus-run prints what the example handler did', () => {
  const r = cli(EXAMPLE, '--state', '{"count":41,"history":[40,41]}', '--args', '{"step":1}');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^status {3}success$/m);
  assert.match(r.stdout, /^returned \{ count: 42 \}$/m);
  assert.match(r.stdout, /^ {2}set {4}count = 42$/m);
  assert.match(r.stdout, /^ {2}set {4}history = \[ 40, 41, 42 \]$/m);
  assert.match(r.stdout, /^ {2}count:even \{ count: 42 \}$/m);
  assert.match(r.stdout, /^ {2}scrollTo\(history-list\) \{ position: 2 \}$/m);
  assert.match(r.stdout, /^ {2}\[info\] incrementing by 1$/m);
});

test('nexus-run --json and --caps', () => {
  const r = cli(EXAMPLE, '--state', '{"count":1,"history":[]}', '--caps', 'state:read:*', '--json');
  assert.equal(r.status, 1);
  const result = JSON.parse(r.stdout);
  assert.equal(result.status, 'error');
  assert.equal(result.error.code, 'PERMISSION_DENIED');
  assert.equal(result.error.location.line, 5);
});

test('nexus-run usage errors', () => {
  assert.equal(cli().status, 2);
  assert.match(cli().stderr, /missing FILE/);
  assert.match(cli(EXAMPLE, '--state', '{bad').stderr, /--state is not valid JSON/);
  assert.equal(cli('--help').status, 0);
});

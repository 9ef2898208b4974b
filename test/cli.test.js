'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const CLI = path.join(__dirname, '..', 'bin', 'nexus-run.js');
const EXAMPLE = path.join(__dirname, '..', 'examples', 'counter.js');
const WEATHER = path.join(__dirname, '..', 'examples', 'weather.js');
const WEATHER_EXT = path.join(__dirname, '..', 'examples', 'weather-extensions.js');
const WEATHER_STATE = '{"city":"Oslo","loading":false,"forecast":null}';
const CART = path.join(__dirname, '..', 'examples', 'cart.ts');
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

// The line index of the first line matching re (fails the test if none).
function lineOf(lines, re) {
  const i = lines.findIndex((l) => re.test(l));
  assert.notEqual(i, -1, `no line matches ${re}\n${lines.join('\n')}`);
  return i;
}

test('nexus-run --ext prints each step of a suspension, effects before the extension call ends', () => {
  const r = cli(WEATHER, '--ext', WEATHER_EXT, '--state', WEATHER_STATE, '--args', '{"city":"Oslo"}');
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  const suspend = lineOf(lines, /suspend +segment 1 .*awaits weather\.forecast\('Oslo'\), suspension [0-9a-f]{8}…$/);
  const loading = lineOf(lines, /state +set loading = true$/);
  const shown = lineOf(lines, /host state is now \{ city: 'Oslo', loading: true, forecast: null \}$/);
  const event = lineOf(lines, /event +forecast:requested \{ city: 'Oslo' \}$/);
  const log = lineOf(lines, /log +\[info\] fetching forecast for Oslo$/);
  const call = lineOf(lines, /ext call +weather\.forecast\('Oslo'\) starts/);
  const done = lineOf(lines, /ext done +weather\.forecast returned after [\d.]+ ms: \{ sky: 'rain', lowC: 3, highC: 9 \}$/);
  const resume = lineOf(lines, /resume +suspension [0-9a-f]{8}… with its value from weather\.forecast$/);
  const end = lineOf(lines, /end +segment 2 .*finished: success$/);
  const after = lineOf(lines, /state +set loading = false$/);
  const returned = lineOf(lines, /^returned \{ city: 'Oslo', summary: 'rain, 3–9 °C' \}$/);
  // The suspension and its effects (loading: true) reach the host before the
  // I/O ends; the rest follows the resume.
  assert.ok(suspend < loading && loading < shown && shown < call, 'suspension, then loading: true, then the call');
  assert.ok(event < call && log < call, 'event and log before the call');
  assert.ok(call < done && done < resume && resume < end && end < after && after < returned, 'call, result, resume, end');
  // The suspension id printed at the suspension is the one resumed.
  assert.equal(lines[suspend].match(/suspension ([0-9a-f]{8})…/)[1], lines[resume].match(/suspension ([0-9a-f]{8})…/)[1]);
  assert.match(r.stdout, /^status {3}success after 1 suspension$/m);
  assert.match(r.stdout, /^ {2}set {4}forecast = \{ sky: 'rain', lowC: 3, highC: 9 \}$/m);
  assert.match(r.stdout, /^ {2}focus\(forecast-card\) \{\}$/m);
  assert.match(r.stdout, /^state {4}\{ city: 'Oslo', loading: false, forecast: \{ sky: 'rain', lowC: 3, highC: 9 \}, error: null \}/m);
  assert.match(r.stdout, /^metrics {2}segment 1: \d+ µs, .*ext\.weather\.forecast×1$/m);
  assert.match(r.stdout, /^ {9}segment 2: \d+ µs, .*state\.set×3 view×1$/m);
});

test('nexus-run --ext: a failing extension call rejects inside the handler', () => {
  const r = cli(WEATHER, '--ext', WEATHER_EXT, '--args', '{"city":"Atlantis"}', '--precompiled');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /compile +\d+ bytes of bytecode/);
  assert.match(r.stdout, /ext fail +weather\.forecast failed after [\d.]+ ms: no forecast for Atlantis$/m);
  assert.match(r.stdout, /resume +suspension [0-9a-f]{8}… with an error \(no forecast for Atlantis\)/);
  assert.match(r.stdout, /^returned null$/m);
  assert.match(r.stdout, /^ {2}\[error\] forecast failed: no forecast for Atlantis$/m);
  assert.match(r.stdout, /segment 1: \d+ µs, \d+ µs compiling \(cache hit\)/);
});

test('nexus-run --ext --json prints only the final result', () => {
  const r = cli(WEATHER, '--ext', WEATHER_EXT, '--state', WEATHER_STATE, '--args', '{"city":"Lisbon"}', '--json');
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.equal(result.status, 'success');
  assert.deepEqual(result.returnValue, { city: 'Lisbon', summary: 'sunny, 15–24 °C' });
  assert.deepEqual(result.stateMutations.map((m) => [m.key, m.value]), [
    ['loading', true],
    ['forecast', { sky: 'sunny', lowC: 15, highC: 24 }],
    ['error', null],
    ['loading', false],
  ]);
  assert.deepEqual(result.state, { city: 'Oslo', loading: false, forecast: { sky: 'sunny', lowC: 15, highC: 24 }, error: null });
  assert.deepEqual(result.segments.map((s) => s.status), ['suspended', 'success']);
  assert.deepEqual(result.segments[0].pendingCalls.map((c) => [c.extensionName, c.method, c.args]), [['weather', 'forecast', ['Lisbon']]]);
  assert.equal(typeof result.segments[1].metrics.durationUs, 'number');
});

test('nexus-run --ext: capabilities, handler errors, bad modules', () => {
  // Without ext:weather the call throws PERMISSION_DENIED inside the
  // handler, which catches it: no suspension, no extension call.
  const denied = cli(WEATHER, '--ext', WEATHER_EXT, '--args', '{"city":"Oslo"}',
    '--caps', 'state:read:*,state:write:*,events:emit:*', '--json');
  assert.equal(denied.status, 0, denied.stderr);
  const result = JSON.parse(denied.stdout);
  assert.equal(result.returnValue, null);
  assert.equal(result.segments.length, 1);
  assert.match(result.state.error, /ext:weather/);

  const failing = cli(EXAMPLE, '--ext', WEATHER_EXT, '--state', '{"count":1,"history":[]}', '--caps', 'state:read:*');
  assert.equal(failing.status, 1);
  assert.match(failing.stdout, /^status {3}error$/m);
  assert.match(failing.stdout, /^error {4}PERMISSION_DENIED: /m);
  assert.match(failing.stdout, /^at {7}line 5, column \d+$/m);

  const missing = cli(WEATHER, '--ext', path.join(__dirname, 'no-such-module.js'));
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /--ext .*no-such-module\.js: cannot load it/);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexus-run-'));
  try {
    fs.writeFileSync(path.join(dir, 'bad.js'), 'module.exports = { weather: 42 };');
    const notObject = cli(WEATHER, '--ext', path.join(dir, 'bad.js'));
    assert.equal(notObject.status, 2);
    assert.match(notObject.stderr, /--ext .*bad\.js: export weather is not an object/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('nexus-run --precompiled runs the bytecode', () => {
  const r = cli(EXAMPLE, '--state', '{"count":41,"history":[40,41]}', '--args', '{"step":1}', '--precompiled', '--json');
  assert.equal(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout);
  assert.deepEqual(result.returnValue, { count: 42 });
  assert.equal(result.metrics.cacheHit, true);
  const text = cli(EXAMPLE, '--state', '{"count":41,"history":[40,41]}', '--precompiled');
  assert.equal(text.status, 0, text.stderr);
  assert.match(text.stdout, /^bytecode \d+ bytes, precompiled in \d+ µs$/m);
  assert.match(text.stdout, /^returned \{ count: 42 \}$/m);
});

test('nexus-run runs a .ts file as TypeScript; locations point into it', () => {
  const args = ['--state', '{"lines":[{"sku":"tea","priceCents":450,"qty":1}]}', '--args', '{"sku":"cup","priceCents":1200,"qty":2}'];
  const r = cli(CART, ...args);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^handler  .*cart\.ts \(TypeScript\)$/m);
  assert.match(r.stdout, /^returned \{ totalCents: 2850 \}$/m);
  assert.match(r.stdout, /^ {2}\[info\] cart: 2 lines, total 2850 cents$/m);
  for (const extra of [['--precompiled'], ['--ext', WEATHER_EXT]]) {
    const again = cli(CART, ...args, ...extra, '--json');
    assert.equal(again.status, 0, again.stderr);
    assert.deepEqual(JSON.parse(again.stdout).returnValue, { totalCents: 2850 }, extra.join(' '));
  }
  // a runtime error at a TypeScript line: that line and column of cart.ts
  const lines = fs.readFileSync(CART, 'utf8').split('\n');
  const at = lines.findIndex((l) => l.includes('throw new RangeError'));
  const bad = cli(CART, '--args', '{"sku":"cup","priceCents":1,"qty":0}', '--json');
  assert.equal(bad.status, 1);
  const { error } = JSON.parse(bad.stdout);
  assert.equal(error.code, 'EXECUTION_ERROR');
  // (where on the line is QuickJS's choice; typescript.test.js checks columns)
  assert.equal(error.location.line, at + 1);
  assert.ok(error.location.column > lines[at].indexOf('throw') && error.location.column <= lines[at].length, JSON.stringify(error));
  assert.ok(lines[at].endsWith(error.snippet.split('\n')[0]), error.snippet); // a window of the line
  // --language overrides the extension
  const asJs = cli(CART, '--language', 'js', '--json');
  assert.equal(asJs.status, 1);
  assert.equal(JSON.parse(asJs.stdout).error.code, 'COMPILATION_ERROR');
  const bogus = cli(CART, '--language', 'coffee');
  assert.equal(bogus.status, 2);
  assert.match(bogus.stderr, /--language must be one of js, ts, got coffee/);
});

test('nexus-run: a .ts file strip-only mode cannot handle is a COMPILATION_ERROR at its line', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nexus-run-ts-'));
  try {
    const file = path.join(dir, 'h.mts');
    fs.writeFileSync(file, 'const a: number = 1;\nenum E { A }\nreturn a;\n');
    for (const extra of [[], ['--precompiled']]) {
      const r = cli(file, '--json', ...extra);
      assert.equal(r.status, 1, r.stderr);
      const { error } = JSON.parse(r.stdout);
      assert.equal(error.code, 'COMPILATION_ERROR', extra.join(' '));
      assert.equal(error.message, 'SyntaxError: TypeScript enum is not supported in strip-only mode');
      assert.deepEqual(error.location, { line: 2, column: 1 });
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { inferCapabilities } = require('../lib/infer');

const infer = (code, expected) => assert.deepEqual(inferCapabilities(code), expected, code);
const STATE_ALL = ['state:read:*', 'state:write:*'];
const EVERYTHING = ['events:emit:*', 'ext:*', 'state:read:*', 'state:write:*', 'view:update:*'];

test('literal names in every family', () => {
  infer('return $state.count', ['state:read:count']);
  infer("return $state['count']", ['state:read:count']);
  infer('return $state[`count`]', ['state:read:count']);
  infer('return $state[0]', ['state:read:0']);
  infer("$emit('saved', { id: 1 })", ['events:emit:saved']);
  infer('$emit(`saved`)', ['events:emit:saved']);
  infer("$view.setFilter('list', 'x'); $view.scrollTo('log', 0); $view.focus('input'); $view.custom('chart', {})",
    ['view:update:chart', 'view:update:input', 'view:update:list', 'view:update:log']);
  infer("$view.anything('c1'); $view['focus'](`c2`)", ['view:update:c1', 'view:update:c2']);
  infer("await $ext.http.get('/x')", ['ext:http']);
  infer("await $ext['db'].query('q')", ['ext:db']);
  infer('const h = $ext.http; return typeof $ext.cache', ['ext:cache', 'ext:http']);
  infer("$state?.a; $state.b?.c; $emit?.('e'); $view?.focus('f')",
    ['events:emit:e', 'state:read:a', 'state:read:b', 'view:update:f']);
});

test('assignments and deletes are writes; a plain assignment is a write only', () => {
  infer('$state.a = 1', ['state:write:a']);
  infer("$state['a'] = 1", ['state:write:a']);
  infer('delete $state.a', ['state:write:a']);
  infer("delete $state['a']", ['state:write:a']);
  infer('[$state.a, ...$state.b] = [1, 2]', ['state:write:a', 'state:write:b']);
  infer('({ x: $state.a, y: $state.b = 2 } = obj)', ['state:write:a', 'state:write:b']);
  infer('for ($state.a of [1]) ; for ($state.b in {}) ;', ['state:write:a', 'state:write:b']);
});

test('compound assignment and ++/-- read and write the key', () => {
  for (const op of ['+=', '-=', '*=', '**=', '||=', '&&=', '??=', '|=', '>>>=']) {
    infer(`$state.n ${op} 1`, ['state:read:n', 'state:write:n']);
  }
  infer("$state['n'] += 1", ['state:read:n', 'state:write:n']);
  infer('$state.n++', ['state:read:n', 'state:write:n']);
  infer('--$state.n', ['state:read:n', 'state:write:n']);
});

test('writes below a key are writes of the key (which is read first)', () => {
  const both = ['state:read:k', 'state:write:k'];
  infer('$state.k.x = 1', both);
  infer("$state['k'][0]++", both);
  infer('delete $state.k.x', both);
  infer('$state.k.a.b += 2', both);
  infer('delete $state.k?.x', both);
  infer('[$state.k.x] = [1]', both);
});

test('mutating methods write the key; other methods only read it', () => {
  for (const m of ['push', 'pop', 'shift', 'unshift', 'splice', 'sort', 'reverse', 'fill', 'copyWithin',
    'set', 'add', 'delete', 'clear', 'setFullYear', 'setUTCHours']) {
    infer(`$state.list.${m}(1)`, ['state:read:list', 'state:write:list']);
  }
  infer("$state['list']['push'](1)", ['state:read:list', 'state:write:list']);
  infer('$state.a.b.push(1)', ['state:read:a', 'state:write:a']);
  infer('$state.list?.push(1)', ['state:read:list', 'state:write:list']);
  infer('$state.list.map((x) => x); $state.list.slice(); $state.list.settings()', ['state:read:list']);
});

test('output is sorted and unique', () => {
  const out = inferCapabilities("$view.focus('z'); $state.b = 1; $state.a; $state.a; $emit('m'); $emit('m'); $ext.q.x()");
  assert.deepEqual(out, ['events:emit:m', 'ext:q', 'state:read:a', 'state:write:b', 'view:update:z']);
  assert.deepEqual(out, [...new Set(out)].sort());
  assert.deepEqual(inferCapabilities(''), []);
  assert.deepEqual(inferCapabilities('return $args.x + $scope.y; $log("hi")'), []);
});

test('computed keys and non-literal names widen to *', () => {
  infer('return $state[k]', ['state:read:*']);
  infer('$state[k] = 1', ['state:write:*']);
  infer('$state[`a${i}`]++', ['state:read:*', 'state:write:*']);
  infer('delete $state[k]', ['state:write:*']);
  infer('$state[k].push(1)', ['state:read:*', 'state:write:*']);
  infer('$emit(name)', ['events:emit:*']);
  infer('$emit(`e-${id}`)', ['events:emit:*']);
  infer('$emit(...args)', ['events:emit:*']);
  infer('$view.focus(id)', ['view:update:*']);
  infer("$view[method]('c')", ['view:update:*']);
  infer('$ext[name].call()', ['ext:*']);
});

test('escaping globals widen to * (both read and write for $state)', () => {
  infer('const s = $state', STATE_ALL);
  infer('helper($state)', STATE_ALL);
  infer('return { ...$state }', STATE_ALL);
  infer('return { $state }', STATE_ALL);
  infer('Object.assign($state, patch)', STATE_ALL);
  infer('with ($state) { x = 1 }', STATE_ALL);
  infer('const e = $emit; e("x")', ['events:emit:*']);
  infer("$emit.call(null, 'x')", ['events:emit:*']);
  infer('later($emit)', ['events:emit:*']);
  infer('const v = $view', ['view:update:*']);
  infer("const f = $view.focus; f('x')", ['view:update:*']);
  infer('use($ext)', ['ext:*']);
  infer("'http' in $ext", ['ext:*']);
  infer('typeof $state; typeof $emit', []);
  infer('arguments[0].x = 1', EVERYTHING);
  infer("eval('$state.x = 1')", EVERYTHING);
});

test('enumerating $state reads every key', () => {
  infer('Object.keys($state)', ['state:read:*']);
  infer('Object.entries($state); Object.values($state)', ['state:read:*']);
  infer('for (const k in $state) {}', ['state:read:*']);
  infer("if ('k' in $state) {}", ['state:read:*']);
  infer('if (k in $state) {}', ['state:read:*']);
});

test('destructuring reads the named keys', () => {
  infer('const { a, b: { c }, d = 1 } = $state', ['state:read:a', 'state:read:b', 'state:read:d']);
  infer("let { 'x-y': v } = $state", ['state:read:x-y']);
  infer('({ a } = $state)', ['state:read:a']);
  infer('const { a, ...rest } = $state', ['state:read:*', 'state:read:a']);
  infer('const { [k]: v } = $state', ['state:read:*']);
  infer('const { http } = $ext', ['ext:http']);
  infer('function f({ a } = $state) {}', ['state:read:a']);
});

test('a local $state (or other global) shadows the handler global', () => {
  infer('function f($state) { $state.x = 1; return $state }', []);
  infer('const f = ($emit, { $view }) => { $emit(n); $view.focus(id) }', []);
  infer('{ let $state = {}; $state.a = 1; helper($state) }', []);
  infer('{ const $ext = {}; $ext[x].y() } $ext.real.call()', ['ext:real']);
  infer('function g() { var $state = {}; if (x) { $state.q = 1 } } $state.r', ['state:read:r']);
  infer('function g() { $state.q = 1; var $state; }', []); // hoisted
  infer('function $state() {} $state.a = 1', []);
  infer('function f() { function $emit() {} $emit(x) }', []);
  infer('try {} catch ($state) { $state.a = 1 }', []);
  infer('try {} catch ({ $state }) { $state.a = 1 }', []);
  infer('for (const $state of list) $state.a = 1; $state.b', ['state:read:b']);
  infer('{ class $view { m() { $view.focus(x) } } }', []);
  infer('(class $view { m() { $view.focus(x) } }); $view.focus("y")', ['view:update:y']);
  infer('(function $state() { $state.a = 1 })', []);
  infer('switch (x) { case 1: let $state = {}; $state.a = 1 }', []);
  infer('class A { static { var $state = {}; $state.a = 1 } m() { return $state.b } }', ['state:read:b']);
  // a parameter default does not see the body's declarations
  infer('function f(a = $state.x) { var $state; }', ['state:read:x']);
  // in a nested function, `arguments` and eval no longer reach shadowed globals
  infer('function f() { arguments[0] }', []);
  infer('function f($state) { eval(s) }', ['events:emit:*', 'ext:*', 'view:update:*']);
});

test('a top-level var is the wrapper parameter, not a new binding', () => {
  infer('var $state; $state.a = 1', ['state:write:a']);
});

test('syntax errors are COMPILATION_ERROR with a handler-relative location', () => {
  assert.throws(() => inferCapabilities('const ok = 1;\nconst x = ;\n'), (err) => {
    assert.ok(err instanceof Error);
    assert.equal(err.code, 'COMPILATION_ERROR');
    assert.equal(err.message, 'SyntaxError: Unexpected token');
    assert.deepEqual(err.location, { line: 2, column: 11 });
    assert.equal(err.snippet, 'const x = ;\n          ^');
    return true;
  });
  assert.throws(() => inferCapabilities('x = "abc'), {
    code: 'COMPILATION_ERROR',
    message: 'SyntaxError: Unterminated string constant',
    location: { line: 1, column: 5 },
  });
  assert.throws(() => inferCapabilities('\tfoo(;'), { location: { line: 1, column: 6 }, snippet: '\tfoo(;\n\t    ^' });
  // code that ends too early is reported at its own end, not in the wrapper
  assert.throws(() => inferCapabilities('if (x) {'), { code: 'COMPILATION_ERROR', location: { line: 1, column: 9 } });
  // the runtime's wrapper declares the globals as parameters
  assert.throws(() => inferCapabilities('let $state = 1'), {
    code: 'COMPILATION_ERROR',
    message: "SyntaxError: Identifier '$state' has already been declared",
    location: { line: 1, column: 5 },
  });
  assert.throws(() => inferCapabilities('const await = 1'), { code: 'COMPILATION_ERROR' });
});

test('code that closes the wrapper is a COMPILATION_ERROR', () => {
  for (const code of ['}); (function () {', '}, function () {', '}).call(this); (async function () {']) {
    assert.throws(() => inferCapabilities(code), (err) => {
      assert.equal(err.code, 'COMPILATION_ERROR');
      assert.ok(err.message.startsWith('SyntaxError: '));
      assert.deepEqual(err.location, { line: 1, column: 1 });
      return true;
    }, code);
  }
  assert.throws(() => inferCapabilities('$state.a = 1\n  }); $emit(x); (function () {'),
    { code: 'COMPILATION_ERROR', location: { line: 2, column: 3 } });
});

test('top-level await and return are allowed', () => {
  infer('const r = await $ext.http.get(u); return r', ['ext:http']);
  infer('for await (const x of $ext.stream.open()) {}', ['ext:stream']);
  infer('return new.target', []);
});

test('code must be a string', () => {
  for (const bad of [undefined, null, 42, {}, Buffer.from('x')]) {
    assert.throws(() => inferCapabilities(bad), TypeError);
  }
});

test('the package entry exposes it', () => {
  const entry = require('../lib/index');
  assert.equal(entry.inferCapabilities, inferCapabilities);
  assert.equal(typeof entry.NexusRuntime.prototype.inferCapabilities, 'function');
});

'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { context, runtime } = require('./helpers');

const rt = runtime();
test.after(() => rt.shutdown());
const run = (code, over) => rt.executeHandler(code, context(over));

test('runtime error: code, message, location, snippet and stack point into the handler', async () => {
  const r = await run('const a = 1;\nconst b = null;\n  return b.field;');
  assert.equal(r.status, 'error');
  assert.equal(r.returnValue, undefined);
  assert.deepEqual(r.error, {
    code: 'EXECUTION_ERROR',
    message: "TypeError: cannot read property 'field' of null",
    stack: '    at <anonymous> (handler.js:3:10)',
    location: { line: 3, column: 10 },
    snippet: '  return b.field;\n         ^',
  });
});

test('errors thrown on the first line have first-line columns', async () => {
  const r = await run("throw new RangeError('bad')");
  assert.equal(r.error.message, 'RangeError: bad');
  assert.deepEqual(r.error.location, { line: 1, column: 11 });
  assert.equal(r.error.snippet, "throw new RangeError('bad')\n          ^");
});

test('frames of nested functions are kept, bootstrap frames are not', async () => {
  const r = await run('function inner() { throw new Error("x") }\nfunction outer() { inner() }\nouter()');
  assert.equal(r.error.stack, '    at inner (handler.js:1:30)\n    at outer (handler.js:2:20)\n    at <anonymous> (handler.js:3:1)');
  assert.deepEqual(r.error.location, { line: 1, column: 30 });
});

test('errors after await keep their location', async () => {
  const r = await run('await null;\nawait Promise.resolve();\nthrow new Error("late")');
  assert.equal(r.error.code, 'EXECUTION_ERROR');
  assert.deepEqual(r.error.location, { line: 3, column: 11 });
});

test('rejections of awaited promises end the execution', async () => {
  const r = await run('await Promise.reject(new TypeError("nope"))');
  assert.equal(r.error.code, 'EXECUTION_ERROR');
  assert.equal(r.error.message, 'TypeError: nope');
});

test('thrown non-errors', async () => {
  let r = await run("throw 'plain string'");
  assert.equal(r.error.message, 'Uncaught plain string');
  assert.equal(r.error.location, null);
  assert.equal(r.error.stack, null);
  r = await run('throw { code: 42 }');
  assert.equal(r.error.message, 'Uncaught [object Object]');
  r = await run('throw null');
  assert.equal(r.error.message, 'Uncaught null');
});

test('syntax errors are COMPILATION_ERROR with a location', async () => {
  const r = await run('const ok = 1;\nconst x = ;\n');
  assert.equal(r.status, 'error');
  assert.deepEqual(r.error, {
    code: 'COMPILATION_ERROR',
    message: "SyntaxError: unexpected token in expression: ';'",
    stack: '    at handler.js:2:11',
    location: { line: 2, column: 11 },
    snippet: 'const x = ;\n          ^',
  });
  assert.equal(r.metrics.cacheHit, false);
});

test('code that closes the wrapper is refused', async () => {
  const r = await run('}); (function () {');
  assert.equal(r.error.code, 'COMPILATION_ERROR');
  assert.equal(r.error.message, 'Handler code must be the body of a function (it closed the wrapper)');
});

test('a failed execution reports no effects, but keeps its logs', async () => {
  const r = await run("$state.a = 1; $emit('e'); $view.focus('x'); $log('before'); throw new Error('after')");
  assert.equal(r.status, 'error');
  assert.deepEqual(r.stateMutations, []);
  assert.deepEqual(r.events, []);
  assert.deepEqual(r.viewCommands, []);
  assert.deepEqual(r.logs, [{ level: 'info', message: 'before' }]);
});

test('a promise nothing can settle is an error, not a hang', async () => {
  const r = await run('await new Promise(() => {})');
  assert.equal(r.error.code, 'EXECUTION_ERROR');
  assert.equal(r.error.message, 'Handler never settled: it awaited a promise that nothing can resolve');
});

test('tab-indented code lines the caret up with tabs', async () => {
  const r = await run('\tnull.x');
  assert.equal(r.error.snippet, '\tnull.x\n\t^');
});

test('snippets of long lines are cut around the column', async () => {
  const code = `const a = [${'1,'.repeat(200)}]; null.x; ${'2;'.repeat(200)}`;
  const r = await run(code);
  const col = code.indexOf('null.x') + 1;
  assert.deepEqual(r.error.location, { line: 1, column: col });
  const [text, caret] = r.error.snippet.split('\n');
  assert.equal(text, code.slice(col - 61, col - 61 + 160));
  assert.equal(caret, ' '.repeat(60) + '^');
});

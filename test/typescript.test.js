'use strict';
// TypeScript handlers: options.language 'ts' on executeHandler,
// precompileHandler, inferCapabilities and the executor. Types are stripped
// on the host (amaro, strip-only) with every position kept, so error
// locations and snippets point into the TypeScript source.
const test = require('node:test');
const assert = require('node:assert/strict');
const { context, runtime } = require('./helpers');

const rt = runtime({ workers: 1 });
test.after(() => rt.shutdown());
const ts = (code, over, timeoutMs = 0) => rt.executeHandler(code, context(over), timeoutMs, { language: 'ts' });

const CART = `interface Line { sku: string; qty: number }
type Args = { sku: string; qty?: number };
const { sku, qty = 1 } = $args as Args;
const lines: Line[] = ($state.lines ?? []) as Line[];
const add = <T extends Line>(ls: T[], l: T): number => ls.push(l);
add(lines, { sku, qty });
$state.lines = lines;
return lines.length satisfies number;`;

test('a TypeScript handler runs with its types stripped', async () => {
  const r = await ts(CART, { args: { sku: 'a', qty: 2 }, stateSnapshot: { lines: [{ sku: 'z', qty: 1 }] } });
  assert.equal(r.status, 'success', JSON.stringify(r.error));
  assert.equal(r.returnValue, 2);
  assert.deepEqual(r.stateMutations, [{ key: 'lines', operation: 'set', value: [{ sku: 'z', qty: 1 }, { sku: 'a', qty: 2 }] }]);
});

test('the same text is not JavaScript: without language it is a COMPILATION_ERROR', async () => {
  const r = await rt.executeHandler(CART, context());
  assert.equal(r.error.code, 'COMPILATION_ERROR');
  assert.deepEqual(r.error.location, { line: 1, column: 11 });
  // language 'js' is the default, given or not
  const js = await rt.executeHandler(CART, context(), 0, { language: 'js' });
  assert.deepEqual(js.error, r.error);
});

test('a runtime error thrown at a TypeScript line points into the TypeScript source', async () => {
  const r = await ts('type N = { field: number } | null;\nconst b: N = null as N;\n  return (b as any).field as number;');
  assert.deepEqual(r.error, {
    code: 'EXECUTION_ERROR',
    message: "TypeError: cannot read property 'field' of null",
    stack: '    at <anonymous> (handler.js:3:11)',
    location: { line: 3, column: 11 },
    snippet: '  return (b as any).field as number;\n          ^',
  });
  const thrown = await ts('function f(x: string): never {\n  throw new RangeError(x as string);\n}\nf("bad" as const);');
  assert.equal(thrown.error.message, 'RangeError: bad');
  assert.equal(thrown.error.stack, '    at f (handler.js:2:24)\n    at <anonymous> (handler.js:4:1)');
  assert.deepEqual(thrown.error.location, { line: 2, column: 24 });
  assert.equal(thrown.error.snippet, '  throw new RangeError(x as string);\n                       ^');
});

test('locations stay right after types that held non-ASCII text (columns in UTF-8 bytes, as for JavaScript)', async () => {
  // The same statement as JavaScript, with the type removed by hand: the
  // TypeScript's column is the JavaScript's plus the bytes of ": { ü: number } | null".
  const js = await rt.executeHandler("const é = 'ü';\nconst z = null; return z.ü", context());
  const t = await ts("const é = 'ü';\nconst z: { ü: number } | null = null; return z!.ü");
  assert.deepEqual(js.error.location, { line: 2, column: 24 });
  assert.deepEqual(t.error.location, { line: 2, column: 24 + Buffer.byteLength(': { ü: number } | null') });
  assert.equal(t.error.snippet, `const z: { ü: number } | null = null; return z!.ü\n${' '.repeat(t.error.location.column - 1)}^`);
});

test('a TypeScript syntax error is a COMPILATION_ERROR at its place in the source', async () => {
  const r = await ts('const ok: number = 1;\nconst x: string = ;\n');
  assert.equal(r.status, 'error');
  assert.deepEqual(r.error, {
    code: 'COMPILATION_ERROR',
    message: 'SyntaxError: Expression expected',
    stack: null,
    location: { line: 2, column: 19 },
    snippet: 'const x: string = ;\n                  ^',
  });
  // swc counts a tab as 4 columns; the location counts it as one, as the
  // engine's own errors do
  const tab = await ts('let a: number = 1;\n\tlet b: = 2;');
  assert.match(tab.error.message, /^SyntaxError: Unexpected token `=`/);
  assert.deepEqual(tab.error.location, { line: 2, column: 9 });
  assert.equal(tab.error.snippet, '\tlet b: = 2;\n\t       ^');
});

test('syntax strip-only mode cannot handle is a COMPILATION_ERROR with its location', async () => {
  const cases = [
    ['const a: number = 1;\nenum Color { Red }\nreturn a', 'SyntaxError: TypeScript enum is not supported in strip-only mode', 2, 1],
    ['const a = 1;\n  namespace N { export const b = 1 }', 'SyntaxError: TypeScript namespace declaration is not supported in strip-only mode', 2, 3],
    ['class P {\n  constructor(private x: number) {}\n}', 'SyntaxError: TypeScript parameter property is not supported in strip-only mode', 2, 23],
  ];
  for (const [code, message, line, column] of cases) {
    const r = await ts(code);
    assert.equal(r.error.code, 'COMPILATION_ERROR', code);
    assert.equal(r.error.message, message, code);
    assert.deepEqual(r.error.location, { line, column }, code);
    assert.equal(r.error.snippet, `${code.split('\n')[line - 1]}\n${' '.repeat(column - 1)}^`, code);
    assert.equal(r.metrics.cacheHit, false);
  }
  // A namespace of types only has nothing to strip-refuse.
  assert.equal((await ts('namespace T { export type A = number }\nreturn 1 as T.A')).returnValue, 1);
});

test('code that closes the wrapper is refused in TypeScript too', async () => {
  const r = await ts('}); (function (): void {');
  assert.equal(r.error.code, 'COMPILATION_ERROR');
});

test('precompileHandler(ts): the bytecode runs like the source; compile errors throw with their location', async () => {
  const code = 'const n: number = $args.n as number;\nif (n < 0) throw new RangeError("negative");\nreturn n * 2;';
  const bc = await rt.precompileHandler(code, { language: 'ts' });
  assert.ok(bc instanceof Uint8Array);
  const ok = await rt.executeCompiledHandler(bc, context({ args: { n: 21 } }));
  assert.equal(ok.returnValue, 42);
  const bad = await rt.executeCompiledHandler(bc, context({ args: { n: -1 } }));
  assert.equal(bad.error.message, 'RangeError: negative');
  assert.deepEqual(bad.error.location, { line: 2, column: 22 });
  assert.equal(bad.error.snippet, null); // bytecode carries no source, as for JavaScript
  await assert.rejects(rt.precompileHandler('let a: number = 1;\nenum E { A }', { language: 'ts' }), (err) => {
    assert.equal(err.code, 'COMPILATION_ERROR');
    assert.equal(err.message, 'SyntaxError: TypeScript enum is not supported in strip-only mode');
    assert.deepEqual(err.location, { line: 2, column: 1 });
    return true;
  });
  // TypeScript as JavaScript does not compile
  await assert.rejects(rt.precompileHandler(code), { code: 'COMPILATION_ERROR' });
});

test('the compile cache keys on language and source: the same text as JS and as TS are two entries', async () => {
  const own = runtime({ workers: 1 });
  try {
    const code = 'return typeof ($args.v)';
    const first = await own.executeHandler(code, context({ args: { v: 1 } }), 0, { language: 'ts' });
    const again = await own.executeHandler(code, context({ args: { v: 's' } }), 0, { language: 'ts' });
    const asJs = await own.executeHandler(code, context({ args: { v: 1 } }));
    assert.deepEqual([first.returnValue, again.returnValue, asJs.returnValue], ['number', 'string', 'number']);
    assert.deepEqual([first.metrics.cacheHit, again.metrics.cacheHit, asJs.metrics.cacheHit], [false, true, false]);
    assert.equal(own.getStats().cacheEntries, 2);
    // A TypeScript source differing only in its types is a different source.
    const typed = await own.executeHandler('return typeof ($args.v as unknown)', context({ args: { v: 1 } }), 0, { language: 'ts' });
    assert.equal(typed.metrics.cacheHit, false);
    assert.equal(own.getStats().cacheEntries, 3);
  } finally {
    await own.shutdown();
  }
});

test('inferCapabilities works on TypeScript; its errors point into the TypeScript', () => {
  const code = `interface S { count: number }
const s = $state as unknown as S;
const n: number = ($state.count as number) + 1;
$state.count = n;
$emit('counted' as const, { n } satisfies { n: number });
const r = await $ext.store.put<number>(n);`;
  assert.deepEqual(rt.inferCapabilities(code, { language: 'ts' }),
    ['events:emit:counted', 'ext:store', 'state:read:*', 'state:read:count', 'state:write:*', 'state:write:count']);
  assert.throws(() => rt.inferCapabilities(code), { code: 'COMPILATION_ERROR' });
  assert.throws(() => rt.inferCapabilities('const a: number = 1;\nenum E { A }', { language: 'ts' }), (err) => {
    assert.equal(err.code, 'COMPILATION_ERROR');
    assert.equal(err.message, 'SyntaxError: TypeScript enum is not supported in strip-only mode');
    assert.deepEqual(err.location, { line: 2, column: 1 });
    assert.equal(err.snippet, 'enum E { A }\n^');
    return true;
  });
  assert.throws(() => rt.inferCapabilities('let a: string = 1 +;', { language: 'ts' }), (err) => {
    assert.equal(err.code, 'COMPILATION_ERROR');
    assert.deepEqual(err.location, { line: 1, column: 20 });
    return true;
  });
  const { inferCapabilities } = require('..');
  assert.deepEqual(inferCapabilities('$emit("x" as string)', { language: 'ts' }), ['events:emit:x']);
});

test('options are checked: language must be js or ts, and nothing else is an option', async () => {
  for (const call of [
    (o) => rt.executeHandler('return 1', context(), 0, o),
    (o) => rt.precompileHandler('return 1', o),
    async (o) => rt.inferCapabilities('return 1', o),
  ]) {
    await assert.rejects(call({ language: 'tsx' }), { name: 'RangeError', message: "options.language must be one of 'js', 'ts', got \"tsx\"" });
    await assert.rejects(call({ language: 1 }), { name: 'TypeError', message: 'options.language must be a string' });
    await assert.rejects(call({ lang: 'ts' }), { name: 'TypeError', message: 'options.lang is not a known option' });
    await assert.rejects(call('ts'), { name: 'TypeError', message: 'options must be an object' });
    await assert.rejects(call(null), { name: 'TypeError', message: 'options must be an object' });
  }
});

test('the executor runs TypeScript (code + language) and infers its capabilities', async () => {
  const { WasmSandboxExecutor } = require('..');
  const executor = new WasmSandboxExecutor(rt);
  const seen = { mutations: [], logs: [] };
  const value = await executor.execute({
    code: 'const v: number = await $ext.math.double<number>($args.n as number);\n$state.v = v;\nconsole.log("v is", v);\nreturn v;',
    language: 'ts',
    panelId: 'p',
    handlerName: 'h',
    state: {},
    args: { n: 4 },
    extensions: { math: { double: (n) => n * 2 } },
    onMutations: (m) => seen.mutations.push(...m),
    onLogs: (l) => seen.logs.push(...l),
  });
  assert.equal(value, 8);
  assert.deepEqual(seen.mutations, [{ key: 'v', operation: 'set', value: 8 }]);
  assert.deepEqual(seen.logs, [{ level: 'info', message: 'v is 8' }]);
  await assert.rejects(executor.execute({
    code: 'const a: number = 1;\n  enum E { A }', language: 'ts', panelId: 'p', handlerName: 'h', state: {},
  }), (err) => {
    assert.equal(err.code, 'COMPILATION_ERROR');
    assert.deepEqual(err.location, { line: 2, column: 3 });
    return true;
  });
  await assert.rejects(executor.execute({ bytecode: new Uint8Array(8), language: 'ts', panelId: 'p', handlerName: 'h', state: {}, capabilities: [] }),
    { name: 'TypeError', message: 'options.language goes with options.code (bytecode was compiled from its language already)' });
});

/* libFuzzer harness: guest values leaving the sandbox. The input bytes
 * choose a handler from a small grammar (random bytes seldom parse as
 * JavaScript): values built from numbers, strings with lone surrogates,
 * BigInts in and out of 64-bit range, arrays with holes, objects, shared
 * references that expand exponentially, cycles, getters and Proxies that
 * call $emit / $view / $state / $ext / $log or throw or loop, Errors, Dates
 * with patched valueOf, typed arrays (detached, shrunk), Maps, functions,
 * Symbols, deep nesting and patched prototypes; used as the return value,
 * event payloads, view arguments, $state values, $ext arguments and thrown
 * values. Each handler runs through the real runtime (one worker); its
 * results must keep the WasmResult contract, and a suspended one is resumed
 * or cancelled (runner.c). FUZZ_PRINT=1 prints each generated handler. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

#define COUNT(table) (sizeof(table) / sizeof((table)[0]))
#define MAX_DEPTH 4   /* nesting of expressions and actions */
#define MAX_NODES 240 /* expansions per handler, so size stays bounded */
#define SRC_CAP (96u << 10)

/* ---- the grammar ------------------------------------------------------------
 * Templates expand these placeholders: %e expression, %a statement that
 * needs no `await` (it may end up inside a getter), %n number, %s string,
 * %b BigInt, %v an earlier variable, %k $state key, %t typed-array
 * constructor, %c count, %d nesting depth, %x doublings of a DAG, %m an
 * $ext method. The first entry of every table expands to nothing further,
 * so a handler is complete when the input runs out. */

static const char *const numbers[] = {
    "0",
    "-0",
    "1",
    "-1",
    "42",
    "0.5",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "1e21",
    "1e308",
    "5e-324",
    "NaN",
    "Infinity",
    "-Infinity",
    "8.64e15",
    "-8.64e15",
    "8.64e15 + 1",
    "0xD800",
    "Number.MAX_VALUE",
};

static const char *const strings[] = {
    "\"\"",
    "\"abc\"",
    "\"\\uD800\"",
    "\"a\\uDC00b\"",
    "\"\\uD83D\\uDE00\"",
    "\"\\u0000z\"",
    "\"\\u00e9\\u4e2d\"",
    "\"x\".repeat(%c)",
    "\"\\uD800\".repeat(%c)",
    "\"\\uDBFF\\uDFFF\".repeat(%c)",
    "String.fromCharCode(%n)",
    "(\"ab\".repeat(%c) + \"\\uD800\")",
    "[\"p\", \"q\"].join(\"\\uDBFF\")",
    "\"__proto__\"",
    "(\"k\" + %n)",
    "(\"\\uD83D\\uDE00\".slice(0, 1) + \"\\uDE00\")",
    "String(%b)",
};

static const char *const bigints[] = {
    "0n",
    "-1n",
    "123n",
    "2n ** 31n",
    "-(2n ** 31n)",
    "2n ** 32n",
    "2n ** 63n - 1n",
    "2n ** 63n",
    "-(2n ** 63n)",
    "-(2n ** 63n) - 1n",
    "2n ** 64n - 1n",
    "2n ** 64n",
    "-(2n ** 64n)",
    "2n ** 1000n",
    "BigInt(%n)",
    "BigInt.asUintN(64, -1n)",
    "BigInt.asIntN(64, 2n ** 63n)",
};

static const char *const counts[] = {"0", "1", "3", "100", "1000", "70000", "300000"};
static const char *const depths[] = {"8", "100", "254", "255", "256", "257", "300", "1000"};
static const char *const doublings[] = {"3", "10", "17", "24", "40"};

static const char *const state_keys[] = {
    "\"count\"",     "\"obj\"", "\"s\"",       "\"list\"", "\"fresh\"",       "\"big\"",
    "\"__proto__\"", "\"\"",    "\"\\uD800\"", "\"0\"",    "Symbol.iterator", "%n",
};

static const char *const typed[] = {
    "Uint8Array",   "Int8Array",     "Uint8ClampedArray", "Int16Array",
    "Uint16Array",  "Int32Array",    "Uint32Array",       "Float32Array",
    "Float64Array", "BigInt64Array", "BigUint64Array",    "Float16Array",
};

/* svc.get, svc.put and other.call are registered (runner.c's context). */
static const char *const ext_methods[] = {
    "$ext.svc.get",
    "$ext.svc.put",
    "$ext.other.call",
    "$ext.svc.nope",
};

static const char *const leaves[] = {
    "%n",
    "%s",
    "%b",
    "%v",
    "null",
    "undefined",
    "true",
    "$state",
    "$args",
    "$scope",
    "$state.obj",
    "$state.count",
    "$state.list",
    "$state.s",
    "$args.nested",
    "$ext",
    "$ext.svc",
    "$emit",
    "$view",
    "$log",
    "globalThis",
    "Symbol(\"s\")",
    "Symbol.iterator",
    "() => 1",
    "class K {}",
    "async function af() {}",
    "function* gf() {}",
    "/re/g",
    "new WeakMap()",
    "new WeakSet()",
    "new WeakRef({})",
    "Promise.resolve(1)",
    "new Promise(() => {})",
    "Math",
    "JSON",
    "arguments",
    "new Map([[1, 2]])",
    "new Set([1])",
    "new DataView(new ArrayBuffer(8))",
    "new ArrayBuffer(%c)",
    "new %t(%c)",
    "new Date(%n)",
    "new Error(%s)",
    "Object.create(null)",
    "[]",
    "({})",
    "new Array(%c)",
    "Error.prototype",
    "Array.prototype",
    "Object.prototype",
    "Date.prototype",
};

static const char *const compound[] = {
    /* arrays and objects */
    "[%e, %e]",
    "[%e]",
    "[%e, , %e]",
    "[%e, %e, %e, %e]",
    "Array.from({ length: 3 }, () => (%e))",
    "({ a: %e, b: %e })",
    "({ [\"__proto__\"]: %e })",
    "({ __proto__: %e, x: 1 })",
    "({ \"\\uD800\": %e, 7: %e, \"-1\": %e })",
    "Object.create({ inherited: %e })",
    "Object.assign(Object.create(null), { z: %e })",
    "Object.assign([%e], { extra: %e })",
    "(() => { const a = [1, 2, 3]; a.length = %c; return a; })()",
    "({ ...%e })",
    "[...%e]",
    "Reflect.ownKeys(%e)",
    "Object.getOwnPropertyDescriptors(%e)",
    /* accessors */
    "({ get g() { %a; return %e; } })",
    "({ get g() { %a; return %e; }, set g(v) { %a; } })",
    "Object.defineProperty({}, \"g\", { enumerable: true, get() { %a; return %e; } })",
    "Object.defineProperty([%e], 0, { enumerable: true, get() { %a; return %e; } })",
    "Object.defineProperty([%e, %e], 5, { enumerable: true, get() { %a; return %e; } })",
    "Object.defineProperty({ v: 1 }, \"h\", { value: %e, enumerable: false })",
    "Object.defineProperty({}, \"w\", { get() { %a; return 1; }, enumerable: false })",
    "({ get [Symbol.toStringTag]() { %a; return \"T\"; }, k: %e })",
    "({ toJSON() { %a; return %e; }, k: 1 })",
    /* Proxies */
    "new Proxy(%e, {})",
    "new Proxy({ a: 1 }, { get(t, k) { %a; return %e; } })",
    "new Proxy({}, { ownKeys() { %a; return [\"a\", \"b\"]; }, getOwnPropertyDescriptor(t, k) "
    "{ %a; return { value: %e, enumerable: true, configurable: true }; } })",
    "new Proxy([1, 2], { get(t, k) { %a; return k === \"length\" ? %n : %e; } })",
    "new Proxy({ a: %e }, { getPrototypeOf() { %a; return null; }, has() { %a; return true; } })",
    "(() => { const r = Proxy.revocable({}, {}); r.revoke(); return r.proxy; })()",
    "new Proxy(function () {}, {})",
    "new Proxy(new Date(0), {})",
    "new Proxy(new Error(\"px\"), {})",
    /* Errors */
    "new TypeError(%s, { cause: %e })",
    "Object.assign(new RangeError(\"r\"), { extra: %e })",
    "Object.defineProperty(new Error(\"m\"), \"name\", { get() { %a; return %e; } })",
    "Object.defineProperty(new Error(\"m\"), \"message\", { get() { %a; return %e; } })",
    "new AggregateError([%e], \"agg\")",
    "Object.setPrototypeOf(new Error(\"p\"), null)",
    "Object.setPrototypeOf({ name: %e, message: %e }, Error.prototype)",
    "(() => { try { null.x; } catch (e) { return e; } })()",
    "(() => { const e = new Error(\"s\"); Object.defineProperty(e, \"stack\", "
    "{ get() { %a; return %e; } }); return e; })()",
    /* Dates */
    "Object.assign(new Date(%n), { valueOf() { %a; return 1; } })",
    "(() => { const d = new Date(0); d[Symbol.toPrimitive] = () => { %a; return 1; }; "
    "return d; })()",
    "Object.setPrototypeOf(new Date(1), null)",
    "Object.defineProperty(new Date(2), \"x\", { enumerable: true, get() { %a; return %e; } })",
    "(() => { const d = new Date(3); d.getTime = () => { %a; return 4; }; return d; })()",
    /* typed arrays and buffers */
    "new Uint8Array([%n, %n])",
    "new %t([%n])",
    "new Uint16Array(new ArrayBuffer(8), 2, 1)",
    "new %t(new ArrayBuffer(16), 8)",
    "(() => { const b = new ArrayBuffer(8); const u = new Uint8Array(b); b.transfer(); "
    "return u; })()",
    "(() => { const b = new ArrayBuffer(8); b.transfer(); return b; })()",
    "(() => { const b = new ArrayBuffer(16, { maxByteLength: 32 }); "
    "const u = new Uint8Array(b, 8); b.resize(4); return u; })()",
    "(() => { const b = new ArrayBuffer(16, { maxByteLength: 64 }); const u = new Float64Array(b); "
    "b.resize(64); return u; })()",
    "Object.defineProperty(new Uint8Array(2), \"x\", "
    "{ enumerable: true, get() { %a; return 1; } })",
    /* collections, functions, wrappers */
    "new Map([[%e, %e]])",
    "new Set([%e])",
    "Object.assign(() => 1, { a: %e })",
    "(function () { return arguments; })(%e, %e)",
    "(function (a) { a = %e; return arguments; })(1)",
    "new String(%s)",
    "Object(%b)",
    "Object(Symbol(\"q\"))",
    "new (class { #p = 1; a = %e; })()",
    "Object.freeze(%e)",
    "Object.preventExtensions({ q: %e })",
    "Object.fromEntries(Array.from({ length: %c }, (_, i) => [\"k\" + i, i]))",
    "Object.setPrototypeOf({ a: %e }, new Proxy({}, { get() { %a; return 1; } }))",
    "Promise.resolve(%e)",
    "(%e, %e)",
    "JSON.parse(JSON.stringify(%e) ?? \"null\")",
    "Array.from(new Set([%e, %e]))",
    "$state[%k]",
    "globalThis[%s]",
    /* deep nesting */
    "(() => { let x = %e; for (let i = 0; i < %d; i++) x = [x]; return x; })()",
    "(() => { let x = %e; for (let i = 0; i < %d; i++) x = { n: x }; return x; })()",
    "(() => { let x = %e; for (let i = 0; i < %d; i++) { const y = x; "
    "x = { get n() { return y; } }; } return x; })()",
    "(() => { let x = %e; for (let i = 0; i < %d; i++) x = new Proxy([x], {}); return x; })()",
    "(() => { let x = %e; for (let i = 0; i < %d; i++) "
    "x = Object.assign(new Error(\"e\"), { c: x }); return x; })()",
    /* shared references: exponential when expanded */
    "(() => { let x = %e; for (let i = 0; i < %x; i++) x = [x, x]; return x; })()",
    "(() => { let x = %e; for (let i = 0; i < %x; i++) x = { l: x, r: x }; return x; })()",
    "(() => { let x = %e; for (let i = 0; i < %x; i++) { const y = x; "
    "x = { get l() { return y; }, r: y }; } return x; })()",
    "(() => { let x = %e; for (let i = 0; i < %x; i++) { const y = x; x = new Proxy({}, "
    "{ ownKeys: () => [\"l\", \"r\"], getOwnPropertyDescriptor: () => "
    "({ value: y, enumerable: true, configurable: true }), get: () => y }); } return x; })()",
    /* cycles */
    "(() => { const o = { a: %e }; o.self = o; return o; })()",
    "(() => { const a = [%e]; a.push(a); return a; })()",
    "(() => { const o = { get self() { %a; return o; } }; return o; })()",
    "(() => { const p = new Proxy({}, { ownKeys: () => [\"x\"], getOwnPropertyDescriptor: () => "
    "({ value: 1, enumerable: true, configurable: true }), get: () => p }); return p; })()",
    "(() => { const a = {}, b = { a }; a.b = b; return [a, b]; })()",
    "(() => { const e = new Error(\"c\"); e.self = e; return e; })()",
};

/* Statements that run anywhere, getters included. */
static const char *const actions[] = {
    "void 0",
    "$emit(\"ev\", %e)",
    "$emit(%e, %e)",
    "$view.custom(\"c\", %e)",
    "$view.setFilter(%e, %e)",
    "$view.scrollTo(\"c\", %e)",
    "$view.focus(\"c\")",
    "$state[%k] = %e",
    "delete $state[%k]",
    "$state.obj.a.push(%e)",
    "$state.list[0] = %e",
    "$state.obj.d = %e",
    "$log(\"x\", %e)",
    "$log.warn(%e, %e)",
    "console.log(%e)",
    "throw %e",
    "for (;;) {}",
    "%m(%e)",
    "%m(%e, %e)",
    "%v.p = %v",
    "Object.defineProperty(Array.prototype, \"0\", { get() { %a; return %e; }, set(v) { %a; }, "
    "configurable: true })",
    "Object.defineProperty(Object.prototype, \"a\", { get() { %a; return %e; }, set(v) {}, "
    "configurable: true })",
    "Object.defineProperty(Object.prototype, \"then\", { get() { %a; return undefined; }, "
    "configurable: true })",
    "Object.prototype.then = function (r) { %a; r(%e); }",
    "Date.prototype.getTime = function () { %a; return %n; }",
    "Object.prototype.toJSON = function () { %a; return %e; }",
    "Array.prototype[Symbol.iterator] = function* () { %a; yield %e; }",
    "Object.keys = function () { %a; return [\"a\"]; }",
    "Array.isArray = function () { %a; return true; }",
    "Error.prepareStackTrace = function (e, s) { %a; return %e; }",
    "Error.stackTraceLimit = %n",
    "try { %a; } catch (e) { $log(typeof e); }",
    "for (let i = 0; i < %c; i++) { %a; }",
    "$state.count = $state.count + 1",
    "Object.defineProperty($state, \"z\", { value: %e })",
    "Object.keys($state)",
    "\"count\" in $state",
    "JSON.stringify(%e)",
    "Object.freeze(Object.prototype)",
    "Function.prototype.call = function () { %a; }",
    "Map.prototype.get = function () { %a; return %e; }",
    "Promise.prototype.then = function () { %a; }",
    "String.prototype.toString = function () { %a; return \"s\"; }",
    "globalThis.Proxy = function () { %a; }",
    "(function f() { f(); })()",
    "String(%e)",
    "(%e)",
    "Object.setPrototypeOf($state, null)",
    "Reflect.ownKeys($state)",
    "Object.assign($state, %e)",
};

/* Statements of the handler body itself, where `await` is allowed. */
static const char *const top_statements[] = {
    "%a",
    "await (%e)",
    "await %m(%e)",
    "{ const r = await %m(%e); $state.fresh = r; }",
    "await Promise.all([%m(%e), %m(%e)])",
    "try { await %m(%e); } catch (e) { $log(String(e && e.message)); }",
    "await null",
    "await new Promise(() => {})",
    "%m(%e).then((r) => { %a; })",
    "for (let i = 0; i < %c; i++) await %m(i)",
    "await Promise.race([%m(%e), %m(%e)])",
};

static const char *const endings[] = {
    "return %e;",
    "throw %e;",
    "return await %m(%e);",
    "return Promise.reject(%e);",
    "return [await %m(%e), await %m(%e)];",
    "$state.fresh = %e; return %v;",
    "return;",
    "",
    "return %m(%e);",
    "return { then(r) { %a; r(%e); } };",
};

/* ---- expansion ------------------------------------------------------------------ */

typedef struct {
  fz_bytes_t *in;
  char *src;
  size_t len;
  int overflow; /* the handler outgrew SRC_CAP: not run */
  unsigned nodes;
  unsigned vars; /* v0 .. v(vars - 1) are defined */
} gen_t;

static void put(gen_t *g, const char *s, size_t n) {
  if (g->len + n >= SRC_CAP) {
    g->overflow = 1;
    return;
  }
  memcpy(g->src + g->len, s, n);
  g->len += n;
}

static void put_str(gen_t *g, const char *s) { put(g, s, strlen(s)); }

static const char *choose(gen_t *g, const char *const *table, size_t n) {
  return table[fz_pick(g->in, (unsigned)n)];
}

static void expand(gen_t *g, const char *t, unsigned depth);

static void expression(gen_t *g, unsigned depth) {
  unsigned i;
  g->nodes++;
  if (depth >= MAX_DEPTH || g->nodes > MAX_NODES) {
    expand(g, choose(g, leaves, COUNT(leaves)), depth);
    return;
  }
  i = fz_pick(g->in, COUNT(leaves) + COUNT(compound));
  if (i < COUNT(leaves))
    expand(g, leaves[i], depth + 1);
  else
    expand(g, compound[i - COUNT(leaves)], depth + 1);
}

static void action(gen_t *g, unsigned depth) {
  g->nodes++;
  if (depth >= MAX_DEPTH || g->nodes > MAX_NODES)
    put_str(g, "void 0");
  else
    expand(g, choose(g, actions, COUNT(actions)), depth + 1);
}

static void variable(gen_t *g) {
  char name[16];
  if (g->vars == 0) {
    put_str(g, "null");
    return;
  }
  snprintf(name, sizeof name, "v%u", fz_pick(g->in, g->vars));
  put_str(g, name);
}

/* A table-only placeholder (no recursion into expressions), or NULL. */
static const char *leaf_table(gen_t *g, char c) {
  switch (c) {
    case 'n': return choose(g, numbers, COUNT(numbers));
    case 's': return choose(g, strings, COUNT(strings));
    case 'b': return choose(g, bigints, COUNT(bigints));
    case 'k': return choose(g, state_keys, COUNT(state_keys));
    case 't': return choose(g, typed, COUNT(typed));
    case 'c': return choose(g, counts, COUNT(counts));
    case 'd': return choose(g, depths, COUNT(depths));
    case 'x': return choose(g, doublings, COUNT(doublings));
    case 'm': return choose(g, ext_methods, COUNT(ext_methods));
    default: return NULL;
  }
}

static void expand(gen_t *g, const char *t, unsigned depth) {
  while (*t) {
    const char *pct = strchr(t, '%'), *sub;
    if (pct == NULL) {
      put_str(g, t);
      return;
    }
    put(g, t, (size_t)(pct - t));
    if (pct[1] == 'e')
      expression(g, depth);
    else if (pct[1] == 'a')
      action(g, depth);
    else if (pct[1] == 'v')
      variable(g);
    else if ((sub = leaf_table(g, pct[1])) != NULL)
      expand(g, sub, depth);
    else
      fz_fail("bad placeholder in template: %s", t);
    t = pct + 2;
  }
}

/* let v0 = ...; statements; an ending. */
static void handler(gen_t *g) {
  unsigned i, nvars = 1 + fz_pick(g->in, 4), nstmts = fz_pick(g->in, 6);
  char decl[24];
  for (i = 0; i < nvars; i++) {
    snprintf(decl, sizeof decl, "let v%u = ", i);
    put_str(g, decl);
    expression(g, 0);
    put_str(g, ";\n");
    g->vars++;
  }
  for (i = 0; i < nstmts; i++) {
    expand(g, choose(g, top_statements, COUNT(top_statements)), 0);
    put_str(g, ";\n");
  }
  expand(g, choose(g, endings, COUNT(endings)), 0);
}

/* ---- capabilities -------------------------------------------------------------- */

/* Per family: the wildcard, or one name (so some calls are refused). */
static const char *const cap_choices[][2] = {
    {"state:read:*", "state:read:count"},
    {"state:write:*", "state:write:fresh"},
    {"events:emit:*", "events:emit:ev"},
    {"view:update:*", "view:update:c"},
    {"ext:*", "ext:svc"},
};

static void context_for(fz_bytes_t *in, uint8_t **ctx, size_t *ctx_len) {
  const char *caps[COUNT(cap_choices)];
  unsigned bits = fz_pick(in, 256), i;
  for (i = 0; i < COUNT(cap_choices); i++) caps[i] = cap_choices[i][(bits >> i) & 1];
  fz_context(caps, COUNT(caps), ctx, ctx_len);
}

/* ---- libFuzzer ------------------------------------------------------------------- */

static char *src_buf;
static int print_src;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  nx_config_t cfg;
  (void)argc;
  (void)argv;
  fz_config(&cfg);
  cfg.max_cache_bytes = 4u << 20; /* every handler is new: keep the cache small */
  fz_runtime_start(&cfg);
  src_buf = malloc(SRC_CAP);
  if (src_buf == NULL) fz_fail("out of memory");
  print_src = getenv("FUZZ_PRINT") != NULL;
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_bytes_t in = {data, size, 0};
  gen_t g = {&in, src_buf, 0, 0, 0, 0};
  uint8_t *ctx;
  size_t ctx_len;

  context_for(&in, &ctx, &ctx_len);
  handler(&g);
  if (print_src)
    fprintf(stderr, "---- handler (%zu bytes)\n%.*s\n----\n", g.len, (int)g.len, g.src);
  if (!g.overflow) fz_finish(fz_execute(NX_MODE_SOURCE, g.src, g.len, ctx, ctx_len), &in);
  free(ctx);
  return 0;
}

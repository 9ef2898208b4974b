'use strict';
// The workloads: handler source, the input of iteration i, the answer every
// subject must give (checked once per subject before timing), and how many
// samples to take. A "call" is what a subject runs:
//   { code, state, args, registry, extensions, timeoutMs }
// registry: extension names -> method names (what the sandbox may call);
// extensions: the host implementations, the same objects for every subject.
const assert = require('assert');

const BASE_N = Number(process.env.BENCH_N || 2000);
// Slow workloads take a share of BENCH_N, so the default suite runs in a few
// minutes; a floor keeps p99 meaningful-ish when BENCH_N is small.
const count = (share, floor) => Math.max(floor, Math.round(BASE_N * share));

const TIMEOUT_MS = 5000;

// The host side of the extension calls: answers at once (a resolved
// promise), so the figures are the cost of the round trip itself.
const HTTP = { http: { async get(x) { return x; } } };
const HTTP_REGISTRY = { http: ['get'] };

// Fixed inputs, built once: the transform's records and the large state.
function makeRecords(n) {
  const tags = ['alpha', 'beta', 'gamma', 'delta', 'epsilon'];
  return Array.from({ length: n }, (_, i) => ({
    id: i,
    first: `First${i}`,
    last: `last-name-${i}`,
    email: `User.${i}@Example.COM`,
    active: i % 3 !== 0,
    score: (i * 37) % 1000 / 7,
    tags: [tags[i % 5], tags[(i * 3) % 5]],
  }));
}
const RECORDS = makeRecords(1000);
const BIG_STATE = { items: Array.from({ length: 10000 }, (_, i) => ({ id: i, name: `item ${i}`, done: i % 2 === 0 })) };

const TRANSFORM = `const out = $args.records
  .filter((r) => r.active)
  .map((r) => ({ id: r.id, label: r.last.toUpperCase() + ', ' + r.first, email: r.email.toLowerCase(), tags: r.tags.join('|'), score: Math.round(r.score * 100) / 100 }));
const text = JSON.stringify(out);
const back = JSON.parse(text);
let sum = 0;
for (const r of back) sum += r.score;
$state.report = { count: back.length, bytes: text.length };
return { count: back.length, bytes: text.length, sum: Math.round(sum * 100) / 100, first: back[0].label, last: back[back.length - 1].email };`;

// The transform's answer, computed by plain host code (not by a subject).
function transformAnswer(records) {
  const out = records
    .filter((r) => r.active)
    .map((r) => ({ id: r.id, label: `${r.last.toUpperCase()}, ${r.first}`, email: r.email.toLowerCase(), tags: r.tags.join('|'), score: Math.round(r.score * 100) / 100 }));
  const text = JSON.stringify(out);
  let sum = 0;
  for (const r of out) sum += r.score;
  return {
    ret: { count: out.length, bytes: text.length, sum: Math.round(sum * 100) / 100, first: out[0].label, last: out[out.length - 1].email },
    report: { count: out.length, bytes: text.length },
  };
}
const TRANSFORM_ANSWER = transformAnswer(RECORDS);

// Shorthand for the answers: a subject's normalised result is
// { returnValue, stateMutations, events }.
function expect(result, returnValue, mutations, events) {
  assert.deepStrictEqual(result.returnValue, returnValue, 'return value');
  assert.deepStrictEqual(result.stateMutations, mutations.map(([key, value]) => ({ key, operation: 'set', value })), 'state mutations');
  assert.deepStrictEqual(result.events, events.map(([name, payload]) => ({ name, payload })), 'events');
}

const call = (code, state, extra = {}) => ({ code, state, args: {}, registry: {}, extensions: {}, timeoutMs: TIMEOUT_MS, ...extra });

// topic: which of a subject's notes (what it did) applies, see peers/index.js.
// kind 'latency': sequential awaited calls, one of each subject per
// iteration. 'cold': a new runtime/isolate/VM per sample. 'throughput':
// 64 concurrent callers on 1 and on 2 workers.
const WORKLOADS = [
  {
    id: 'trivial',
    topic: null,
    title: 'Trivial handler',
    kind: 'latency',
    n: count(1, 200),
    code: "$state.count++; $emit('changed', $state.count); return $state.count",
    call(i) { return call(this.code, { count: i }); },
    check(r, i) { expect(r, i + 1, [['count', i + 1]], [['changed', i + 1]]); },
  },
  {
    id: 'ext1',
    topic: 'ext',
    title: 'One extension call',
    kind: 'latency',
    n: count(0.5, 100),
    code: 'const v = await $ext.http.get($state.count); $state.count = v + 1; return v',
    call(i) { return call(this.code, { count: i }, { registry: HTTP_REGISTRY, extensions: HTTP }); },
    check(r, i) { expect(r, i, [['count', i + 1]], []); },
  },
  {
    id: 'ext3',
    topic: 'ext',
    title: 'Three parallel extension calls (Promise.all)',
    kind: 'latency',
    n: count(0.5, 100),
    code: 'const [a, b, c] = await Promise.all([$ext.http.get($state.count), $ext.http.get($state.count + 1), $ext.http.get($state.count + 2)]); $state.count = a + b + c; return [a, b, c]',
    call(i) { return call(this.code, { count: i }, { registry: HTTP_REGISTRY, extensions: HTTP }); },
    check(r, i) { expect(r, [i, i + 1, i + 2], [['count', 3 * i + 3]], []); },
  },
  {
    id: 'fib',
    topic: 'compute',
    title: 'fib(25)',
    kind: 'latency',
    n: count(0.025, 15),
    code: 'function fib(n) { return n < 2 ? n : fib(n - 1) + fib(n - 2) } return fib(25)',
    call() { return call(this.code, {}); },
    check(r) { expect(r, 75025, [], []); },
  },
  {
    id: 'transform',
    topic: 'transform',
    title: 'JSON/string transform of 1 000 records',
    kind: 'latency',
    n: count(0.15, 50),
    code: TRANSFORM,
    call() { return call(this.code, {}, { args: { records: RECORDS } }); },
    check(r) { expect(r, TRANSFORM_ANSWER.ret, [['report', TRANSFORM_ANSWER.report]], []); },
  },
  {
    id: 'bigState',
    topic: 'bigState',
    title: 'Large state (10 000 items): read one item, write one key',
    kind: 'latency',
    n: count(0.1, 50),
    constantState: true, // the same state object every call (see ours' createState adapter)
    code: 'const item = $state.items[1234]; $state.selected = item.id; return item.name',
    call() { return call(this.code, BIG_STATE); },
    check(r) { expect(r, 'item 1234', [['selected', 1234]], []); },
  },
  {
    id: 'bigStateNoop',
    topic: 'bigStateNoop',
    title: 'Large state (10 000 items), handler `return 1`',
    kind: 'latency',
    n: count(0.1, 50),
    constantState: true,
    code: 'return 1',
    call() { return call(this.code, BIG_STATE); },
    check(r) { expect(r, 1, [], []); },
  },
  {
    id: 'cold',
    topic: 'cold',
    title: 'Cold start: a new runtime/isolate/VM to the first result (trivial handler)',
    kind: 'cold',
    n: count(0.025, 20),
    code: "$state.count++; $emit('changed', $state.count); return $state.count",
    call(i) { return call(this.code, { count: i }); },
    check(r, i) { expect(r, i + 1, [['count', i + 1]], [['changed', i + 1]]); },
  },
  ...[1, 2].map((workers) => ({
    id: `throughput${workers}`,
    topic: 'throughput',
    title: `Throughput: trivial handler, 64 concurrent callers, ${workers} worker${workers > 1 ? 's' : ''}`,
    kind: 'throughput',
    workers,
    concurrency: 64,
    perRound: 512, // executions per subject per round
    n: count(0.005, 6), // rounds
    code: "$state.count++; $emit('changed', $state.count); return $state.count",
    call(i) { return call(this.code, { count: i }); },
    check(r, i) { expect(r, i + 1, [['count', i + 1]], [['changed', i + 1]]); },
  })),
];

module.exports = { WORKLOADS, BASE_N };

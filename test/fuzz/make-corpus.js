'use strict';
// Writes the seed corpora of the libFuzzer harnesses (test/fuzz/corpus/<harness>/):
//   fuzz_mpack     msgpackr encodings of values lib/index.js sends, packed as it packs them
//   fuzz_bytecode  bytecode bodies (the precompileHandler() buffer without its header)
//   fuzz_encode    byte strings for the handler grammar (fixed pseudo-random bytes)
// Needs the built addon (npm run build). Run again when the engine changes:
//   node test/fuzz/make-corpus.js
const fs = require('fs');
const path = require('path');
const { Packr } = require('msgpackr');
const { NexusRuntime } = require('../..');

const root = path.join(__dirname, 'corpus');
const packr = new Packr({ useRecords: false, moreTypes: true, mapsAsObjects: true });

function write(harness, name, bytes) {
  const dir = path.join(root, harness);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, name), bytes);
}

function nested(depth) {
  let v = 'leaf';
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

const VALUES = {
  'context': {
    panelId: 'p', handlerName: 'h', stateSnapshot: { count: 41, obj: { a: [1, 2] } },
    args: { step: 1 }, scope: {}, capabilities: ['state:read:*', 'ext:svc'],
    extensionRegistry: { svc: ['get'] },
  },
  'numbers': [0, -1, 127, 128, -33, 65536, 2 ** 31, 2 ** 32, -(2 ** 31) - 1, 1.5, -0, NaN, Infinity],
  'bigints': [2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n, 5n],
  'strings': ['', 'abc', 'é中', '\u{1F600}', 'x'.repeat(300), '\u0000'],
  'typed-arrays': [new Uint8Array([1, 2, 3]), new Float64Array([1.5]), new Int16Array([-1, 2]),
    new BigInt64Array([-1n]), new Uint8ClampedArray(2), new ArrayBuffer(4)],
  'dates': [new Date(0), new Date(-1), new Date(8.64e15), new Date(1700000000123)],
  'undefined-null': { u: undefined, n: null, t: true, f: false },
  'proto-key': JSON.parse('{"__proto__": {"polluted": 1}, "constructor": 2, "0": 3, "-1": 4}'),
  'nested-31': nested(31),
  'wide-map': Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`k${i}`, i])),
  'buffer': Buffer.from('bytes'),
  'mixed': [{ a: [1, { b: 'c' }] }, [[[]]], {}, 'end'],
};

function mpackCorpus() {
  for (const [name, value] of Object.entries(VALUES)) write('fuzz_mpack', name, packr.pack(value));
}

const HANDLERS = {
  'return-1': 'return 1',
  'state': '$state.count = ($state.count || 0) + 1; return $state.count',
  'ext': 'const r = await $ext.svc.get(1); $state.fresh = r; return r',
  'emit-view-log': "$emit('ev', { a: [1, 2] }); $view.custom('c', { x: 1 }); $log('x', 2); return 'x'.repeat(3)",
  'throw': "throw new Error('boom')",
  'loop': 'let s = 0; for (let i = 0; i < 10; i++) s += i; return [s, 2n, 1.5, null]',
  'getter': 'return { get g() { return new Date(0) }, t: new Uint8Array([1, 2]) }',
  'class': 'class A { #x = 1; get x() { return this.#x } } return new A().x',
  'generator': 'function* g() { yield 1; yield 2 } return [...g()]',
  'regexp': "return 'a-b-c'.replace(/-/g, '+').split('+')",
  'closures': 'const mk = (n) => () => n * 2; return [1, 2, 3].map((n) => mk(n)())',
  'try-finally': "try { JSON.parse('{') } catch (e) { return e.name } finally { $log('done') }",
  'destructure': 'const { step = 0, ...rest } = $args; const [a, , b] = [1, 2, 3]; return { step, rest, a, b }',
  'async-all': 'const [a, b] = await Promise.all([$ext.svc.get(1), $ext.svc.put(2)]); return `${a}${b}`',
};

// The precompiled buffer's header (src/compiler.c): 76 fixed bytes, then
// the engine tag (its length at offset 6), then the bytecode.
function body(buf) {
  const elen = buf[6] | (buf[7] << 8);
  return Buffer.from(buf.subarray(76 + elen));
}

async function bytecodeCorpus() {
  const rt = new NexusRuntime({ workers: 1 });
  try {
    for (const [name, code] of Object.entries(HANDLERS)) {
      write('fuzz_bytecode', name, body(await rt.precompileHandler(code)));
    }
  } finally {
    await rt.shutdown();
  }
}

// mulberry32: the same bytes on every run.
function random(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function encodeCorpus() {
  const rand = random(20240601);
  [4, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024].forEach((len, i) => {
    const bytes = Buffer.alloc(len);
    for (let j = 0; j < len; j++) bytes[j] = Math.floor(rand() * 256);
    write('fuzz_encode', `random-${String(i).padStart(2, '0')}-${len}`, bytes);
  });
}

mpackCorpus();
encodeCorpus();
bytecodeCorpus().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});

'use strict';
// The state bytes and offsets runtime.createState hands the native side are
// checked there, not trusted: each case below corrupts one part of a valid
// encoding (an item, an offset, the key index, a count) and hands it to the
// native module directly. The execution must end with a clear error, or
// succeed when the handler never reaches the damage; the process must not
// crash, and the runtime must keep answering. Cases run in a child process.
const test = require('node:test');
const assert = require('node:assert/strict');
const { Packr } = require('msgpackr');
const { runInChild } = require('./harness');
const { runtime } = require('../helpers');

const packr = new Packr({ useRecords: false, moreTypes: true, mapsAsObjects: true });
const rt = runtime({ workers: 1 });
test.after(() => rt.shutdown());

const items = Array.from({ length: 200 }, (_, i) => ({ id: i, name: i === 11 ? 'n'.repeat(60) : `item ${i}` }));
const byId = Object.fromEntries(items.slice(0, 100).map((it) => [`k${it.id}`, it.id]));

function bin32(buf) {
  const h = Buffer.alloc(5);
  h[0] = 0xc6;
  h.writeUInt32BE(buf.length, 1);
  return Buffer.concat([h, buf]);
}

// The context lib/index.js would send, with `damage` applied to copies of
// the state's parts first.
function contextBytes(damage) {
  const enc = rt.createState({ items, byId }).encoded();
  const parts = { bytes: Buffer.from(enc.bytes), index: Buffer.from(enc.index), items: Buffer.from(enc.items) };
  damage(parts);
  const head = Buffer.from(packr.pack({ panelId: 'p', handlerName: 'h', args: {}, capabilities: ['state:read:*', 'state:write:*', 'events:emit:*'], scope: {}, extensionRegistry: {} }));
  head.writeUInt16BE(head.readUInt16BE(1) + 3, 1);
  return Buffer.concat([head, packr.pack('stateIndex'), bin32(parts.index), packr.pack('stateItems'), bin32(parts.items), packr.pack('stateSnapshot'), parts.bytes]);
}

// Where item i of `items` starts in the state bytes: its value offset plus
// the item's own offset (lib/state.js lays the key out first).
function itemAt(parts, i) {
  const itemsValue = parts.index.readUInt32LE(4);
  return itemsValue + parts.items.readUInt32LE(4 + 4 * i);
}

const BAD = 'context.stateSnapshot is not a valid MessagePack map';
const CASES = [
  ['an item with a byte MessagePack never uses', (p) => { p.bytes[itemAt(p, 7) + 1] = 0xc1; }, 'return $state.items[7]', BAD],
  ['the same damage, not reached', (p) => { p.bytes[itemAt(p, 7) + 1] = 0xc1; }, 'return $state.items[8].id', 8],
  ['the same damage, the container emitted whole', (p) => { p.bytes[itemAt(p, 7) + 1] = 0xc1; }, '$state.items[1]; $emit("e", $state.items); return 1', BAD],
  ['the same damage, every item read', (p) => { p.bytes[itemAt(p, 7) + 1] = 0xc1; }, 'return $state.items.map((x) => x.id).length', BAD],
  ['an item offset into the middle of an item', (p) => { p.items.writeUInt32LE(p.items.readUInt32LE(4 + 4 * 5) + 1, 4 + 4 * 5); }, 'return $state.items[5]', BAD],
  ['item offsets out of order', (p) => { p.items.writeUInt32LE(p.items.readUInt32LE(4 + 4 * 9), 4 + 4 * 3); }, 'return $state.items[1].id', BAD],
  ['an item offset past the end', (p) => { p.items.writeUInt32LE(0x7fffffff, 4 + 4 * 199); }, 'return $state.items[0].id', BAD],
  ['an item list longer than its buffer', (p) => { p.items.writeUInt32LE(0xffffffff, 0); }, 'return $state.byId.k1', BAD],
  ['the same, with a handler that never reads $state (nothing is read)', (p) => { p.items.writeUInt32LE(0xffffffff, 0); }, 'return 1', 1],
  ['a key index pointing between keys', (p) => { p.index.writeUInt32LE(p.index.readUInt32LE(0) + 1, 0); }, 'return $state.count', BAD],
  ['an item rewritten as arrays nested ~75 levels deep (well-formed, too deep)', (p) => {
    const at = itemAt(p, 11);
    const end = itemAt(p, 12);
    p.bytes.fill(0x91, at, end - 1); // fixarray of one item, over and over
    p.bytes[end - 1] = 0xc0; // nil: exactly the item's length
  }, 'return $state.items[11]', BAD],
  ['a map entry whose key is damaged', (p) => {
    const byIdValue = p.index.readUInt32LE(12);
    const count = p.items.readUInt32LE(0);
    const at = byIdValue + p.items.readUInt32LE(4 + 4 * count + 4 + 4 * 3);
    p.bytes[at] = 0xc1;
  }, 'return $state.byId.k50', BAD],
];

test('damaged state bytes and offsets end the execution with an error, never the process', async () => {
  const results = await runInChild(CASES.map(([name, damage, code]) => ({
    name,
    script: `
      const native = require(process.env.NX_PKG + '/lib/native');
      const { Packr } = require(require.resolve('msgpackr', { paths: [process.env.NX_PKG] }));
      const unpack = (b) => new Packr({ useRecords: false, moreTypes: true, mapsAsObjects: true }).unpack(b);
      const n = new native.Runtime(rt.config); // rt.config: the run's memoryCheck included // rt.config: the run's memoryCheck included
      try {
        return strip(unpack(await n.execute(${JSON.stringify(code)}, Buffer.from(${JSON.stringify(contextBytes(damage).toString('base64'))}, 'base64'), 5000)));
      } finally {
        await n.shutdown();
      }`,
  })));
  CASES.forEach(([name, , , want], i) => {
    const { result, next, crashed } = results[i];
    assert.equal(crashed, undefined, `${name}: ${crashed}`);
    if (want === BAD) {
      assert.equal(result.status, 'error', `${name}: ${JSON.stringify(result)}`);
      assert.match(result.error.message, /not a valid MessagePack map/, name);
    } else {
      assert.deepEqual(result.returnValue, want, `${name}: ${JSON.stringify(result)}`);
    }
    assert.equal(next, true, `${name}: the runtime stopped answering`);
  });
});

test('the undamaged bytes give the expected results (the cases above start from a valid state)', async () => {
  const native = require('../../lib/native');
  const n = new native.Runtime(rt.config); // rt.config: the run's memoryCheck included
  try {
    const r = packr.unpack(await n.execute('return [$state.items[7].id, $state.byId.k50, $state.items.length]', contextBytes(() => {}), 5000));
    assert.equal(r.status, 'success', JSON.stringify(r.error));
    assert.deepEqual(r.returnValue, [7, 50, 200]);
  } finally {
    await n.shutdown();
  }
});

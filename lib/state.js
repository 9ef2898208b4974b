'use strict';
// NexusState (runtime.createState): a panel's state kept as MessagePack,
// one encoding per top-level key. An execution is handed the encodings as
// they are, so its cost on the host does not grow with the parts of the
// state it leaves alone; apply() re-encodes only the keys a result changed.
//
// The state holds no live host objects: values are encoded when they come
// in and decoded into fresh copies when read, so a host cannot change a
// cached encoding by mutating an object it still holds.

const { checkCrossable } = require('./values');

// Containers above this many items are decoded lazily in the sandbox
// (NX_MP_LAZY_MIN, src/mpack.h): their items are encoded one by one here,
// so the native side gets each item's offset and never walks the rest.
const LAZY_MIN = 64;

function header(n, fix, b16, b32) {
  if (n < 16) return Buffer.from([fix | n]);
  if (n < 65536) return Buffer.from([b16, n >> 8, n & 0xff]);
  return Buffer.from([b32, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}

const isPlain = (v) => v !== null && typeof v === 'object' && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null);

class NexusState {
  #packr;
  #entries = new Map(); // key -> [keyBytes, valueBytes, itemOffsets | null]
  #bytes = null; // the whole map and its index, built on demand
  #index = null;
  #items = null;

  constructor(packr, values) {
    this.#packr = packr;
    if (values === null || typeof values !== 'object' || Array.isArray(values)) {
      throw new TypeError('createState(values): values must be an object');
    }
    for (const key of Object.keys(values)) this.set(key, values[key]);
  }

  // One key's value, checked and encoded now.
  set(key, value) {
    if (typeof key !== 'string') throw new TypeError('state keys must be strings');
    checkCrossable(value, `state.${key}`);
    const [encoded, offsets] = this.#encode(value);
    const entry = this.#entries.get(key);
    if (entry) {
      entry[1] = encoded;
      entry[2] = offsets;
    } else {
      this.#entries.set(key, [Buffer.from(this.#packr.pack(key)), encoded, offsets]);
    }
    this.#bytes = null;
    return this;
  }

  // The value's MessagePack (a copy: msgpackr hands out views of a buffer
  // it shares between calls) and, for a large array or plain object, where
  // each item starts in it. The same bytes msgpackr writes for the whole
  // value, but for the width of the container's header.
  #encode(value) {
    const packr = this.#packr;
    let parts = null;
    if (Array.isArray(value) && value.length > LAZY_MIN) {
      parts = [header(value.length, 0x90, 0xdc, 0xdd)];
      for (let i = 0; i < value.length; i++) parts.push(packr.pack(value[i]));
    } else if (isPlain(value)) {
      const keys = Object.keys(value);
      if (keys.length > LAZY_MIN) {
        parts = [header(keys.length, 0x80, 0xde, 0xdf)];
        for (const k of keys) parts.push(Buffer.concat([packr.pack(k), packr.pack(value[k])]));
      }
    }
    if (parts === null) return [Buffer.from(packr.pack(value)), null];
    const offsets = new Uint32Array(parts.length - 1);
    let at = parts[0].length;
    for (let i = 1; i < parts.length; i++) {
      offsets[i - 1] = at;
      at += parts[i].length;
    }
    return [Buffer.concat(parts, at), offsets];
  }

  delete(key) {
    const had = this.#entries.delete(key);
    if (had) this.#bytes = null;
    return had;
  }

  has(key) {
    return this.#entries.has(key);
  }

  keys() {
    return [...this.#entries.keys()];
  }

  get size() {
    return this.#entries.size;
  }

  // A fresh copy of one value (undefined when absent).
  get(key) {
    const entry = this.#entries.get(key);
    return entry ? this.#packr.unpack(entry[1]) : undefined;
  }

  // A fresh plain object with every value.
  toObject() {
    const out = {};
    for (const [key, [, value]] of this.#entries) {
      Object.defineProperty(out, key, { value: this.#packr.unpack(value), writable: true, enumerable: true, configurable: true });
    }
    return out;
  }

  toJSON() {
    return this.toObject();
  }

  // A result's stateMutations, in order: the keys they name are encoded
  // again, the others keep their encodings.
  apply(mutations) {
    if (!Array.isArray(mutations)) throw new TypeError('apply(mutations): mutations must be an array');
    mutations.forEach((m, i) => {
      if (m === null || typeof m !== 'object' || typeof m.key !== 'string') {
        throw new TypeError(`mutations[${i}] must be { key, operation, value }`);
      }
      if (m.operation === 'delete') this.delete(m.key);
      else if (m.operation === 'set') this.set(m.key, m.value);
      else throw new TypeError(`mutations[${i}].operation must be 'set' or 'delete'`);
    });
    return this;
  }

  // The MessagePack map the native side reads; per key the offsets of its
  // key and value (little-endian u32 pairs), so the native side finds a key
  // without walking the values before it; and per key its items' offsets
  // (a u32 count, then the offsets), none for a small value.
  encoded() {
    if (this.#bytes === null) {
      const n = this.#entries.size;
      const header = n < 16 ? Buffer.from([0x80 | n]) : n < 65536 ? Buffer.from([0xde, n >> 8, n & 0xff]) : Buffer.from([0xdf, n >>> 24, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
      const parts = [header];
      const index = Buffer.alloc(8 * n);
      let at = header.length;
      let i = 0;
      let nitems = 0;
      for (const [kb, vb, offsets] of this.#entries.values()) {
        index.writeUInt32LE(at, 8 * i);
        index.writeUInt32LE(at + kb.length, 8 * i + 4);
        parts.push(kb, vb);
        at += kb.length + vb.length;
        nitems += 1 + (offsets ? offsets.length : 0);
        i++;
      }
      if (at > 0xffffffff) throw new RangeError('state is larger than 4 GiB');
      const items = new Uint32Array(nitems);
      let j = 0;
      for (const [, , offsets] of this.#entries.values()) {
        items[j++] = offsets ? offsets.length : 0;
        if (offsets) {
          items.set(offsets, j);
          j += offsets.length;
        }
      }
      this.#bytes = Buffer.concat(parts, at);
      this.#index = index;
      this.#items = Buffer.from(items.buffer, items.byteOffset, items.byteLength);
    }
    return { bytes: this.#bytes, index: this.#index, items: this.#items };
  }
}

module.exports = { NexusState };

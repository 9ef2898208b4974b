'use strict';
// Checks that a host value can cross into a sandbox before it is encoded:
// msgpackr would silently turn functions into undefined and overflow on
// cycles. The error names the path, e.g. "context.stateSnapshot.user.save".
// This walk runs on every call over the whole context, so it allocates
// nothing per value: the path is kept as a stack and only formatted on error.

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;
const ObjectProto = Object.prototype;
const getProto = Object.getPrototypeOf;
const isArray = Array.isArray;
const isView = ArrayBuffer.isView;

// The addon accepts context MessagePack at most limits.hostDepth containers
// deep; the context map and its field take two of them (src/contract.js).
const { limits: LIMITS } = require('../src/contract');

const MAX_LEVEL = LIMITS.hostDepth;

const REFUSED = [
  [Map, 'a Map'],
  [Set, 'a Set'],
  [WeakMap, 'a WeakMap'],
  [WeakSet, 'a WeakSet'],
  [Promise, 'a Promise'],
  [RegExp, 'a RegExp'],
  [Error, 'an Error'],
  [DataView, 'a DataView'],
];

class Walk {
  constructor(root) {
    this.root = root;
    this.ancestors = new Array(MAX_LEVEL + 2); // objects on the current path
    this.keys = new Array(MAX_LEVEL + 2); // key or index leading to each level
  }

  fail(level, what) {
    let path = this.root;
    for (let i = 3; i <= level; i++) {
      const k = this.keys[i];
      path += typeof k === 'number' ? `[${k}]` : `.${k}`;
    }
    throw new TypeError(`${path} is ${what} and cannot cross into the sandbox`);
  }

  // Values that need a look: objects, functions, symbols, BigInts.
  static interesting(v) {
    const t = typeof v;
    return t === 'object' ? v !== null : t === 'function' || t === 'symbol' || t === 'bigint';
  }

  value(v, level) {
    switch (typeof v) {
      case 'function':
        return this.fail(level, 'a function');
      case 'symbol':
        return this.fail(level, 'a Symbol');
      case 'bigint':
        if (v < INT64_MIN || v > UINT64_MAX) this.fail(level, 'a BigInt outside the 64-bit range');
        return undefined;
      default:
        return this.object(v, level);
    }
  }

  object(o, level) {
    const proto = getProto(o);
    const array = isArray(o);
    if (proto !== ObjectProto && proto !== null && !array) {
      if (o instanceof Date || o instanceof ArrayBuffer) return undefined;
      if (isView(o) && !(o instanceof DataView)) return undefined;
      for (const [ctor, what] of REFUSED) if (o instanceof ctor) this.fail(level, what);
    }
    if (level > MAX_LEVEL) this.fail(level, `nested deeper than ${LIMITS.contextFieldDepth} levels`);
    // Only an ancestor can close a cycle, and there are at most MAX_LEVEL.
    for (let i = 2; i < level; i++) if (this.ancestors[i] === o) this.fail(level, 'a circular reference');
    this.ancestors[level] = o;
    if (array) {
      for (let i = 0; i < o.length; i++) {
        const v = o[i];
        if (Walk.interesting(v)) {
          this.keys[level + 1] = i;
          this.value(v, level + 1);
        }
      }
    } else {
      const keys = Object.keys(o);
      for (let i = 0; i < keys.length; i++) {
        const v = o[keys[i]];
        if (Walk.interesting(v)) {
          this.keys[level + 1] = keys[i];
          this.value(v, level + 1);
        }
      }
    }
    this.ancestors[level] = undefined;
    return undefined;
  }
}

// `value` is a field of the context (level 2: the context map is level 1).
function checkCrossable(value, path) {
  if (Walk.interesting(value)) new Walk(path).value(value, 2);
}

module.exports = { checkCrossable };

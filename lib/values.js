'use strict';
// Checks that a host value can cross into a sandbox before it is encoded:
// msgpackr would silently drop functions and symbol keys, and overflow on
// cycles. The error names the path, e.g. "context.stateSnapshot.user.save".

const INT64_MIN = -(2n ** 63n);
const UINT64_MAX = 2n ** 64n - 1n;

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

function fail(path, what) {
  throw new TypeError(`${path} is ${what} and cannot cross into the sandbox`);
}

function checkCrossable(value, path, seen = new Set()) {
  switch (typeof value) {
    case 'undefined':
    case 'boolean':
    case 'number':
    case 'string':
      return;
    case 'bigint':
      if (value < INT64_MIN || value > UINT64_MAX) fail(path, 'a BigInt outside the 64-bit range');
      return;
    case 'function':
      fail(path, 'a function');
      return;
    case 'symbol':
      fail(path, 'a Symbol');
      return;
    default:
      break;
  }
  if (value === null) return;
  if (value instanceof Date || value instanceof ArrayBuffer) return;
  for (const [ctor, what] of REFUSED) if (value instanceof ctor) fail(path, what);
  if (ArrayBuffer.isView(value)) return;
  if (seen.has(value)) fail(path, 'a circular reference');
  seen.add(value);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) checkCrossable(value[i], `${path}[${i}]`, seen);
  } else {
    if (Object.getOwnPropertySymbols(value).length > 0) fail(path, 'an object with symbol-keyed properties');
    for (const key of Object.keys(value)) checkCrossable(value[key], `${path}.${key}`, seen);
  }
  seen.delete(value);
}

module.exports = { checkCrossable };

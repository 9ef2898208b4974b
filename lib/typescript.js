'use strict';
// TypeScript handlers. The types are stripped here, on the host, by amaro
// (Node's own type stripper: swc compiled to wasm) in strip-only mode, which
// blanks every annotation out with whitespace: the JavaScript it returns has
// each line, and each position in it, where the TypeScript has them. The
// sandbox compiles that JavaScript, while the native side keeps the source as
// given: the compile cache keys on it and the language, and error locations
// and snippets point into it.
//
// amaro is 3.7 MB of JavaScript holding its wasm; it is loaded on the first
// TypeScript handler (a few hundred milliseconds), never when this package is
// required.

const path = require('path');
const { handler: HANDLER, languages: LANGUAGES } = require('../src/contract');

const OPTIONS = ['language'];

// The language of a call's options: 'js' unless options.language says 'ts'.
// `where` names the options in messages ("options", "options.language").
function languageOf(options, where = 'options', known = OPTIONS) {
  if (options === undefined) return 'js';
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${where} must be an object`);
  }
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) throw new TypeError(`${where}.${key} is not a known option`);
  }
  const language = options.language;
  if (language === undefined) return 'js';
  if (typeof language !== 'string') throw new TypeError(`${where}.language must be a string`);
  if (!LANGUAGES.includes(language)) {
    throw new RangeError(`${where}.language must be one of ${LANGUAGES.map((l) => `'${l}'`).join(', ')}, got ${JSON.stringify(language)}`);
  }
  return language;
}

// ---- amaro ------------------------------------------------------------------

let amaro = null;

// A throw that is not swc's report of the source (a RangeError from the wasm
// stack running out on deeply nested types, say) can leave the wasm instance
// broken for every later call, so the next call loads a fresh one.
function unloadAmaro() {
  amaro = null;
  const index = require.resolve('amaro');
  delete require.cache[index];
  delete require.cache[path.join(path.dirname(index), 'internal.js')];
}

// The handler is stripped inside the runtime's own wrapper, as a script, so
// that exactly what the sandbox compiles parses here: top-level `return` and
// `await`, sloppy-mode code. The prefix ends its line, so lines inside are the
// handler's plus `prefixLines`.
function transform(code) {
  amaro ??= require('amaro');
  return amaro.transformSync(HANDLER.prefix + code + HANDLER.suffix, { mode: 'strip-only', module: false }).code;
}

const describe = (err) => {
  try {
    return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  } catch {
    return 'unknown error';
  }
};

const isSwcError = (e) => e !== null && typeof e === 'object' && typeof e.code === 'string' && typeof e.startLine === 'number';

// ---- positions ----------------------------------------------------------------

// swc reports display columns: a tab counts 4, a wide character 2, a
// combining mark 0. The same source with every tab and non-ASCII character
// replaced by one ASCII character of its class (line terminators kept) fails
// at the same place, and there a display column is a UTF-16 column.
const shadowOf = (code) => code.replace(/[\t\u0080-\u2027\u202a-\uffff]/g, (c) => (/\s/.test(c) ? ' ' : 'a'));

// Offset into `code` of (line, column) of the wrapped source: swc's lines
// (1-based) and UTF-16 columns (0-based). Out of the handler (the wrapper's
// last line: code that ends too early) is its end.
function offsetOf(code, line, column) {
  let at = 0;
  for (let l = 1 + HANDLER.prefixLines; l < line; l++) {
    const m = /\r\n?|[\n\u2028\u2029]/g;
    m.lastIndex = at;
    if (m.exec(code) === null) return code.length;
    at = m.lastIndex;
  }
  if (line <= HANDLER.prefixLines) return 0;
  return Math.min(at + column, code.length);
}

// Where swc's error is, as an offset into `code`.
function errorOffset(code, err) {
  try {
    transform(shadowOf(code));
  } catch (shadowed) {
    if (isSwcError(shadowed) && shadowed.message === err.message) {
      return offsetOf(code, shadowed.startLine, shadowed.startColumn);
    }
    if (!isSwcError(shadowed)) unloadAmaro();
  }
  // Not found the same way: count tabs as swc does and every other
  // character as one column.
  const start = offsetOf(code, err.startLine, 0);
  let at = start;
  for (let col = 0; at < code.length && col < err.startColumn && !/[\r\n\u2028\u2029]/.test(code[at]); at++) {
    col += code[at] === '\t' ? 4 : 1;
  }
  return at;
}

// Remembers the last stripped sources: a handler runs many times, and the
// native side finds its cached bytecode only after the stripping, which costs
// a few hundred microseconds for a handler of a kilobyte (a memo hit: a few).
// Bounded by the UTF-16 units it holds; the least recently used go first.
const MEMO_UNITS = 4 << 20;
const memo = new Map();
let memoUnits = 0;

function remember(code, entry) {
  entry.units = code.length + entry.js.length + (entry.engineJs === entry.js ? 0 : entry.engineJs.length);
  if (entry.units > MEMO_UNITS / 8) return entry;
  memo.set(code, entry);
  memoUnits += entry.units;
  for (const [key, old] of memo) {
    if (memoUnits <= MEMO_UNITS) break;
    memo.delete(key);
    memoUnits -= old.units;
  }
  return entry;
}

// The UTF-8 length of each UTF-16 unit: a surrogate is half of a 4-byte
// character.
const utf8Units = (u) => (u < 0x80 ? 1 : u < 0x800 || (u >= 0xd800 && u <= 0xdfff) ? 2 : 3);

// The engine counts columns in UTF-8 bytes. A character blanked out with a
// type becomes one space, so a line whose removed types held non-ASCII text
// would be shorter in bytes than the source's line: widen those blanks to the
// character's byte length, so byte columns are the source's too.
function byteAligned(code, js) {
  if (!/[^\x00-\x7f]/.test(code)) return js;
  let out = '';
  let from = 0;
  for (let i = 0; i < code.length; i++) {
    const u = code.charCodeAt(i);
    if (u < 0x80 || js.charCodeAt(i) === u) continue;
    out += js.slice(from, i + 1) + ' '.repeat(utf8Units(u) - 1);
    from = i + 1;
  }
  return out + js.slice(from);
}

// Strips a handler's types. { js, engineJs } on success: js keeps UTF-16
// positions (what acorn counts), engineJs UTF-8 byte positions (what the
// engine counts). { message, offset } when the source cannot be stripped
// (the message is a SyntaxError's, the offset where it is in `code`): syntax
// strip-only mode refuses (an enum, a namespace, a parameter property), a
// syntax error, or a failure of the stripper itself (offset null).
function strip(code) {
  const known = memo.get(code);
  if (known) {
    memo.delete(code); // most recently used last
    memo.set(code, known);
    return known;
  }
  let wrapped;
  try {
    wrapped = transform(code);
  } catch (err) {
    if (!isSwcError(err)) {
      unloadAmaro();
      return { message: `TypeScript could not be stripped: the stripper failed (${describe(err)})`, offset: null };
    }
    return { message: err.message, offset: errorOffset(code, err) };
  }
  const { prefix, suffix } = HANDLER;
  if (wrapped.length !== prefix.length + code.length + suffix.length || !wrapped.startsWith(prefix) || !wrapped.endsWith(suffix)) {
    // Strip-only mode keeps every position; a stripper that did not is a bug.
    throw new Error('nexus-wasm-bridge: amaro did not keep the TypeScript positions');
  }
  const js = wrapped.slice(prefix.length, wrapped.length - suffix.length);
  return remember(code, { js, engineJs: byteAligned(code, js) });
}

// `offset` as the engine reports a location: 1-based line (by "\n") and
// 1-based column in UTF-8 bytes.
function engineLocation(code, offset) {
  const lineStart = code.lastIndexOf('\n', offset - 1) + 1;
  let line = 1;
  for (let i = code.indexOf('\n'); i !== -1 && i < offset; i = code.indexOf('\n', i + 1)) line++;
  return { line, column: Buffer.byteLength(code.slice(lineStart, offset)) + 1 };
}

module.exports = { languageOf, strip, engineLocation, OPTIONS };

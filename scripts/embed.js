'use strict';
// Build step: turns a JavaScript file into a C header holding its bytes, so
// the bootstrap ships inside the addon, with its SHA-256 and the engine
// package's version (both go into the precompiled-handler header).
// Usage: embed.js IN SYMBOL OUT
const fs = require('fs');
const crypto = require('crypto');
const [input, symbol, output] = process.argv.slice(2);
const bytes = fs.readFileSync(input);
const lines = [];
for (let i = 0; i < bytes.length; i += 16) {
  lines.push('  ' + Array.from(bytes.subarray(i, i + 16), (b) => `0x${b.toString(16).padStart(2, '0')},`).join(' '));
}
fs.writeFileSync(output, `/* Generated from ${input} by scripts/embed.js: do not edit. */
static const char ${symbol}[] = {
${lines.join('\n')}
  0x00};
static const unsigned long ${symbol}_len = ${bytes.length};
#define NX_BOOTSTRAP_SHA256 "${crypto.createHash('sha256').update(bytes).digest('hex')}"
#define NX_QJS_WASI_VERSION "${require('quickjs-wasi/package.json').version}"
`);

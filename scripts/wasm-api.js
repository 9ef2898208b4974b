'use strict';
// Build step: reads the wasm2c header (qjs_wasm.h) and writes one of two
// headers that let the addon carry the generated engine twice, once per
// memory-check variant (binding.gyp compiles src/wasm_rt/qjs_variant.c with
// NX_WASM_GUARD=0 and =1):
//   api    qjs_api.h: nx_qjs_api_t, a table of every function the module
//          exports, NX_QJS_API_INIT to fill one, and nx_qjs_<name>()
//          dispatchers that call through an instance's table.
//   names  qjs_guard_names.h: a #define per exported symbol giving the guard
//          variant its own prefix (Z_qjsg...), so the two objects link side
//          by side. Types (Z_qjs_instance_t) keep their names: both variants
//          share them, which is what makes one table type fit both.
// Usage: wasm-api.js api|names QJS_WASM_H OUT
const fs = require('fs');
const path = require('path');

const [mode, input, output] = process.argv.slice(2);
if (!['api', 'names'].includes(mode) || !input || !output) {
  console.error('usage: wasm-api.js api|names QJS_WASM_H OUT');
  process.exit(2);
}

// The module's own functions, then its exports: `RET Z_qjs...(PARAMS);`.
// wasm2c writes each prototype on one line.
const PROTO = /^(.+?)\s*\b(Z_qjs(?:_init_module|_instantiate|_free|Z_[A-Za-z0-9_]+))\((.*)\);$/;
const MODULE = { Z_qjs_init_module: 'module_init', Z_qjs_instantiate: 'module_instantiate', Z_qjs_free: 'module_free' };

const fns = [];
for (const line of fs.readFileSync(input, 'utf8').split('\n')) {
  const m = PROTO.exec(line);
  if (!m) continue;
  const [, ret, symbol, params] = m;
  const member = MODULE[symbol] ?? symbol.slice('Z_qjsZ_'.length);
  // Parameters are types; wasm2c names only a pointer (`Z_qjs_instance_t* instance`).
  const types = params.trim() === 'void' ? [] : params.split(',').map((p) => p.trim().replace(/\*\s*\w+$/, '*'));
  fns.push({ ret: ret.trim(), symbol, member, types });
}
const members = new Set(fns.map((f) => f.member));
if (fns.length < 4 || members.size !== fns.length || !['module_init', 'module_instantiate', 'module_free'].every((m) => members.has(m))) {
  console.error(`wasm-api.js: unexpected prototypes in ${input} (${fns.length} found)`);
  process.exit(1);
}

const head = `/* Generated from qjs_wasm.h by scripts/wasm-api.js: do not edit. */`;
let lines;
if (mode === 'names') {
  lines = [head, '/* The guard variant\'s symbols (see scripts/wasm-api.js). */'];
  for (const f of fns) lines.push(`#define ${f.symbol} ${f.symbol.replace(/^Z_qjs/, 'Z_qjsg')}`);
} else {
  lines = [
    head,
    '#ifndef NX_QJS_API_H',
    '#define NX_QJS_API_H',
    '',
    '#include "qjs_wasm.h"',
    '',
    '/* Every function of one compiled variant of the module. */',
    'typedef struct nx_qjs_api_s {',
    ...fns.map((f) => `  ${f.ret} (*${f.member})(${f.types.join(', ') || 'void'});`),
    '} nx_qjs_api_t;',
    '',
    '/* An initialiser naming the functions as the including file sees them. */',
    '#define NX_QJS_API_INIT \\',
    '  { \\',
    ...fns.map((f) => `    .${f.member} = ${f.symbol}, \\`),
    '  }',
    '',
    '/* nx_qjs_<export>(inst, ...): the export of the variant the instance was',
    ' * made by. The includer defines NX_QJS_API_OF(inst), the table of inst. */',
    '#ifdef NX_QJS_API_OF',
  ];
  for (const f of fns) {
    if (!f.symbol.startsWith('Z_qjsZ_') || f.types[0] !== 'Z_qjs_instance_t*') continue;
    const params = f.types.map((t, i) => `${t} a${i}`).join(', ');
    const args = f.types.map((_, i) => `a${i}`).join(', ');
    const ret = f.ret === 'void' ? '' : 'return ';
    lines.push(`static inline ${f.ret} nx_qjs_${f.member}(${params}) { ${ret}NX_QJS_API_OF(a0)->${f.member}(${args}); }`);
  }
  lines.push('#endif', '', '#endif');
}
fs.mkdirSync(path.dirname(output), { recursive: true });
fs.writeFileSync(output, lines.join('\n') + '\n');

'use strict';
// Build step: writes contract.h, the C view of src/contract.js (the one
// table of configuration ranges and choices, limits, error codes, statuses,
// languages and the handler wrapper that lib/ reads too).
// Usage: contract.js OUT
const fs = require('fs');
const path = require('path');
const contract = require('../src/contract.js');

const [output] = process.argv.slice(2);
const c = (s) => JSON.stringify(s); // a C string literal: JSON escapes are C escapes here
const u64 = (n) => `UINT64_C(${n})`;
const upper = (s) => s.toUpperCase();

const lines = [
  `/* Generated from src/contract.js by scripts/contract.js: do not edit. */`,
  '#ifndef NX_CONTRACT_H',
  '#define NX_CONTRACT_H',
  '',
  '#include <stdint.h>',
  '',
  '/* X(jsName, member, min, max, default): default 0 where it is computed. */',
  '#define NX_CONFIG_INTEGERS(X) \\',
  ...Object.entries(contract.config).map(([name, f]) =>
    `  X(${c(name)}, ${f.c}, ${u64(f.min)}, ${u64(f.max)}, ${u64(f.default ?? 0)}) \\`),
  '',
  '',
];
lines.push('/* X(jsName, member, names, count, default): options with string values; a', ' * value is NX_<OPTION>_<VALUE>, its index in NX_<OPTION>_NAMES. */');
const snake = (s) => upper(s.replace(/[A-Z]/g, (m) => '_' + m));
for (const [name, f] of Object.entries(contract.choices)) {
  f.values.forEach((v, i) => lines.push(`#define NX_${snake(name)}_${upper(v)} ${i}u`));
  lines.push(`#define NX_${snake(name)}_NAMES { ${f.values.map(c).join(', ')} }`);
}
lines.push(
  '#define NX_CONFIG_CHOICES(X) \\',
  ...Object.entries(contract.choices).map(([name, f]) =>
    `  X(${c(name)}, ${f.c}, NX_${snake(name)}_NAMES, ${f.values.length}u, NX_${snake(name)}_${upper(f.default)}) \\`),
  '',
  '',
);
for (const [name, value] of Object.entries(contract.limits)) {
  lines.push(`#define NX_LIMIT_${snake(name)} ${value}u`);
}
lines.push('', '/* X(NAME): the result error codes, in contract order (the enum starts at 1). */');
lines.push('#define NX_ERROR_CODES(X) \\', ...contract.errorCodes.map((e) => `  X(${e}) \\`), '', '');
lines.push('#define NX_STATUSES(X) \\', ...contract.statuses.map((s) => `  X(${upper(s)}, ${c(s)}) \\`), '', '');
lines.push('/* X(NAME, name): handler languages, in contract order (the enum starts at 0). */');
lines.push('#define NX_LANGUAGES(X) \\', ...contract.languages.map((l) => `  X(${upper(l)}, ${c(l)}) \\`), '', '');
const h = contract.handler;
lines.push(
  `#define NX_HANDLER_FILE ${c(h.file)}`,
  `#define NX_HANDLER_PREFIX ${c(h.prefix)}`,
  `#define NX_HANDLER_SUFFIX ${c(h.suffix)}`,
  `#define NX_HANDLER_DECL_PREFIX ${c(h.declPrefix)}`,
  `#define NX_HANDLER_DECL_SUFFIX ${c(h.declSuffix)}`,
  `#define NX_HANDLER_PREFIX_LINES ${h.prefixLines}u`,
  `#define NX_SNIPPET_BEFORE ${h.snippetBefore}u`,
  `#define NX_SNIPPET_WIDTH ${h.snippetWidth}u`,
  '',
  '#endif',
  '',
);
fs.mkdirSync(path.dirname(output), { recursive: true });
fs.writeFileSync(output, lines.join('\n'));

'use strict';
// The contract between the package's JavaScript and its native module, in
// one table: configuration (defaults, ranges and choices), limits, error
// codes, result statuses, handler languages, and the wrapper a handler is
// compiled in. lib/ requires this file; the build turns it into contract.h
// for the C side (scripts/contract.js). Change a value here and both sides
// follow.

// Configuration options with integer values. `default: null` is computed:
// workers from the machine's available parallelism, maxInstances as twice
// the workers. `c` is the member of nx_config_t (src/config.h).
const config = {
  workers: { c: 'workers', min: 1, max: 256, default: null, doc: 'worker threads running handlers' },
  maxInstances: { c: 'max_instances', min: 1, max: 4096, default: null, doc: 'sandboxes in the pool at most' },
  minInstances: { c: 'min_instances', min: 0, max: 4096, default: 0, doc: 'sandboxes created up front' },
  memoryLimitBytes: { c: 'memory_limit', min: 1 << 20, max: 1 << 30, default: 32 << 20, doc: 'QuickJS heap per sandbox' },
  stackSizeBytes: { c: 'stack_size', min: 1 << 20, max: 256 << 20, default: 8 << 20, doc: 'native stack of each worker' },
  defaultTimeoutMs: { c: 'default_timeout_ms', min: 1, max: 3600000, default: 5000, doc: 'timeout when a call passes 0' },
  suspensionTimeoutMs: { c: 'suspension_timeout_ms', min: 1, max: 86400000, default: 30000, doc: 'a suspended execution not resumed by then is discarded' },
  maxSuspended: { c: 'max_suspended', min: 0, max: 1000000, default: 1000, doc: 'suspended executions at most' },
  maxCacheBytes: { c: 'max_cache_bytes', min: 0, max: 2 ** 40, default: 64 << 20, doc: 'compile cache in memory' },
  maxDiskCacheBytes: { c: 'max_disk_cache_bytes', min: 0, max: 2 ** 50, default: 0, doc: 'compile cache on disk (0: unbounded)' },
  maxResultBytes: { c: 'max_result_bytes', min: 1 << 16, max: 1 << 30, default: 8 << 20, doc: 'encoded result of one segment at most' },
  maxHostCalls: { c: 'max_host_calls', min: 1, max: 100000000, default: 10000, doc: 'host calls of one execution at most' },
};

// Options with string values, one of `values`; `c` is the member of
// nx_config_t, which holds the value's index. Each value becomes
// NX_<OPTION>_<VALUE> in contract.h.
const choices = {
  memoryCheck: {
    c: 'memory_check',
    values: ['guard', 'bounds'],
    default: 'guard',
    doc: 'how sandboxes find out-of-bounds memory accesses: guard pages and a fault handler, or an explicit check on every access',
  },
};

const limits = {
  // timeoutMs of one call, ms (0: config.defaultTimeoutMs).
  timeoutMs: 3600000,
  // MessagePack nesting the native side accepts from the host
  // (nx_mp_validate refuses deeper bytes before anything reads them).
  hostDepth: 32,
  // Of which a context field may use this many below it (the context map
  // and the field itself take two).
  contextFieldDepth: 30,
  // Nesting of a value leaving the sandbox.
  guestDepth: 256,
  // Resume answers in one resumeAll() call.
  answers: 100000,
};

// In contract order: the C enum starts at 1 (0 is NX_OK).
const errorCodes = [
  'TIMEOUT',
  'MEMORY_LIMIT',
  'PERMISSION_DENIED',
  'EXECUTION_ERROR',
  'COMPILATION_ERROR',
  'INVALID_HANDLER',
  'INTERNAL_ERROR',
  'RESOURCE_LIMIT',
];

// Codes a rejected promise carries, besides a result's error codes.
const rejectionCodes = ['SHUT_DOWN', 'SUSPENSION_NOT_FOUND', 'INVALID_SUSPENSION'];

const statuses = ['success', 'error', 'suspended'];

// Languages a handler's source may be written in (options.language), in
// contract order: the native side knows them by index. TypeScript reaches the
// native side with its types stripped (lib/typescript.js); the compile cache
// keys on the language and the source as given.
const languages = ['js', 'ts'];

// A handler is the body of an async function: it is compiled inside this
// wrapper, under this file name. The prefix ends its line so that a
// handler's line numbers are the wrapper's minus `prefixLines` exactly.
// The declaration form must compile too: code that closes the wrapper and
// opens a function of its own cannot (src/loader.c).
const PARAMS = '$state, $args, $scope, $emit, $view, $ext, $log';
const handler = {
  file: 'handler.js',
  prefix: `(async function (${PARAMS}) {\n`,
  suffix: '\n})',
  declPrefix: `async function nexus$handler(${PARAMS}) {\n`,
  declSuffix: '\n}',
  prefixLines: 1,
  // An error's `snippet`: the line, cut to `snippetWidth` characters from
  // `snippetBefore` before the column.
  snippetBefore: 60,
  snippetWidth: 160,
};

module.exports = { config, choices, limits, errorCodes, rejectionCodes, statuses, languages, handler };

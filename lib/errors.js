'use strict';
// Typed errors: one class per WasmError code, AbortError for an execution the
// host called off, and errorFromResult, which turns a WasmResult.error into
// the matching class. Used by the executor; exported for callers' instanceof.

// Every field a caller may want from a failed execution, so it can be
// reported without keeping the WasmResult around.
class NexusError extends Error {
  constructor(message, details = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = new.target.code ?? details.code ?? 'INTERNAL_ERROR';
    // 1-based, in the handler's own source; null when unknown.
    this.location = details.location ?? null;
    this.snippet = details.snippet ?? null;
    // `stack` stays the host's JavaScript stack; the handler's frames
    // (handler.js:LINE:COL) are a different thing and live here.
    this.handlerStack = details.handlerStack ?? null;
    this.logs = details.logs ?? [];
    this.metrics = details.metrics ?? null;
  }
}

class TimeoutError extends NexusError {
  static code = 'TIMEOUT';
}
class MemoryLimitError extends NexusError {
  static code = 'MEMORY_LIMIT';
}
class PermissionDeniedError extends NexusError {
  static code = 'PERMISSION_DENIED';
}
class ExecutionError extends NexusError {
  static code = 'EXECUTION_ERROR';
}
class CompilationError extends NexusError {
  static code = 'COMPILATION_ERROR';
}
class InvalidHandlerError extends NexusError {
  static code = 'INVALID_HANDLER';
}
class InternalError extends NexusError {
  static code = 'INTERNAL_ERROR';
}
class ResourceLimitError extends NexusError {
  static code = 'RESOURCE_LIMIT';
}
// Not a WasmError code: the host ended the execution (AbortSignal). Named
// like the platform's AbortError so `err.name === 'AbortError'` checks work.
class AbortError extends NexusError {
  static code = 'ABORTED';
  constructor(message = 'The execution was aborted', details) {
    super(message, details);
  }
}

const CLASSES = [
  NexusError,
  TimeoutError,
  MemoryLimitError,
  PermissionDeniedError,
  ExecutionError,
  CompilationError,
  InvalidHandlerError,
  InternalError,
  ResourceLimitError,
  AbortError,
];
// On the prototype, like the built-in errors, so it also shows in `stack`.
for (const cls of CLASSES) {
  Object.defineProperty(cls.prototype, 'name', { value: cls.name, writable: true, configurable: true });
}

const BY_CODE = new Map(CLASSES.filter((cls) => cls.code && cls !== AbortError).map((cls) => [cls.code, cls]));
// One class per code of the contract (src/contract.js), and no other.
{
  const codes = require('../src/contract').errorCodes;
  const missing = codes.filter((c) => !BY_CODE.has(c));
  const extra = [...BY_CODE.keys()].filter((c) => !codes.includes(c));
  if (missing.length || extra.length) {
    throw new Error(`lib/errors.js is out of step with src/contract.js: missing ${missing}, extra ${extra}`);
  }
}

// wasmError: a WasmResult.error (or an Error carrying the same fields, as
// inferCapabilities throws). extras: { logs, metrics, cause } to attach.
// A code this version does not know becomes an InternalError that names it.
function errorFromResult(wasmError, extras = {}) {
  const e = wasmError ?? {};
  const cls = BY_CODE.get(e.code) ?? InternalError;
  let message = typeof e.message === 'string' && e.message !== '' ? e.message : `handler failed (${e.code ?? 'no error code'})`;
  if (cls === InternalError && e.code !== 'INTERNAL_ERROR') message += ` [unknown error code ${String(e.code)}]`;
  return new cls(message, {
    location: e.location,
    snippet: e.snippet,
    handlerStack: e.stack,
    ...extras,
  });
}

module.exports = {
  NexusError,
  TimeoutError,
  MemoryLimitError,
  PermissionDeniedError,
  ExecutionError,
  CompilationError,
  InvalidHandlerError,
  InternalError,
  ResourceLimitError,
  AbortError,
  errorFromResult,
};

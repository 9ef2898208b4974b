// Types for nexus-wasm-bridge. Hand-written; see docs/architecture.md and
// docs/marshaling.md for the semantics behind each field.
import type { Redis, RedisOptions } from 'ioredis';

export type ErrorCode =
  | 'TIMEOUT'
  | 'MEMORY_LIMIT'
  | 'PERMISSION_DENIED'
  | 'EXECUTION_ERROR'
  | 'COMPILATION_ERROR'
  | 'INVALID_HANDLER'
  | 'INTERNAL_ERROR'
  | 'RESOURCE_LIMIT';

/** `state:read:{key}`, `state:write:{key}`, `events:emit:{name}`, `view:update:{componentId}`, `ext:{name}`; `*` as the name grants the family. */
export type CapabilityToken =
  | `state:read:${string}`
  | `state:write:${string}`
  | `events:emit:${string}`
  | `view:update:${string}`
  | `ext:${string}`;

export interface RuntimeConfig {
  /** Worker threads executing handlers. Default: number of CPUs. */
  workers?: number;
  /**
   * Sandboxes in the pool (running or idle) at most; executions beyond them queue (FIFO).
   * Default: 2 × workers. A suspended execution keeps its sandbox outside this count, so up to
   * `maxSuspended` more can be alive.
   */
  maxInstances?: number;
  /** Sandboxes created up front, in the background. Default: 0. */
  minInstances?: number;
  /** QuickJS heap limit per sandbox, bytes, 1 MiB–1 GiB. Default: 32 MiB. */
  memoryLimitBytes?: number;
  /** Native stack of each worker thread, bytes, 1–256 MiB. Default: 8 MiB. */
  stackSizeBytes?: number;
  /** Timeout used when a call passes 0 or nothing, ms. Default: 5000. */
  defaultTimeoutMs?: number;
  /**
   * How long a suspended execution waits for its resume, ms, 1–86 400 000. Default: 30 000.
   * Once it expires the execution is discarded and its ids reject with `SUSPENSION_NOT_FOUND`.
   */
  suspensionTimeoutMs?: number;
  /**
   * Executions suspended at once (between their first suspension and their end), 0–1 000 000.
   * Default: 1000. One more ends with a `RESOURCE_LIMIT` error instead of suspending.
   */
  maxSuspended?: number;
  /** Bound of the in-memory compile cache (LRU of bytecode by source), bytes, 0–2^40. Default: 64 MiB; 0 caches nothing. */
  maxCacheBytes?: number;
  /** Bound of the on-disk compile cache in `cacheDir`, bytes, 0–2^50 (oldest files go first). Default: 0, unbounded. */
  maxDiskCacheBytes?: number;
  /**
   * Encoded result of one segment at most, bytes, 64 KiB–1 GiB: return value, state mutations, events,
   * view commands, logs and pending-call arguments, checked while they are encoded. Default: 8 MiB.
   * Past it the execution ends with `RESOURCE_LIMIT` (the handler cannot catch it).
   */
  maxResultBytes?: number;
  /**
   * Host calls (`$state` reads and writes, `$emit`, `$view`, `$log`, `$ext`) one execution may make,
   * all its segments together, 1–10^8. Default: 10 000. Past it the execution ends with `RESOURCE_LIMIT`.
   */
  maxHostCalls?: number;
  /**
   * How out-of-bounds guest memory accesses are caught. `'guard'` (default): each sandbox reserves
   * 8 GiB of address space, inaccessible past the pages it uses, and a SIGSEGV handler turns a fault
   * there into the execution's error. `'bounds'`: every load and store is checked; no signal handler.
   * Falls back to `'bounds'` when the handler cannot be installed (`getStats().memoryCheck`).
   */
  memoryCheck?: 'guard' | 'bounds';
  /** Accepted for compatibility with the seed; the engine build fixes the wasm features. */
  enableSIMD?: boolean;
  enableBulkMemory?: boolean;
  /** Accepted; the engine is always compiled ahead of time (wasm2c), so this is always true. */
  enableAOT?: boolean;
  /** Only the built-in quickjs.wasm path is accepted: the engine is compiled into the addon. */
  quickjsModulePath?: string;
  /**
   * Directory of the on-disk compile cache (one file per compiled source, shared safely between
   * processes). Default: none, memory cache only. Resolved to an absolute path.
   */
  cacheDir?: string;
}

export interface ResolvedConfig extends Required<Omit<RuntimeConfig, 'cacheDir'>> {
  cacheDir: string | null;
}

export interface WasmContext {
  panelId: string;
  handlerName: string;
  /** A plain object (checked and encoded on every call), or a `NexusState` (encoded once, key by key). */
  stateSnapshot: Record<string, unknown> | NexusState;
  args: Record<string, unknown>;
  capabilities: CapabilityToken[] | string[];
  scope: Record<string, unknown>;
  /** `{ [extensionName]: methodName[] }`. */
  extensionRegistry?: Record<string, string[]>;
}

export interface StateMutation {
  key: string;
  value?: unknown;
  operation: 'set' | 'delete';
}

export interface EmittedEvent {
  name: string;
  payload: unknown;
}

export type ViewCommand =
  | { type: 'setFilter'; componentId: string; args: { value: unknown } }
  | { type: 'scrollTo'; componentId: string; args: { position: unknown } }
  | { type: 'focus'; componentId: string; args: Record<string, never> }
  | { type: 'custom'; componentId: string; args: unknown };

export interface LogEntry {
  level: 'info' | 'warn' | 'error' | 'debug';
  message: string;
}

export interface SuspensionDetails {
  suspensionId: string;
  extensionName: string;
  method: string;
  args: unknown[];
}

/** One extension call a suspended handler is waiting for. */
export type PendingCall = SuspensionDetails;

/** What an extension call gave: the handler's `await` resolves with `value` or rejects with an Error whose message is `error`. */
export type ResumeResult = { success: true; value?: unknown } | { success: false; error: string };

export interface WasmError {
  code: ErrorCode;
  message: string;
  /** Frames in the handler's own source only (`handler.js:LINE:COL`), or null. */
  stack: string | null;
  /** 1-based, relative to the handler's source; null when unknown. */
  location: { line: number; column: number } | null;
  /** The offending source line and a caret under the column. */
  snippet: string | null;
}

/**
 * Metrics of one result. They cover the segment since the previous result of the same execution:
 * for a suspended execution, the first result covers the run up to the suspension, each resume's
 * result the run since then (time suspended is not counted).
 */
export interface ExecutionMetrics {
  /** Time the segment took in the sandbox, µs. */
  durationUs: number;
  /**
   * Compiling the handler, µs; on a cache hit, reading its bytecode into the sandbox instead
   * (about 0 when a worker read it in ahead, right after the sandbox's reset).
   * 0 for a resumed segment.
   */
  compilationTimeUs: number;
  /** QuickJS heap in use at the end of the segment, bytes. */
  memoryUsedBytes: number;
  /** Linear memory of the sandbox at the end of the segment, bytes. */
  memoryPeakBytes: number;
  /** Estimate: 10 000 × QuickJS interrupt checks (function calls and loop iterations), not machine instructions. */
  instructionCount: number;
  /**
   * The bytecode did not have to be compiled: it came from the compile cache (the same source ran
   * before, in this runtime or, with `cacheDir`, in one sharing the directory), or the execution ran a
   * precompiled handler (executeCompiledHandler).
   */
  cacheHit: boolean;
  /** Host calls by function: 'state.get', 'state.set', 'emit', 'view', 'log', and 'ext.NAME.METHOD' per extension method. */
  hostCalls: Record<string, number>;
}

export interface WasmResult {
  status: 'success' | 'error' | 'suspended';
  /** Present when status is 'success' (may be undefined). */
  returnValue?: unknown;
  /** Empty when status is 'error': a failed handler's effects are not applied. */
  stateMutations: StateMutation[];
  events: EmittedEvent[];
  viewCommands: ViewCommand[];
  /** Kept on errors too. */
  logs: LogEntry[];
  /** When status is 'suspended': the first of `pendingCalls`. */
  suspension?: SuspensionDetails;
  /**
   * When status is 'suspended': every unanswered extension call, oldest first.
   * The effects and logs of a suspended result are those since the previous
   * result of the same execution.
   */
  pendingCalls?: PendingCall[];
  error?: WasmError;
  metrics: ExecutionMetrics;
}

export interface RuntimeStats {
  /** Results delivered (each segment of a suspended execution counts: its suspension and its end). */
  totalExecutions: number;
  /** Sandboxes running a handler now. */
  activeInstances: number;
  /** Idle sandboxes ready for the next execution. */
  availableInstances: number;
  /** Share of source executions whose bytecode came from the compile cache (cacheHits / (cacheHits + cacheMisses)); 0 before any. */
  cacheHitRate: number;
  /** Mean `durationUs` over totalExecutions. */
  avgExecutionTimeUs: number;
  /** Linear memory of all sandboxes, the suspended ones' included, bytes. */
  totalMemoryBytes: number;
  /** Sandboxes alive in the pool (not counting those held by suspended executions). */
  liveInstances: number;
  /** Executions waiting for a sandbox. */
  queuedExecutions: number;
  /** Calls (executions and resumes) whose promise has not settled yet. */
  inFlightExecutions: number;
  /** Executions suspended now, waiting for a resume. */
  suspendedExecutions: number;
  workers: number;
  /** Results by status (a suspended execution adds one `suspended` per suspension). */
  executionsByStatus: { success: number; error: number; suspended: number };
  errorsByCode: Partial<Record<ErrorCode, number>>;
  /** Entries and bytes in the in-memory compile cache. */
  cacheEntries: number;
  cacheBytes: number;
  /** Source executions whose bytecode came from the compile cache, and those that compiled it. */
  cacheHits: number;
  cacheMisses: number;
  /** Size of the pristine sandbox image every execution starts from, bytes. */
  snapshotBytes: number;
  /** Mean time to reset a sandbox to the image after an execution, µs. */
  avgResetUs: number;
  /** Mean time to instantiate a new sandbox from the image, µs. */
  avgInstantiateUs: number;
  /** Resets and instantiations so far: the counts behind the two averages. */
  resets: number;
  instantiations: number;
  /** Time taken to create the image, once, µs. */
  snapshotCreateUs: number;
  /** What the sandboxes use: `config.memoryCheck`, or `'bounds'` if guard pages could not be set up. */
  memoryCheck: 'guard' | 'bounds';
}

/** One executeBatch() item: source or precompiled bytecode, exactly one of them. */
export type BatchItem =
  | { code: string; bytecode?: undefined; context: WasmContext; timeoutMs?: number }
  | { bytecode: Uint8Array; code?: undefined; context: WasmContext; timeoutMs?: number };

/** The language of a handler's source. */
export type HandlerLanguage = 'js' | 'ts';

/**
 * `language`: 'js' (default) or 'ts'. TypeScript's types are stripped on the host (amaro,
 * strip-only mode) with every position kept: error locations and snippets point into the
 * TypeScript. Syntax strip-only mode cannot handle (enum, namespace with values, parameter
 * properties) is a `COMPILATION_ERROR` with its location.
 */
export interface SourceOptions {
  language?: HandlerLanguage;
}

/**
 * A panel state kept as MessagePack, one encoding per top-level key (and item offsets for an
 * array or object of more than 64 items), made by `runtime.createState()`. Values are copied
 * in by `set`/`apply` and read back as fresh copies, so no host object can change an encoding.
 */
export class NexusState {
  private constructor();
  readonly size: number;
  set(key: string, value: unknown): this;
  delete(key: string): boolean;
  has(key: string): boolean;
  keys(): string[];
  get(key: string): unknown;
  toObject(): Record<string, unknown>;
  toJSON(): Record<string, unknown>;
  /** Applies a result's `stateMutations` in order; only the keys they name are encoded again. */
  apply(mutations: StateMutation[]): this;
}

/** `config.suspensionKeys`: HMAC-SHA-256 keys of exported suspensions, each at least 16 bytes. */
export type SuspensionKey = Buffer | Uint8Array | string;

export class NexusRuntime {
  /**
   * `config.suspensionKeys` (not part of `config` afterwards: keys stay private) signs and checks
   * exported suspensions: the first key signs, any key is accepted (key rotation). Needed by
   * exportSuspension(), importSuspension() and shutdown({ drainTo }).
   */
  constructor(config?: RuntimeConfig & { suspensionKeys?: SuspensionKey[] });
  /**
   * What an exported suspension must have been made by to import here: package and engine versions,
   * a digest of the addon binary and of the snapshot image (which the options that shape the image,
   * such as memoryLimitBytes, change).
   */
  readonly engineBuild: string;
  readonly config: Readonly<ResolvedConfig>;
  /** A `NexusState` holding `values` (default `{}`); TypeError for values that cannot cross. */
  createState(values?: Record<string, unknown>): NexusState;
  /**
   * Runs `code`, the body of an async function. `timeoutMs`: run-time limit, 0 or omitted for
   * `config.defaultTimeoutMs`. Rejects with TypeError/RangeError for bad arguments, with
   * `code: 'SHUT_DOWN'` after shutdown(); a failing handler resolves with `status: 'error'`.
   * The compile cache keys on the language and the source as given.
   */
  executeHandler(code: string, context: WasmContext, timeoutMs?: number, options?: SourceOptions): Promise<WasmResult>;
  /**
   * Compiles `code` once, in a sandbox, without running it: a header (engine build, digests) plus
   * QuickJS bytecode, runnable with executeCompiledHandler() by any runtime of the same engine build.
   * Rejects with an Error carrying `code: 'COMPILATION_ERROR'`, `location` and `snippet` for code that
   * does not compile, `code: 'SHUT_DOWN'` after shutdown().
   */
  precompileHandler(code: string, options?: SourceOptions): Promise<Uint8Array>;
  /**
   * Runs a precompiled handler like executeHandler() runs source (`metrics.cacheHit` is true). A buffer
   * whose header does not match this engine build, or is damaged, gives an `INVALID_HANDLER` result.
   */
  executeCompiledHandler(bytecode: Uint8Array, context: WasmContext, timeoutMs?: number): Promise<WasmResult>;
  /**
   * Runs a handler (source, or `{ bytecode }` from precompileHandler()) on the calling thread and
   * returns its result: the same WasmResult, limits, isolation and metrics as executeHandler(), but
   * the thread is blocked while the handler runs. It cannot suspend: an `$ext` call ends it with an
   * uncatchable `EXECUTION_ERROR` ("executeHandlerSync cannot run a handler that calls an extension
   * ($ext.NAME.METHOD): use executeHandler"). Throws TypeError/RangeError for bad arguments, an Error
   * with `code: 'SHUT_DOWN'` after shutdown().
   */
  executeHandlerSync(handler: string | { bytecode: Uint8Array }, context: WasmContext, timeoutMs?: number): WasmResult;
  /**
   * Runs every item with one hand-off to the workers and one back; resolves, once the last has
   * finished, with one result per item in item order (what executeHandler()/executeCompiledHandler()
   * would give; a suspended item resumes as usual). A malformed item rejects the whole batch with a
   * TypeError naming it before anything runs; more than 100 000 items is a RangeError; `[]` gives `[]`.
   */
  executeBatch(items: BatchItem[]): Promise<WasmResult[]>;
  /**
   * Answers one pending call of a suspended execution and continues it; resolves with the next
   * segment's result (suspended again, success or error). Rejects with `code: 'SUSPENSION_NOT_FOUND'`
   * for an unknown, expired, cancelled or already answered id, and after shutdown() (which discards
   * every suspended execution); with a TypeError for a value that cannot be encoded (the suspension
   * then stays resumable).
   */
  resumeHandler(suspensionId: string, result: ResumeResult): Promise<WasmResult>;
  /**
   * Answers several pending calls of ONE suspended execution in one round, then continues it.
   * Rejects like resumeHandler; a TypeError refuses the whole round and leaves it resumable.
   */
  resumeAll(answers: Array<{ suspensionId: string; result: ResumeResult }>): Promise<WasmResult>;
  /** Discards the parked execution owning `suspensionId`; resolves true if it existed (false after shutdown()). */
  cancelSuspended(suspensionId: string): Promise<boolean>;
  /**
   * The parked execution owning `suspensionId` as a signed blob (its memory where it differs from the
   * snapshot image, its pending calls, remaining time and metrics), which importSuspension() in any
   * process of the same engine build with one of the keys turns back into a suspension. The execution is
   * released here: its ids reject with `SUSPENSION_NOT_FOUND` from now on. Rejects with
   * `SUSPENSION_NOT_FOUND` for an id no parked execution has (or whose segment is running now), a
   * TypeError without `config.suspensionKeys`.
   */
  exportSuspension(suspensionId: string): Promise<Uint8Array>;
  /**
   * Parks an exported execution here; resolves with its suspension id (with `{ result: true }`, its
   * suspended result: `suspension` and `pendingCalls`, no effects). resumeHandler(), resumeAll() and
   * cancelSuspended() then work as for a local suspension. The signature, expiry and engine build are
   * checked before the native layer sees a byte, which checks every size and offset again. Refusals
   * reject with an InvalidSuspensionError (`code: 'INVALID_SUSPENSION'`, `check` naming the check);
   * refusals that are not the blob's fault with `code` SHUT_DOWN, RESOURCE_LIMIT (maxSuspended) or
   * INTERNAL_ERROR. `returnTo`: after such a refusal the blob is put back into that store under `id`,
   * signed again with a new nonce (for a blob just claimed from it). It parks until the blob expires,
   * at most `suspensionTimeoutMs`.
   */
  importSuspension(blob: Uint8Array, options?: { result?: false; returnTo?: { store: SuspensionStore; id: string } }): Promise<string>;
  importSuspension(blob: Uint8Array, options: { result: true; returnTo?: { store: SuspensionStore; id: string } }): Promise<WasmResult>;
  getStats(): RuntimeStats;
  /** The runtime's metrics in the Prometheus text exposition format. Throws `code: 'SHUT_DOWN'` after shutdown(). */
  getPrometheusMetrics(): string;
  /** Rejects new calls, lets in-flight ones finish, frees everything. Idempotent. */
  shutdown(): Promise<void>;
  /**
   * The same, after exporting every parked execution to `drainTo` (put under its suspension id until it
   * would have expired), so that another process can resume it. A segment still running that suspends
   * after the drain ends with an error result, as without a store.
   */
  shutdown(options: { drainTo: SuspensionStore }): Promise<{ drained: string[]; failed: Array<{ suspensionId: string; error: Error }> }>;
  /**
   * Synchronous static analysis: the sorted capability tokens `code` can need
   * (the permissive fallback used when no capabilities are given). Names it
   * cannot determine widen to `*`. Throws an Error with `code:
   * 'COMPILATION_ERROR'`, `location` and `snippet` for code that does not
   * parse, a TypeError if `code` is not a string.
   */
  inferCapabilities(code: string, options?: SourceOptions): string[];
}

interface ExecuteOptionsBase {
  panelId: string;
  handlerName: string;
  /**
   * The host's state: sent as `stateSnapshot`; every result's mutations are applied to it
   * (`state[key] = value`, `delete state[key]`, or `state.apply(mutations)` for a `NexusState`).
   */
  state: Record<string, unknown> | NexusState;
  /** Default `{}`. */
  args?: Record<string, unknown>;
  /** Default `{}`. */
  scope?: Record<string, unknown>;
  /**
   * Tokens granted to the handler. Omitted (with `code` only): the permissive fallback,
   * `runtime.inferCapabilities(code)`, i.e. every token the source visibly uses. `[]` grants nothing.
   */
  capabilities?: CapabilityToken[] | string[];
  /**
   * Extension objects by name. A handler may call an object's own enumerable function properties and
   * the methods on its prototype chain below Object.prototype (class instances); `this` is the object.
   */
  extensions?: Record<string, object>;
  /** Overall wall-clock deadline of the whole execution, time suspended included, ms; rejects with TimeoutError. */
  timeoutMs?: number;
  /** Run-time limit of each segment, passed to the runtime as its `timeoutMs` (default: the runtime's). */
  runTimeoutMs?: number;
  /** Aborting ends the execution: rejects with AbortError (`cause` = the signal's reason). */
  signal?: AbortSignal;
  /**
   * Called with each result's non-empty lists, in this order, after the mutations are applied to `state`
   * and before any extension call starts. A returned promise is awaited; a throw or rejection cancels
   * the execution and is what execute() rejects with.
   */
  onMutations?: (mutations: StateMutation[]) => void | Promise<void>;
  onEvents?: (events: EmittedEvent[]) => void | Promise<void>;
  onViewCommands?: (commands: ViewCommand[]) => void | Promise<void>;
  onLogs?: (logs: LogEntry[]) => void | Promise<void>;
}

/** Exactly one of `code` and `bytecode`; `bytecode` needs explicit `capabilities` (there is no source to infer them from). */
export type ExecuteOptions =
  | (ExecuteOptionsBase & { code: string; language?: HandlerLanguage; bytecode?: undefined })
  | (ExecuteOptionsBase & { bytecode: Uint8Array; code?: undefined; language?: undefined; capabilities: CapabilityToken[] | string[] });

/** Drives executions through suspend/resume: applies effects to the host state, performs the extension calls, resumes. */
/** What executor.resume() takes: how to drive the execution on (the handler and its context are in the suspension). */
export type ResumeOptions = Pick<
  ExecuteOptionsBase,
  'state' | 'extensions' | 'timeoutMs' | 'runTimeoutMs' | 'signal' | 'onMutations' | 'onEvents' | 'onViewCommands' | 'onLogs'
>;

export class WasmSandboxExecutor {
  /**
   * With `store`, every suspension is exported to it while its extension calls run, so that any
   * process's executor can resume it; this executor claims it back when its own calls finish, unless
   * another process did first (then execute() rejects with `code: 'SUSPENSION_NOT_FOUND'`). If the store
   * refuses the blob, the execution is imported back and goes on here.
   */
  constructor(runtime: NexusRuntime, options?: { store?: SuspensionStore });
  readonly runtime: NexusRuntime;
  readonly store: SuspensionStore | null;
  /**
   * Claims `suspensionId` from the store (the process that parked it may be gone), answers that call
   * with `result`, performs the execution's other pending calls with `options.extensions`, and drives
   * it to its end as execute() does. Rejects with `code: 'SUSPENSION_NOT_FOUND'` when the store does not
   * have it (claimed by another process, or expired).
   */
  resume(suspensionId: string, result: ResumeResult, options: ResumeOptions): Promise<unknown>;
  /**
   * Resolves with the handler's return value. Rejects with a NexusError subclass for a failed handler,
   * AbortError (signal) or TimeoutError (overall deadline), a TypeError/RangeError for bad options, or
   * what a callback threw. An abort during a running segment takes effect when that segment returns.
   */
  execute(options: ExecuteOptions): Promise<unknown>;
}

/**
 * Where exported suspension blobs wait, under their suspension id (32 lowercase hex digits), until one
 * process claims them (lib/stores.js). Every method rejects (never throws) with a TypeError/RangeError
 * for a bad argument.
 */
export interface SuspensionStore {
  /**
   * Stores blob under id for ttlMs ms (an integer in [1, 2^31-1]), replacing what id held. Rejects with
   * an INVALID_SUSPENSION error (check 'format') when blob is not a suspension blob; the signature is
   * not checked.
   */
  put(id: string, blob: Uint8Array, ttlMs: number): Promise<void>;
  /**
   * Takes the blob out: of any number of concurrent claims of one id, exactly one resolves with the
   * blob, the others with null (as does an id never put, deleted or past its ttl). A blob whose nonce
   * was already claimed through this store is deleted and the claim rejects with an INVALID_SUSPENSION
   * error whose check is 'replay'. A claimed nonce is remembered until the blob's expiresAt plus
   * replayMarginMs.
   */
  claim(id: string): Promise<Uint8Array | null>;
  /** Removes the blob (its nonce is not recorded); true when there was one. */
  delete(id: string): Promise<boolean>;
}

export interface SuspensionStoreOptions {
  /** How long past a claimed blob's expiresAt its nonce is remembered (clock skew), ms; default 60000. */
  replayMarginMs?: number;
}

/** A SuspensionStore in this process's memory: one claimant among this process's claims. */
export class MemorySuspensionStore implements SuspensionStore {
  constructor(options?: SuspensionStoreOptions);
  put(id: string, blob: Uint8Array, ttlMs: number): Promise<void>;
  claim(id: string): Promise<Uint8Array | null>;
  delete(id: string): Promise<boolean>;
}

export interface RedisSuspensionStoreOptions extends SuspensionStoreOptions, RedisOptions {
  /** A client of the caller's (the store defines one script command on it; close() leaves it open). */
  redis?: Redis;
  /** Without `redis`: the server to connect to (the store makes and owns the client). */
  url?: string;
  /** Key prefix; default 'nexus:suspension:'. Blobs live under `<prefix>s:<id>`, claimed nonces under `<prefix>n:<nonce>`. */
  prefix?: string;
}

/**
 * A SuspensionStore on Redis (>= 6.2), shared by any number of processes: one claimant among all of
 * them (the claim is one Lua script). A client the store makes fails a command when the server is
 * down or silent (maxRetriesPerRequest 2, connectTimeout and commandTimeout 5000 ms, unless given).
 */
export class RedisSuspensionStore implements SuspensionStore {
  constructor(options?: RedisSuspensionStoreOptions);
  readonly prefix: string;
  put(id: string, blob: Uint8Array, ttlMs: number): Promise<void>;
  claim(id: string): Promise<Uint8Array | null>;
  delete(id: string): Promise<boolean>;
  /** Quits the client the store made; a client given as `redis` is left open. */
  close(): Promise<void>;
}

export interface NexusErrorDetails {
  /** Only for NexusError itself; subclasses fix their code. */
  code?: string;
  location?: { line: number; column: number } | null;
  snippet?: string | null;
  handlerStack?: string | null;
  logs?: LogEntry[];
  metrics?: ExecutionMetrics | null;
  cause?: unknown;
}

export class NexusError extends Error {
  constructor(message: string, details?: NexusErrorDetails);
  readonly code: ErrorCode | 'ABORTED';
  /** 1-based, in the handler's own source; null when unknown. */
  location: { line: number; column: number } | null;
  /** The offending source line and a caret under the column. */
  snippet: string | null;
  /** The handler's frames (`handler.js:LINE:COL`); `stack` is the host's. */
  handlerStack: string | null;
  /** Every log line of the execution, all segments. */
  logs: LogEntry[];
  /** Metrics of the last segment, when there was one. */
  metrics: ExecutionMetrics | null;
}
export class TimeoutError extends NexusError {
  readonly code: 'TIMEOUT';
}
export class MemoryLimitError extends NexusError {
  readonly code: 'MEMORY_LIMIT';
}
export class PermissionDeniedError extends NexusError {
  readonly code: 'PERMISSION_DENIED';
}
export class ExecutionError extends NexusError {
  readonly code: 'EXECUTION_ERROR';
}
export class CompilationError extends NexusError {
  readonly code: 'COMPILATION_ERROR';
}
export class InvalidHandlerError extends NexusError {
  readonly code: 'INVALID_HANDLER';
}
export class InternalError extends NexusError {
  readonly code: 'INTERNAL_ERROR';
}
export class ResourceLimitError extends NexusError {
  readonly code: 'RESOURCE_LIMIT';
}
/** The host ended the execution; `cause` is the AbortSignal's reason. */
export class AbortError extends NexusError {
  constructor(message?: string, details?: NexusErrorDetails);
  readonly code: 'ABORTED';
}
/**
 * A suspension blob refused by importSuspension() or a store: `check` says which check failed
 * ('format': not a blob, truncated or padded; 'signature'; 'expiry'; 'build': another engine build;
 * 'payload': does not inflate; 'replay': imported here, or claimed from the store, already; 'engine':
 * the native layer refused the bytes, or its ids are parked here already, or it may not park).
 */
export class InvalidSuspensionError extends Error {
  constructor(check: string, message: string);
  readonly code: 'INVALID_SUSPENSION';
  readonly check: 'format' | 'signature' | 'expiry' | 'build' | 'payload' | 'replay' | 'engine';
}
/** Maps a WasmResult.error to its class; an unknown code gives an InternalError naming it. */
export function errorFromResult(error: WasmError | undefined, extras?: NexusErrorDetails): NexusError;

export function validateConfig(config?: RuntimeConfig): Readonly<ResolvedConfig>;
export function inferCapabilities(code: string, options?: SourceOptions): string[];

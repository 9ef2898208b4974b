// Types for nexus-wasm-bridge. Hand-written; see docs/architecture.md and
// docs/marshaling.md for the semantics behind each field.

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
  /** Sandboxes alive at most; executions beyond them queue (FIFO). Default: 2 × workers. */
  maxInstances?: number;
  /** Sandboxes created up front, in the background. Default: 0. */
  minInstances?: number;
  /** QuickJS heap limit per sandbox, bytes, 1 MiB–1 GiB. Default: 32 MiB. */
  memoryLimitBytes?: number;
  /** Native stack of each worker thread, bytes, 1–256 MiB. Default: 8 MiB. */
  stackSizeBytes?: number;
  /** Timeout used when a call passes 0 or nothing, ms. Default: 5000. */
  defaultTimeoutMs?: number;
  /** Accepted for compatibility with the seed; the engine build fixes the wasm features. */
  enableSIMD?: boolean;
  enableBulkMemory?: boolean;
  /** Accepted; the engine is always compiled ahead of time (wasm2c), so this is always true. */
  enableAOT?: boolean;
  /** Only the built-in quickjs.wasm path is accepted: the engine is compiled into the addon. */
  quickjsModulePath?: string;
  /** Directory for the on-disk compile cache (validated now, used once the disk cache lands). */
  cacheDir?: string;
}

export interface ResolvedConfig extends Required<Omit<RuntimeConfig, 'cacheDir'>> {
  cacheDir: string | null;
}

export interface WasmContext {
  panelId: string;
  handlerName: string;
  stateSnapshot: Record<string, unknown>;
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

export interface ExecutionMetrics {
  durationUs: number;
  compilationTimeUs: number;
  /** Linear memory of the sandbox at the end of the execution, bytes. */
  memoryPeakBytes: number;
  /** Estimate: 10 000 × QuickJS interrupt checks (function calls and loop iterations), not machine instructions. */
  instructionCount: number;
  /** The sandbox already had this exact source compiled. */
  cacheHit: boolean;
  /** Host calls by function: 'state.get', 'state.set', 'emit', 'view', 'log'. */
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
  suspension?: SuspensionDetails;
  error?: WasmError;
  metrics: ExecutionMetrics;
}

export interface RuntimeStats {
  totalExecutions: number;
  activeInstances: number;
  availableInstances: number;
  cacheHitRate: number;
  avgExecutionTimeUs: number;
  totalMemoryBytes: number;
  liveInstances: number;
  queuedExecutions: number;
  inFlightExecutions: number;
  workers: number;
  executionsByStatus: { success: number; error: number };
  errorsByCode: Partial<Record<ErrorCode, number>>;
}

export class NexusRuntime {
  constructor(config?: RuntimeConfig);
  readonly config: Readonly<ResolvedConfig>;
  /** Runs `code`, the body of an async function. Rejects with TypeError/RangeError for bad arguments, with `code: 'SHUT_DOWN'` after shutdown(). */
  executeHandler(code: string, context: WasmContext, timeoutMs?: number): Promise<WasmResult>;
  getStats(): RuntimeStats;
  /** Rejects new calls, lets in-flight ones finish, frees everything. Idempotent. */
  shutdown(): Promise<void>;
}

export function validateConfig(config?: RuntimeConfig): Readonly<ResolvedConfig>;

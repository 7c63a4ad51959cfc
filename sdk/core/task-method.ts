import type { DescMessage, DescService } from "@bufbuild/protobuf";
import { recordSourceInfo } from "./source-info.ts";
import { checkGeneratorVersion } from "./version.ts";

/** A priority by name. `"normal"` unless a task or its method says otherwise. */
export type PriorityName = "high" | "normal" | "low";

/** A delivery mode by name. `"queue"` unless a task or its method says otherwise. */
export type DeliveryName = "queue" | "broadcast";

/**
 * A retry policy in milliseconds; every field is optional and falls back to the
 * method's, then the runtime's, default.
 */
export interface RetryOptions {
  /** Attempts in total, the first included. @default 3 */
  maxAttempts?: number;
  /** Delay before the second attempt. @default 1000 */
  initialBackoffMs?: number;
  /** Upper bound of any delay. @default 300000 */
  maxBackoffMs?: number;
  /** Growth factor of the delay per attempt. @default 2 */
  multiplier?: number;
  /** Random spread of each delay, as a fraction in [0, 1]. @default 0.2 */
  jitter?: number;
}

/**
 * Defaults of one task kind, read by the code generator from the
 * `(taskwire.v1.worker)` and `(taskwire.v1.task)` options.
 */
export interface TaskDefaults {
  /** Limit of each attempt. */
  timeoutMs?: number;
  /** Retry policy. */
  retry?: RetryOptions;
  /** Default priority. */
  priority?: PriorityName;
  /** Default delivery mode. */
  delivery?: DeliveryName;
  /** Expire tasks that have not started this long after acceptance. */
  expiresAfterMs?: number;
  /** Tasks with a fairness key wait this long; a later one of the same key replaces the one waiting. */
  debounceMs?: number;
  /** At most one task per fairness key queued or running: a submit while one is returns that one. */
  singleton?: boolean;
}

/** Limits per fairness key, across every worker of a type, from `(taskwire.v1.worker).key_limits`. */
export interface KeyLimitSettings {
  /** Tasks of one key running at once; absent: no limit. */
  readonly maxConcurrency?: number;
  /** Tasks of one key started per second; absent: no limit. */
  readonly maxRate?: number;
}

/**
 * One rpc of a task service: a task kind with typed input and output.
 * Generated; read by clients (to submit) and by the worker runtime (to run).
 */
export interface TaskMethod<I extends DescMessage = DescMessage, O extends DescMessage = DescMessage> {
  /** The worker type that runs it, e.g. `"hasher"`. */
  readonly workerType: string;
  /** The rpc name as in the proto, e.g. `"Digest"`. */
  readonly name: string;
  /** The request (payload) message. */
  readonly input: I;
  /** The response (result) message. */
  readonly output: O;
  /** Defaults from the proto options, method over service. */
  readonly defaults: TaskDefaults;
}

/**
 * How long the broker keeps what finished tasks leave behind, and how large a
 * result it keeps: taskwire.yaml's `retention` for a deployment, a type's
 * `(taskwire.v1.worker).retention` for its own tasks. docs/operations.md gives
 * the store's size per million tasks.
 */
export interface RetentionSettings {
  /** How long a task's status record, result and index entries are kept after its last change. 0: forever. @default 7 days */
  readonly statusTtlMs?: number;
  /** How long a dead letter is kept. 0: until purged. @default 7 days */
  readonly deadLetterTtlMs?: number;
  /** The largest result kept, in bytes; a larger one fails its task with RESOURCE_EXHAUSTED. @default 1000000 */
  readonly maxResultBytes?: number;
}

/**
 * A task service as the code generator describes it: its worker type and one
 * {@link TaskMethod} per rpc, keyed by the rpc's local (lowerCamelCase) name.
 */
export interface TaskServiceDefinition<M extends Record<string, TaskMethod> = Record<string, TaskMethod>> {
  /**
   * The version of the protoc-gen-taskwire that generated the definition, e.g.
   * `"0.1.0"`: a runtime of another major version (another minor while 0.x) refuses it.
   */
  readonly generatorVersion: string;
  /** The worker type, from `(taskwire.v1.worker).type`. */
  readonly workerType: string;
  /** The Protobuf service descriptor. */
  readonly service: DescService;
  /** Handlers a worker process runs at once, from `(taskwire.v1.worker).concurrency`; 0 means the runtime's default. */
  readonly concurrency: number;
  /** Handlers running at once across every worker of the type, from `(taskwire.v1.worker).max_concurrency`; 0 or absent: no limit. */
  readonly maxConcurrency?: number;
  /** Attempts started per second across every worker of the type, from `(taskwire.v1.worker).max_rate`; 0 or absent: no limit. */
  readonly maxRate?: number;
  /** Tasks queued or running at most, from `(taskwire.v1.worker).max_queued`; 0 or absent: unbounded. */
  readonly maxQueued?: number;
  /** Where the broker keeps the type's tasks, from `(taskwire.v1.worker).storage`. @default "file" */
  readonly storage?: "file" | "memory";
  /** Copies a NATS cluster keeps of the type's streams, from `(taskwire.v1.worker).replicas`; absent: the deployment's, else 1. */
  readonly replicas?: number;
  /** What the type's finished tasks leave in the broker, from `(taskwire.v1.worker).retention`; absent fields: the deployment's. */
  readonly retention?: RetentionSettings;
  /** Limits per fairness key, from `(taskwire.v1.worker).key_limits`. */
  readonly keyLimits?: KeyLimitSettings;
  /** The task kinds, by local name. */
  readonly methods: M;
}

/**
 * Builds a {@link TaskServiceDefinition}, filling each method's worker type.
 * Called by generated code. Throws when the code's `generatorVersion` does not
 * match this runtime's version: the same major and, while 0.x, the same minor.
 * `sourceInfo`, the comments of the service's proto file, is kept for the
 * gateway's gRPC reflection.
 *
 * ```ts
 * export const hashService = defineTaskService({
 *   generatorVersion: "0.1.0", workerType: "hasher", service: HashService, concurrency: 8,
 *   methods: { digest: { name: "Digest", input: DigestRequestSchema, output: DigestResponseSchema, defaults: {} } },
 * });
 * ```
 */
export function defineTaskService<M extends Record<string, Omit<TaskMethod, "workerType">>>(definition: {
  generatorVersion: string;
  workerType: string;
  service: DescService;
  concurrency: number;
  maxConcurrency?: number;
  maxRate?: number;
  maxQueued?: number;
  storage?: "file" | "memory";
  replicas?: number;
  retention?: RetentionSettings;
  keyLimits?: KeyLimitSettings;
  /** The proto file's SourceCodeInfo (the locations that carry a comment), in base64. */
  sourceInfo?: string;
  methods: M;
}): TaskServiceDefinition<{
  [K in keyof M]: M[K] & {
    /** The service's worker type, filled in from the definition. */
    readonly workerType: string;
  };
}> {
  checkGeneratorVersion(definition);
  const { sourceInfo, ...rest } = definition;
  if (sourceInfo) recordSourceInfo(definition.service.file, sourceInfo);
  const methods = Object.fromEntries(
    Object.entries(definition.methods).map(([key, method]) => [key, { ...method, workerType: definition.workerType }]),
  ) as { [K in keyof M]: M[K] & { readonly workerType: string } };
  return { ...rest, methods };
}

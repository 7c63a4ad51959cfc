import { createHash } from "node:crypto";
import {
  create,
  type DescField,
  type DescMessage,
  getOption,
  hasOption,
  type Message,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  type Any,
  type Duration,
  durationFromMs,
  durationMs,
  type Timestamp,
  timestampDate,
  timestampFromMs,
  timestampMs,
} from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { field as fieldOption } from "../../gen/taskwire/v1/options_pb.ts";
import {
  DeliveryMode,
  DeliveryModeSchema,
  Priority,
  type RetryPolicy,
  RetryPolicySchema,
  type Task,
  type WorkItem,
  WorkItemSchema,
} from "../../gen/taskwire/v1/task_pb.ts";
import { concatMessages, decodeMessage, encodeMessage, packMessage } from "../wire/index.ts";
import { endpointPattern } from "./limits.ts";
import { topology } from "./names.ts";
import { missingRequiredFields } from "./required-fields.ts";
import { searchTermsOf } from "./searchable-fields.ts";
import { TaskError } from "./task-error.ts";
import { keyedTaskId, newTaskId, taskIdToken } from "./task-id.ts";
import type { PriorityName, TaskMethod } from "./task-method.ts";
import type { TaskRegistry } from "./task-registry.ts";

/** The runtime's defaults, used where neither the task nor its method says. */
export const runtimeDefaults = {
  timeoutMs: 60_000,
  retry: { maxAttempts: 3, initialBackoffMs: 1_000, maxBackoffMs: 300_000, multiplier: 2, jitter: 0.2 },
  priority: "normal" as PriorityName,
} as const;

/** A validated task, ready to publish. */
export interface PreparedTask {
  readonly taskId: string;
  /** The subject it is published on. */
  readonly subject: string;
  /** The serialized WorkItem. */
  readonly bytes: Uint8Array;
  /** A delayed task: published with a schedule that moves it to `target` at `at`. */
  readonly schedule?: { readonly at: Date; readonly target: string };
  /**
   * A broadcast: one copy per endpoint (the named ones, or else every live
   * worker instance), all answered by `deadline` or the task ends INCOMPLETE.
   */
  readonly broadcast?: { readonly endpoints: readonly string[]; readonly deadline: Date };
  /** The index terms of its searchable fields (searchable-fields.ts); absent when it has none set. */
  readonly searchTerms?: readonly string[];
  /** A task with a fairness key: `subject` is its key's, where it waits for the dispatcher. */
  readonly held?: boolean;
  /** A singleton method's task: published only where none of its key waits. */
  readonly singleton?: boolean;
  /** A debounced task: the subject that names the last task of its method and key. */
  readonly debounce?: string;
}

/** Limits checked before anything reaches NATS. */
export interface SubmitLimits {
  /** Largest serialized WorkItem accepted, in bytes. @default 1_000_000 (below NATS' 1 MiB default max_payload) */
  maxWorkItemBytes?: number;
}

/** The subject name of each priority. */
export const priorityNames: Record<Priority, PriorityName | undefined> = {
  [Priority.UNSPECIFIED]: undefined,
  [Priority.LOW]: "low",
  [Priority.NORMAL]: "normal",
  [Priority.HIGH]: "high",
};
/** The subject a WorkItem is queued on: its type's, at its priority (normal when unset), its id's token. */
export function taskSubjectOf(workItem: Pick<WorkItem, "workerType" | "priority" | "taskId">): string {
  return topology.taskSubject(
    workItem.workerType,
    priorityNames[workItem.priority] ?? "normal",
    taskIdToken(workItem.taskId),
  );
}

const priorityValues: Record<PriorityName, Priority> = {
  low: Priority.LOW,
  normal: Priority.NORMAL,
  high: Priority.HIGH,
};

/** Where a submitter hears of its tasks' outcomes (see ResultInbox). */
export interface ResultRoute {
  /** The route its task ids end in. */
  readonly route: string;
  /** The subject workers notify of keyed tasks. */
  readonly subject: string;
}

/**
 * Validates a submitted task against the registry and turns it into the
 * WorkItem workers receive. Every refusal is a TaskError naming the problem.
 */
export function prepareTask(
  registry: TaskRegistry,
  task: Task,
  limits: SubmitLimits = {},
  /**
   * Who hears of the outcome: the submitter's route, which the task id carries
   * (the server republishes the status record's writes there), and, for a
   * keyed id, which cannot carry it, the subject the worker notifies
   * (WorkItem.notify_subject). None: nobody.
   */
  notify?: ResultRoute,
  now = Date.now(),
): PreparedTask {
  const method = registry.resolve(task.workerType, task.method);
  const where = `${task.workerType}/${task.method}`;
  const payload = task.payload;
  if (!payload) throw new TaskError(`task.payload is required for ${where}`, Code.InvalidArgument);
  const payloadType = payload.typeUrl.slice(payload.typeUrl.lastIndexOf("/") + 1);
  if (payloadType !== method.input.typeName) {
    throw new TaskError(
      `${where} takes a payload of type ${method.input.typeName}, got ${payloadType ? `one of type ${payloadType}` : "one with no type URL"}`,
      Code.InvalidArgument,
    );
  }
  let request = typedPayloads.get(payload);
  if (!request) {
    try {
      request = decodeMessage(method.input, payload.value);
    } catch (error) {
      throw new TaskError(`payload is not a valid ${payloadType}: ${(error as Error).message}`, Code.InvalidArgument);
    }
  }
  const missing = missingRequiredFields(method.input, request);
  if (missing.length > 0) {
    throw new TaskError(
      `${payloadType} is missing required field${missing.length > 1 ? "s" : ""}: ${missing.join(", ")}`,
      Code.InvalidArgument,
    );
  }
  const terms = searchTermsOf(method.input, request);
  const searchTerms = terms.length > 0 ? { searchTerms: terms } : {};
  const fairnessKey = fairnessKeyOf(task.fairnessKey, method.input, request);
  // A start time that has come already is no delay at all.
  let notBefore: number | undefined;
  if (task.schedule.case === "notBefore") notBefore = timeWithinRange(task.schedule.value, "task.not_before");
  else if (task.schedule.case === "delay") {
    const delayMs = durationMs(task.schedule.value);
    if (!(delayMs >= 0)) throw new TaskError(`task.delay must not be negative, got ${delayMs}ms`, Code.InvalidArgument);
    if (now + delayMs > latestTimeMs)
      throw new TaskError(`task.delay of ${delayMs}ms ends after the year 9999`, Code.InvalidArgument);
    notBefore = now + delayMs;
  }
  if (task.expiresAt) timeWithinRange(task.expiresAt, "task.expires_at");
  if (task.priority !== Priority.UNSPECIFIED && priorityNames[task.priority] === undefined)
    throw new TaskError(`task.priority ${task.priority} is not a Priority`, Code.InvalidArgument);
  if (DeliveryModeSchema.value[task.delivery] === undefined)
    throw new TaskError(`task.delivery ${task.delivery} is not a DeliveryMode`, Code.InvalidArgument);
  if (notBefore !== undefined && notBefore <= now) notBefore = undefined;
  // Per key, the method may debounce (the last task within the window wins) or allow one at a time.
  const { debounceMs, singleton } = method.defaults;
  if ((debounceMs || singleton) && !fairnessKey)
    throw new TaskError(
      `${where} is ${singleton ? "a singleton" : "debounced"} per fairness key: the task needs one (fairnessKey, or the request field marked fairness_key)`,
      Code.InvalidArgument,
    );
  if (singleton && task.schedule.case !== undefined)
    throw new TaskError(`${where} is a singleton per fairness key: its tasks cannot be delayed`, Code.InvalidArgument);
  const methodKey = debounceMs || singleton ? methodKeyHash(method.name, fairnessKey) : "";
  if (debounceMs && task.schedule.case === undefined) notBefore = now + debounceMs;
  if (notBefore !== undefined && task.expiresAt && timestampMs(task.expiresAt) <= notBefore) {
    throw new TaskError(
      `task.expires_at ${timestampDate(task.expiresAt).toISOString()} is not after its start time ${new Date(notBefore).toISOString()}: it could never run`,
      Code.InvalidArgument,
    );
  }
  const delivery =
    task.delivery === DeliveryMode.UNSPECIFIED
      ? method.defaults.delivery === "broadcast"
        ? DeliveryMode.BROADCAST
        : DeliveryMode.QUEUE
      : task.delivery;
  const broadcast = delivery === DeliveryMode.BROADCAST;
  if (task.endpoints.length > 0 && !broadcast) {
    throw new TaskError(
      `task.endpoints names workers for broadcast delivery only (${where} is queued)`,
      Code.InvalidArgument,
    );
  }
  for (const endpoint of task.endpoints) {
    if (!endpointPattern.test(endpoint)) {
      throw new TaskError(
        `task.endpoints: "${endpoint}" is not a worker instance name (${endpointPattern})`,
        Code.InvalidArgument,
      );
    }
  }
  if (broadcast && task.schedule.case !== undefined) {
    throw new TaskError("a broadcast task cannot be delayed: submit it when it is due", Code.InvalidArgument);
  }
  const priority: PriorityName = priorityNames[task.priority] ?? method.defaults.priority ?? runtimeDefaults.priority;
  const timeoutMs = task.timeout
    ? positiveMs(task.timeout, "task.timeout", longestTimerMs)
    : (method.defaults.timeoutMs ?? runtimeDefaults.timeoutMs);
  const expiresAt =
    task.expiresAt ??
    (method.defaults.expiresAfterMs ? timestampFromMs(now + method.defaults.expiresAfterMs) : undefined);
  if (task.expiresAt && timestampMs(task.expiresAt) <= now) {
    throw new TaskError(
      `task.expires_at ${timestampDate(task.expiresAt).toISOString()} is already past`,
      Code.InvalidArgument,
    );
  }

  const taskId = task.idempotencyKey
    ? keyedTaskId(method.workerType, task.idempotencyKey)
    : newTaskId(method.workerType, now, notify?.route);
  const notifySubject = task.idempotencyKey ? (notify?.subject ?? "") : "";
  // Protobuf messages merge by concatenation: the fields a task shares with its
  // method are encoded once per method (when it overrides none), then joined
  // with its own.
  const overrides = task.priority !== Priority.UNSPECIFIED || task.timeout || task.retry || task.delivery;
  const shared =
    (!overrides && sharedParts.get(method)) ||
    encodeMessage(
      WorkItemSchema,
      create(WorkItemSchema, {
        workerType: method.workerType,
        method: method.name,
        payloadType,
        attempt: 1,
        retry: resolveRetry(method, task.retry),
        timeout: durationFromMs(timeoutMs),
        priority: priorityValues[priority],
        delivery,
      }),
    );
  if (!overrides) sharedParts.set(method, shared);
  // Written out as create(WorkItemSchema, ...) would make it, at a fraction of its
  // cost: this runs once per task, and tsc checks that every field is listed.
  const own = encodeMessage(WorkItemSchema, {
    $typeName: WorkItemSchema.typeName,
    taskId,
    workerType: "",
    method: "",
    payload: payload.value,
    payloadType: "",
    attempt: 0,
    submittedAt: timestampFromMs(now),
    expiresAt,
    metadata: task.metadata,
    traceparent: "",
    priority: Priority.UNSPECIFIED,
    delivery: DeliveryMode.UNSPECIFIED,
    endpoint: "",
    notifySubject,
    notBefore: notBefore === undefined ? undefined : timestampFromMs(notBefore),
    submittedBy: task.submittedBy,
    parentTaskId: task.parentTaskId,
    childFailure: task.childFailure,
    resumes: 0,
    fairnessKey,
  });
  const bytes = concatMessages(shared, own);
  const maxBytes = limits.maxWorkItemBytes ?? 1_000_000;
  if (bytes.byteLength > maxBytes) {
    throw new TaskError(
      `task of ${where} is ${bytes.byteLength} bytes serialized, over the limit of ${maxBytes} bytes`,
      Code.ResourceExhausted,
    );
  }
  const token = taskIdToken(taskId);
  if (broadcast) {
    return {
      taskId,
      subject: "",
      bytes,
      broadcast: {
        endpoints: [...new Set(task.endpoints)],
        deadline: new Date(expiresAt ? timestampMs(expiresAt) : now + timeoutMs),
      },
      ...searchTerms,
    };
  }
  if (notBefore !== undefined) {
    return {
      taskId,
      subject: topology.waitingSubject(method.workerType, token),
      bytes,
      schedule: { at: new Date(notBefore), target: topology.dueSubject(method.workerType, token) },
      ...(debounceMs ? { debounce: topology.debounceSubject(method.workerType, methodKey) } : {}),
      ...searchTerms,
    };
  }
  // A task with a fairness key waits among its key's, until its type's dispatcher queues it (see
  // fair-dispatcher.ts); a singleton method's tasks of a key wait apart, one at a time.
  if (fairnessKey) {
    return {
      taskId,
      subject: topology.fairSubject(
        method.workerType,
        singleton ? `${singletonPrefix}${methodKey}` : fairnessKeyHash(fairnessKey),
      ),
      bytes,
      held: true,
      ...(singleton ? { singleton: true } : {}),
      ...searchTerms,
    };
  }
  return { taskId, subject: topology.taskSubject(method.workerType, priority, token), bytes, ...searchTerms };
}

/** The first letter of a singleton key's token: its tasks run one at a time. */
export const singletonPrefix = "s";

/** The longest fairness key, in bytes. */
export const maxFairnessKeyBytes = 256;

/**
 * A task's fairness key: the one given at submit, else the value of the request
 * field marked `(taskwire.v1.field).fairness_key` (a string or an integer), else "".
 */
function fairnessKeyOf(given: string, input: DescMessage, request: Message): string {
  let key = given;
  if (!key) {
    const field = fairnessKeyField(input);
    const value = field ? (request as unknown as Record<string, unknown>)[field.localName] : undefined;
    if (typeof value === "string" || typeof value === "number" || typeof value === "bigint") key = String(value);
    if (key === "0") key = "";
  }
  if (Buffer.byteLength(key) > maxFairnessKeyBytes)
    throw new TaskError(
      `fairness key of ${Buffer.byteLength(key)} bytes: at most ${maxFairnessKeyBytes}`,
      Code.InvalidArgument,
    );
  return key;
}

/** The request field marked as the fairness key, by message type, looked up once per type (submits are the hot path). */
const keyFields = new WeakMap<DescMessage, DescField | null>();
function fairnessKeyField(input: DescMessage): DescField | undefined {
  let field = keyFields.get(input);
  if (field === undefined) {
    field = input.fields.find((f) => hasOption(f, fieldOption) && getOption(f, fieldOption).fairnessKey) ?? null;
    keyFields.set(input, field);
  }
  return field ?? undefined;
}

/** The subject token of a method's fairness key (a debounced or singleton method's tasks of a key). */
export function methodKeyHash(method: string, fairnessKey: string): string {
  return fairnessKeyHash(`${method}\0${fairnessKey}`);
}

/** The subject token of a fairness key: the first 16 hex digits of its SHA-256. */
export function fairnessKeyHash(key: string): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 16);
}

/** Payloads packed by {@link packPayload}, with the message each was encoded from. */
const typedPayloads = new WeakMap<Any, Message>();

/**
 * Packs a typed submit's request. {@link prepareTask} then checks the message
 * it came from instead of decoding the bytes it just encoded.
 */
export function packPayload<I extends DescMessage>(input: I, request: MessageShape<I>): Any {
  const any = packMessage(input, request);
  typedPayloads.set(any, request);
  return any;
}

/** The encoded WorkItem fields of tasks that override none of their method's defaults. */
const sharedParts = new WeakMap<TaskMethod, Uint8Array>();

function resolveRetry(method: TaskMethod, override: RetryPolicy | undefined): RetryPolicy {
  const d = { ...runtimeDefaults.retry, ...method.defaults.retry };
  const o = override;
  const policy = create(RetryPolicySchema, {
    maxAttempts: o?.maxAttempts || d.maxAttempts,
    initialBackoff: o?.initialBackoff
      ? durationFromMs(positiveMs(o.initialBackoff, "task.retry.initial_backoff", longestTimerMs))
      : durationFromMs(d.initialBackoffMs),
    maxBackoff: o?.maxBackoff
      ? durationFromMs(positiveMs(o.maxBackoff, "task.retry.max_backoff", longestTimerMs))
      : durationFromMs(d.maxBackoffMs),
    multiplier: o?.multiplier || d.multiplier,
    jitter: o?.jitter || d.jitter,
  });
  if (policy.multiplier < 1)
    throw new TaskError(`task.retry.multiplier must be at least 1, got ${policy.multiplier}`, Code.InvalidArgument);
  if (policy.jitter < 0 || policy.jitter > 1)
    throw new TaskError(`task.retry.jitter must be in [0, 1], got ${policy.jitter}`, Code.InvalidArgument);
  if (policy.maxAttempts > 1000)
    throw new TaskError(
      `task.retry.max_attempts must be at most 1000, got ${policy.maxAttempts}`,
      Code.InvalidArgument,
    );
  return policy;
}

/** The longest a Node timer waits (2^31-1 ms, 24.8 days): a timeout's or a backoff's bound. */
const longestTimerMs = 2 ** 31 - 1;

/** The end of a Timestamp's range (9999-12-31T23:59:59.999Z), which JSON and schedules can express. */
const latestTimeMs = 253_402_300_799_999;

function positiveMs(duration: Duration, name: string, maxMs: number): number {
  const ms = durationMs(duration);
  if (!(ms > 0)) throw new TaskError(`${name} must be positive, got ${ms}ms`, Code.InvalidArgument);
  if (ms > maxMs)
    throw new TaskError(`${name} must be at most ${maxMs}ms (24.8 days), got ${ms}ms`, Code.InvalidArgument);
  return ms;
}

/** A timestamp's milliseconds, if it lies within years 1 to 9999 (a Timestamp's range). */
function timeWithinRange(time: Timestamp, name: string): number {
  const ms = timestampMs(time);
  if (!(ms >= -62_135_596_800_000 && ms <= latestTimeMs))
    throw new TaskError(`${name} must lie within the years 1 to 9999, got ${time.seconds}s`, Code.InvalidArgument);
  return ms;
}

import { fromBinary, type Registry, toJson } from "@bufbuild/protobuf";
import { type Any, type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { ErrorCodeSchema, PrioritySchema, type TaskError, type TaskStatus } from "../gen/taskwire/v1/task_pb.ts";
import { stateName } from "../sdk/core/index.ts";
import { formatAge } from "./time-flags.ts";

/**
 * A task's status as "label  value" fields for a person: state, method,
 * attempts, times (with their age), worker, key, metadata, progress, the error
 * and the errors of earlier attempts, each broadcast endpoint, and the result
 * as JSON decoded with `registry`.
 */
export function describeStatus(
  status: TaskStatus,
  registry: Registry,
  now: Date,
): (readonly [string, string | undefined])[] {
  const time = (at: Timestamp | undefined) => at && describeTime(at, now);
  return [
    ["task", status.taskId],
    ["state", stateName(status.state)],
    ["method", `${status.workerType}/${status.method}`],
    ["attempts", `${status.attempt} of ${status.maxAttempts}`],
    ["priority", PrioritySchema.value[status.priority]?.localName],
    ["submitted", `${time(status.createdAt) ?? "?"}${status.submittedBy ? ` by ${status.submittedBy}` : ""}`],
    ["not before", time(status.notBefore)],
    ["expires", time(status.expiresAt)],
    ["started", time(status.startedAt)],
    ["finished", time(status.finishedAt)],
    ["updated", time(status.updatedAt)],
    ["worker", status.workerId],
    ["key", status.idempotencyKey],
    [
      "metadata",
      Object.entries(status.metadata)
        .map(([key, value]) => `${key}=${value}`)
        .join("\n"),
    ],
    ["progress", status.progress && `${Math.round(status.progress.fraction * 100)}% ${status.progress.message}`.trim()],
    ["error", status.error && describeError(status.error)],
    ["history", status.errorHistory.map((error) => `attempt ${error.attempt}: ${describeError(error)}`).join("\n")],
    [
      "endpoints",
      status.endpoints
        .map((e) => `${e.endpoint}: ${stateName(e.state)}${e.error ? ` (${describeError(e.error)})` : ""}`)
        .join("\n"),
    ],
    ["result", status.result && anyJson(status.result, registry)],
  ];
}

/** "FAILED_PRECONDITION: the message". */
export function describeError(error: TaskError): string {
  return `${ErrorCodeSchema.value[error.code]?.localName ?? error.code}: ${error.message}`;
}

/** "2025-06-01T12:00:00.000Z (3m5s ago)", or "(in 9m)" for a time ahead of `now`. */
export function describeTime(at: Timestamp, now: Date): string {
  const date = timestampDate(at);
  const ms = now.getTime() - date.getTime();
  return `${date.toISOString()} (${ms >= 0 ? `${formatAge(ms)} ago` : `in ${formatAge(-ms)}`})`;
}

/**
 * A message's JSON, indented, from its type name and binary bytes (a dead
 * letter's payload); a type `registry` does not know is said so, with its size.
 */
export function messageJson(typeName: string, bytes: Uint8Array, registry: Registry): string {
  const schema = registry.getMessage(typeName);
  if (!schema) return `(${bytes.length} bytes of ${typeName || "an unnamed type"}: a message type not known here)`;
  return JSON.stringify(toJson(schema, fromBinary(schema, bytes), { registry }), null, 2);
}

/** The JSON of the message an Any holds (a result), as {@link messageJson}. */
function anyJson(any: Any, registry: Registry): string {
  return messageJson(any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1), any.value, registry);
}

import { WireType } from "@bufbuild/protobuf/wire";
import { type Any, AnySchema, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import {
  type TaskError as TaskErrorMessage,
  TaskErrorSchema,
  TaskState,
  TaskStateSchema,
  type TaskStatus,
  TaskStatusSchema,
  type WorkItem,
} from "../../gen/taskwire/v1/task_pb.ts";
import { decodeMessage, scanMessage } from "../wire/index.ts";
import { TaskError } from "./task-error.ts";

const terminalStates = new Set<TaskState>([
  TaskState.SUCCEEDED,
  TaskState.FAILED,
  TaskState.CANCELLED,
  TaskState.EXPIRED,
  TaskState.INCOMPLETE,
]);

/** A state's name as the protocol's enum spells it without its prefix ("SUCCEEDED"), or its number. */
export function stateName(state: TaskState): string {
  return TaskStateSchema.value[state]?.localName ?? String(state);
}

/** True for states that never change again. */
export function isTerminal(state: TaskState): boolean {
  return terminalStates.has(state);
}

/**
 * The status of a task that is still queued (or waiting for its start time),
 * derived from its WorkItem. Made once per attempt: written out as the message
 * `create(TaskStatusSchema, ...)` would make (the type lists every field, so tsc
 * catches one added to the proto), at a fifth of create's cost.
 */
export function queuedStatus(workItem: WorkItem, state: TaskState = TaskState.PENDING): TaskStatus {
  return {
    $typeName: TaskStatusSchema.typeName,
    taskId: workItem.taskId,
    workerType: workItem.workerType,
    method: workItem.method,
    state,
    priority: workItem.priority,
    attempt: 0,
    maxAttempts: workItem.retry?.maxAttempts ?? 0,
    createdAt: workItem.submittedAt,
    updatedAt: workItem.submittedAt,
    errorHistory: [],
    endpoints: [],
    metadata: { ...workItem.metadata },
    idempotencyKey: "",
    workerId: "",
    notBefore: workItem.notBefore,
    expiresAt: workItem.expiresAt,
    delivery: workItem.delivery,
    returnedDeliveries: 0,
    deliverySequence: 0n,
    deliveryCount: 0,
    submittedBy: workItem.submittedBy,
    parentTaskId: workItem.parentTaskId,
    childFailure: workItem.childFailure,
    fairnessKey: workItem.fairnessKey,
  };
}

/** Makes a record CANCELLED now, with `reason` as its (not retryable) error. */
export function markCancelled(status: TaskStatus, reason: string): void {
  status.state = TaskState.CANCELLED;
  status.finishedAt = timestampNow();
  status.error = new TaskError(reason, Code.Canceled, { retryable: false }).toMessage(status.attempt);
}

/** The task id (field 1) and state (field 4) of an encoded TaskStatus, read without decoding the rest. */
export function encodedOutcome(bytes: Uint8Array): { readonly taskId: string; readonly state: TaskState } {
  let taskId = "";
  let state: TaskState = TaskState.UNSPECIFIED;
  scanMessage(bytes, (field, wireType, reader) => {
    if (field === 1 && wireType === WireType.LengthDelimited) taskId = reader.string();
    else if (field === 4 && wireType === WireType.Varint) state = reader.int32() as TaskState;
    else return false;
    return true;
  });
  return { taskId, state };
}

/**
 * What a typed result needs of a terminal status.
 *
 * @inline
 */
export type TaskOutcome = Pick<TaskStatus, "taskId" | "state" | "result" | "error">;

/**
 * The outcome fields of an encoded TaskStatus, without decoding the rest (its
 * timestamps, metadata and error history: most of the cost of a decode).
 * Writers encode each of these fields once, so the last one read is the one.
 */
export function decodeOutcome(bytes: Uint8Array): TaskOutcome {
  let taskId = "";
  let state: TaskState = TaskState.UNSPECIFIED;
  let result: Any | undefined;
  let error: TaskErrorMessage | undefined;
  scanMessage(bytes, (field, wireType, reader) => {
    if (wireType === WireType.Varint) {
      if (field !== 4) return false;
      state = reader.int32() as TaskState;
      return true;
    }
    if (wireType !== WireType.LengthDelimited) return false;
    if (field === 1) taskId = reader.string();
    else if (field === 12) result = decodeMessage(AnySchema, reader.bytes());
    else if (field === 13) error = decodeMessage(TaskErrorSchema, reader.bytes());
    else return false;
    return true;
  });
  return { taskId, state, result, error };
}

/** Decodes a status record's bytes. */
export function decodeStatus(bytes: Uint8Array): TaskStatus {
  return decodeMessage(TaskStatusSchema, bytes);
}

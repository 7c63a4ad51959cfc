import { create, toBinary } from "@bufbuild/protobuf";
import type { NatsConnection } from "@nats-io/transport-node";
import { type TaskResult, TaskResultSchema, TaskState, type TaskStatus } from "../gen/taskwire/v1/task_pb.ts";
import { topology } from "../sdk/core/index.ts";
import { renumberFields } from "../sdk/wire/index.ts";

/**
 * Sees each TaskResult event before it is published: return a TaskResult to
 * publish instead, `null` to publish nothing, or `undefined` to publish it as
 * it is. The task's status record is written regardless.
 */
export type ResultHook = (result: TaskResult) => TaskResult | null | undefined | Promise<TaskResult | null | undefined>;

/** Where and how a worker reports outcomes as events. */
export interface ResultEventOptions {
  /** The subject of a worker type's events. @default `taskwire.result.<type>` */
  subject?: (workerType: string) => string;
  /** Replaces or suppresses events. */
  onResult?: ResultHook;
}

/** The TaskResult event of a terminal status. */
export function taskResultOf(status: TaskStatus): TaskResult {
  return create(TaskResultSchema, {
    taskId: status.taskId,
    attempt: status.attempt,
    outcome:
      status.state === TaskState.SUCCEEDED && status.result
        ? { case: "result", value: status.result }
        : status.error
          ? { case: "error", value: status.error }
          : { case: undefined },
    workerId: status.workerId,
    startedAt: status.startedAt,
    finishedAt: status.finishedAt,
    workerType: status.workerType,
    method: status.method,
  });
}

/** TaskStatus field numbers and the TaskResult fields they become (same types). */
const statusToResult = new Map([
  [1, 1], // task_id
  [6, 2], // attempt
  [12, 3], // result
  [13, 4], // error
  [19, 5], // worker_id
  [9, 6], // started_at
  [10, 7], // finished_at
  [2, 9], // worker_type
  [3, 10], // method
]);

/** The encoded TaskResult event of an encoded terminal TaskStatus, without decoding it. */
export function encodedTaskResult(status: Uint8Array): Uint8Array {
  return renumberFields(status, statusToResult);
}

/**
 * Publishes every terminal outcome as a TaskResult over core NATS, after the
 * status record is stored: a stream of results for other systems (capture the
 * subject in a JetStream stream to keep them). Best effort, like any core
 * publish; the status record stays the truth. Without a hook, the event's
 * bytes come straight from the stored record's.
 */
export function resultPublisher(
  nc: NatsConnection,
  options: ResultEventOptions,
  onError: (error: unknown) => void,
): (status: TaskStatus, stored: Uint8Array) => void {
  const subjectOf = options.subject ?? topology.resultSubject;
  return (status, stored) => {
    if (!options.onResult) return nc.publish(subjectOf(status.workerType), encodedTaskResult(stored));
    const event = taskResultOf(status);
    const publish = (result: TaskResult | null | undefined) => {
      const chosen = result === undefined ? event : result;
      if (chosen) nc.publish(subjectOf(status.workerType), toBinary(TaskResultSchema, chosen));
    };
    try {
      const hooked = options.onResult(event);
      if (hooked instanceof Promise) hooked.then(publish, onError);
      else publish(hooked);
    } catch (error) {
      onError(error);
    }
  };
}

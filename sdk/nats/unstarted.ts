import { create, fromBinary } from "@bufbuild/protobuf";
import { type Any, AnySchema } from "@bufbuild/protobuf/wkt";
import type { NatsConnection } from "@nats-io/transport-node";
import { DeadLetterSchema } from "../../gen/taskwire/v1/queue_service_pb.ts";
import { TaskState, type WorkItem, WorkItemSchema } from "../../gen/taskwire/v1/task_pb.ts";
import { taskIdOfSubject, taskIdToken, topology, workerTypeOf } from "../core/index.ts";
import { directGetLast, isNoSuchStream } from "./jetstream-ops.ts";

/** A task that has not started: its WorkItem, and whether it is queued or waiting for its time. */
export interface Unstarted {
  readonly state: TaskState;
  readonly workItem: Uint8Array;
}

/**
 * Where a task of the type that has not started is, in the order to look: the
 * schedule first, for a due task is published on its task subject before it
 * leaves the schedule, so a read in this order cannot miss it on its way
 * between the two. Each place's subject matches the task with an id token.
 */
export function unstartedPlaces(workerType: string) {
  return [
    {
      stream: topology.schedulerStream(workerType),
      subject: (token: string) => topology.scheduledSubject(workerType, token),
      state: TaskState.SCHEDULED,
    },
    {
      stream: topology.streamName(workerType),
      subject: (token: string) => topology.taskSubjectAnyPriority(workerType, token),
      state: TaskState.PENDING,
    },
  ] as const;
}

/**
 * Of these tasks, those still queued (PENDING) or waiting for their start time
 * (SCHEDULED), with their WorkItem: it is in the type's stream or scheduler
 * stream. One batched direct get per stream and worker type (the subjects'
 * priority or phase a wildcard).
 */
export async function unstartedTasks(nc: NatsConnection, taskIds: readonly string[]): Promise<Map<string, Unstarted>> {
  const byType = new Map<string, string[]>();
  for (const taskId of taskIds) {
    const type = workerTypeOf(taskId);
    const ids = byType.get(type);
    if (ids) ids.push(taskId);
    else byType.set(type, [taskId]);
  }
  const unstarted = new Map<string, Unstarted>();
  for (const [type, ids] of byType) {
    const tokens = ids.map(taskIdToken);
    for (const { stream, subject, state } of unstartedPlaces(type)) {
      const found = await directGetLast(nc, stream, tokens.map(subject)).catch((error: unknown) => {
        // The type has no such stream on this server: none of its tasks is there.
        if (isNoSuchStream(error)) return new Map<string, never>();
        throw error;
      });
      for (const [at, message] of found) {
        const taskId = taskIdOfSubject(type, at);
        if (!unstarted.has(taskId)) unstarted.set(taskId, { state, workItem: message.data });
      }
    }
  }
  return unstarted;
}

/** Of these tasks, the ids of those still queued or scheduled (see {@link unstartedTasks}). */
export async function unstartedOf(nc: NatsConnection, taskIds: readonly string[]): Promise<Set<string>> {
  return new Set((await unstartedTasks(nc, taskIds)).keys());
}

/**
 * A task's payload where the broker still keeps it: its message while delayed,
 * queued or running (the queue keeps it until acked), else its dead letter's
 * WorkItem. Undefined for a task that finished (or never was).
 */
export async function keptPayload(nc: NatsConnection, taskId: string): Promise<Any | undefined> {
  const unstarted = (await unstartedTasks(nc, [taskId])).get(taskId);
  let workItem: WorkItem | undefined = unstarted && fromBinary(WorkItemSchema, unstarted.workItem);
  if (!workItem) {
    const type = workerTypeOf(taskId);
    const subject = topology.deadLetterSubject(type, taskIdToken(taskId));
    const found = await directGetLast(nc, topology.deadLetterStream(type), [subject]).catch((error: unknown) => {
      if (isNoSuchStream(error)) return new Map<string, never>();
      throw error;
    });
    const letter = found.get(subject);
    workItem = letter && fromBinary(DeadLetterSchema, letter.data).workItem;
  }
  if (!workItem || workItem.taskId !== taskId) return undefined;
  return create(AnySchema, { typeUrl: `type.googleapis.com/${workItem.payloadType}`, value: workItem.payload });
}

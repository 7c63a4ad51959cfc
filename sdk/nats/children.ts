import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { headers } from "@nats-io/transport-node";
import {
  ChildFailure,
  type Children,
  ChildrenSchema,
  TaskState,
  type TaskStatus,
  WorkItemSchema,
} from "../../gen/taskwire/v1/task_pb.ts";
import { taskIdToken, taskSubjectOf, topology, workerTypeOf } from "../core/index.ts";
import { directGet, isNoSuchStream, isQueuedAlready, publishToStream } from "./jetstream-ops.ts";
import type { RequestPipeline } from "./request-pipeline.ts";
import { readStatus, type StatusBucket, writeStatus } from "./status-store.ts";
import type { TaskIndexWriter } from "./task-index.ts";

/**
 * Parents and their children, with state of constant size per parent: two
 * counters (ADR-49) in `CHILDREN_<type>`, and a marker of the child whose
 * failure fails it.
 *
 * The counter `ended` holds the children ended minus the children the parent
 * had spawned at its last wait. A child that ends adds 1; a parent that waits
 * subtracts the children spawned since its previous wait. Whichever publish
 * brings it to 0 (its PubAck says so) saw the last child end after the parent
 * waited, and resumes the parent: no process reads the parent per child.
 */

/** The states in which a child counts as failed. */
const failedStates = new Set<TaskState>([TaskState.FAILED, TaskState.CANCELLED, TaskState.EXPIRED]);

/** A counter's value, or 0 when it has none yet. */
async function counterValue(requests: RequestPipeline, type: string, subject: string): Promise<bigint> {
  const stored = await directGet(requests, topology.childrenStream(type), { lastBySubject: subject });
  if (!stored) return 0n;
  return BigInt((JSON.parse(decoder.decode(stored.data)) as { val: string }).val);
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Adds `delta` to a counter, once per `messageId`; resolves with its value after, or undefined for a repeat. */
async function increment(
  requests: RequestPipeline,
  subject: string,
  delta: bigint,
  messageId: string,
): Promise<bigint | undefined> {
  const h = headers();
  h.set("Nats-Incr", delta >= 0n ? `+${delta}` : String(delta));
  h.set("Nats-Msg-Id", messageId);
  const ack = await publishToStream(requests, subject, new Uint8Array(0), h);
  return ack.duplicate || ack.value === undefined ? undefined : BigInt(ack.value);
}

/** What a parent knows of its children when it waits. */
export interface ChildCount {
  /** Children ended, of those spawned at its last wait and since. */
  readonly ended: bigint;
  /** Of those, how many failed (CHILD_FAILURE_IGNORE ones left out). */
  readonly failed: bigint;
  /** A child whose failure fails the parent (CHILD_FAILURE_FAIL_PARENT), if one did. */
  readonly fatal: string | undefined;
}

/** Reads a parent's counts; `waited` is the children it had spawned at its last wait (its record's). */
export async function countChildren(requests: RequestPipeline, parentId: string, waited: bigint): Promise<ChildCount> {
  const type = workerTypeOf(parentId);
  const token = taskIdToken(parentId);
  const [ended, failed, fatal] = await Promise.all([
    counterValue(requests, type, topology.childrenCounter(type, token, "ended")),
    counterValue(requests, type, topology.childrenCounter(type, token, "failed")),
    directGet(requests, topology.indexStream(type), { lastBySubject: topology.fatalChildSubject(type, token) }),
  ]);
  return {
    ended: ended + waited,
    failed,
    fatal: fatal ? decoder.decode(fatal.data) : undefined,
  };
}

/** The children part of a parent's record, with its counts read now. */
export async function childrenOf(requests: RequestPipeline, status: TaskStatus): Promise<Children | undefined> {
  if (!status.children) return undefined;
  const count = await countChildren(requests, status.taskId, status.children.spawned);
  return create(ChildrenSchema, { spawned: status.children.spawned, ended: count.ended, failed: count.failed });
}

/**
 * Counts a child that ended (its terminal record is stored) in its parent's
 * counters, once however often it is called, and resumes the parent if it was
 * the last one it waits for, or one whose failure fails it. Call it before
 * the child's message is acked: a crash in between redelivers it, and the
 * redelivery calls it again.
 */
export async function countChild(bucket: StatusBucket, child: TaskStatus): Promise<void> {
  const parentId = child.parentTaskId;
  if (!parentId) return;
  const { requests } = bucket;
  const type = workerTypeOf(parentId);
  const token = taskIdToken(parentId);
  const failed = failedStates.has(child.state) && child.childFailure !== ChildFailure.IGNORE;
  const fatal =
    failed && (child.childFailure === ChildFailure.UNSPECIFIED || child.childFailure === ChildFailure.FAIL_PARENT);
  if (failed) await increment(requests, topology.childrenCounter(type, token, "failed"), 1n, `${child.taskId}/failed`);
  if (fatal) {
    const h = headers();
    h.set("Nats-Msg-Id", `${child.taskId}/fatal`);
    await publishToStream(requests, topology.fatalChildSubject(type, token), encoder.encode(child.taskId), h);
  }
  const subject = topology.childrenCounter(type, token, "ended");
  const value = await increment(requests, subject, 1n, `${child.taskId}/ended`);
  // A repeat says nothing of the value: read it (the first call may have died before resuming).
  const now = value ?? (await counterValue(requests, type, subject));
  if (now === 0n || fatal) await resumeParent(bucket, parentId);
}

/**
 * Records that a parent waits for `spawned` children (its record says it has
 * waited for `waited` before): subtracts the new ones from its `ended` counter,
 * once per total. True when they have all ended already.
 */
export async function awaitChildren(
  requests: RequestPipeline,
  parentId: string,
  spawned: bigint,
  waited: bigint,
): Promise<boolean> {
  const type = workerTypeOf(parentId);
  const subject = topology.childrenCounter(type, taskIdToken(parentId), "ended");
  const value = await increment(requests, subject, waited - spawned, `${parentId}/wait/${spawned}`);
  return (value ?? (await counterValue(requests, type, subject))) === 0n;
}

/** Keeps a waiting parent's WorkItem until it resumes, replacing any kept before. */
export async function parkWorkItem(requests: RequestPipeline, parentId: string, workItem: Uint8Array): Promise<void> {
  const h = headers();
  h.set("Nats-Rollup", "sub");
  await publishToStream(requests, topology.parkedSubject(workerTypeOf(parentId), taskIdToken(parentId)), workItem, h);
}

/**
 * Queues a WAITING parent again once its children have all ended (or one whose
 * failure fails it did): its kept WorkItem, one resume more, goes to its task
 * subject (one message per subject: a second resumer is refused there), then
 * its record becomes PENDING. Does nothing for a parent that is not waiting,
 * still waits, or was resumed already.
 */
export async function resumeParent(bucket: StatusBucket, parentId: string): Promise<void> {
  const stored = await readStatus(bucket, parentId);
  if (stored?.status.state !== TaskState.WAITING) return;
  // Whoever calls, the counts decide: a late resumer of an earlier wait must not end this one.
  const spawned = stored.status.children?.spawned ?? 0n;
  const count = await countChildren(bucket.requests, parentId, spawned);
  if (count.ended < spawned && !count.fatal) return;
  const type = workerTypeOf(parentId);
  const token = taskIdToken(parentId);
  const parked = await directGet(bucket.requests, topology.schedulerStream(type), {
    lastBySubject: topology.parkedSubject(type, token),
  });
  if (!parked) return;
  const workItem = fromBinary(WorkItemSchema, parked.data);
  workItem.resumes += 1;
  const h = headers();
  h.set("Nats-Msg-Id", `${parentId}/resume/${workItem.resumes}`);
  try {
    await publishToStream(bucket.requests, taskSubjectOf(workItem), toBinary(WorkItemSchema, workItem), h);
  } catch (error) {
    // Queued already: by another resumer, which writes the record; or it is the parent's own
    // message, not yet acked, and the parent resumes itself once it is. Either way, not ours.
    if (isQueuedAlready(error)) return;
    throw error;
  }
  stored.status.state = TaskState.PENDING;
  await writeStatus(bucket, stored.status, stored.revision);
}

/** Adds a child's id to its parent's list (ListTasks by parent, and a cancel that reaches it), with the others of this turn. */
export function listChild(index: TaskIndexWriter, parentId: string, childId: string): Promise<void> {
  return index.add(topology.childrenIndexSubject(workerTypeOf(parentId), taskIdToken(parentId)), childId);
}

/** A parent's children ids, in the order they were listed, a message at a time (a repeat may come twice). */
export async function* childIds(requests: RequestPipeline, parentId: string): AsyncIterable<string[]> {
  const type = workerTypeOf(parentId);
  const subject = topology.childrenIndexSubject(type, taskIdToken(parentId));
  for (let from = 0; ; ) {
    const stored = await directGet(requests, topology.indexStream(type), { nextBySubject: subject, from });
    if (!stored) return;
    yield decoder
      .decode(stored.data)
      .split("\n")
      .filter((id) => id !== "");
    from = stored.seq + 1;
  }
}

/**
 * Cancels a parent's children that have not ended (a cancelled or failed
 * parent's), a list message at a time; a child already ended is left as it is.
 */
export async function cancelChildren(
  requests: RequestPipeline,
  parentId: string,
  cancel: (childId: string) => Promise<unknown>,
): Promise<void> {
  try {
    for await (const ids of childIds(requests, parentId)) {
      await Promise.all(ids.map((id) => cancel(id).catch(() => undefined)));
    }
  } catch (error) {
    // A type whose index was never made has no children listed.
    if (!isNoSuchStream(error)) throw error;
  }
}

import type { JsMsg } from "@nats-io/jetstream";
import { TaskState, type TaskStatus, type WorkItem, WorkItemSchema } from "../gen/taskwire/v1/task_pb.ts";
import { isTerminal, queuedStatus } from "../sdk/core/index.ts";
import { readStatus, type StatusBucket, type StoredStatus, writeStatus } from "../sdk/nats/index.ts";
import { decodeMessage } from "../sdk/wire/index.ts";

/**
 * How a give-back ended: the task is queued again, it had ended already
 * (acked), or a later delivery has it (left alone: see {@link overtaken}).
 */
export type GiveBackOutcome = "requeued" | "superseded" | "overtaken";

/** The delivery a record names as its last writer (TaskStatus.delivery_sequence, delivery_count). */
export type Delivery = Pick<TaskStatus, "deliverySequence" | "deliveryCount">;

/** The delivery of `msg`, as records name it. */
export function deliveryOf(msg: JsMsg): Delivery {
  return { deliverySequence: BigInt(msg.seq), deliveryCount: msg.info.deliveryCount };
}

/**
 * Whether a later delivery of the task than `mine` wrote `record`, which is
 * not terminal: this delivery's worker stopped answering (frozen, or cut off)
 * for `ack_wait`, and JetStream gave the task to another. That delivery has the
 * task now, so this one writes nothing more and neither acks nor naks: an ack
 * or a nak names the message, whichever delivery sent it, and a nak would
 * queue a copy beside the one running. Deliveries compare by stream sequence
 * (a `RetryDeadLetter` publishes the task again), then by delivery count.
 */
export function overtaken(record: TaskStatus, mine: Delivery): boolean {
  if (isTerminal(record.state)) return false;
  if (record.deliverySequence !== mine.deliverySequence) return record.deliverySequence > mine.deliverySequence;
  return record.deliveryCount > mine.deliveryCount;
}

/**
 * How many attempts a task spent before this delivery: the record's `attempt`,
 * which names the last attempt that started and was not given back. JetStream
 * counts deliveries, but a delivery whose worker died before starting it (it
 * was pulled ahead) spends nothing. Every redelivery records its start before
 * its handler runs (see `recordsStart`), so only a first delivery can start
 * unrecorded: with no record, it is presumed to have started, unless the task
 * has a single attempt (whose first delivery records its start too, so that it
 * is never presumed spent). A broadcast copy's attempts are its deliveries.
 */
export function spentAttempts(record: TaskStatus | undefined, workItem: WorkItem, deliveries: number): number {
  if (deliveries === 1) return 0;
  if (record) return record.attempt;
  return maxAttemptsOf(workItem) > 1 ? 1 : 0;
}

/** The attempts a task may make: a WorkItem without a retry policy has one. */
export function maxAttemptsOf(workItem: WorkItem): number {
  return workItem.retry?.maxAttempts || 1;
}

/**
 * Whether a delivery records its start, durably, before its handler runs: every
 * redelivery (whatever its attempt number: after a give-back or a
 * RetryDeadLetter, a redelivery can be attempt 1), and a single-attempt task's
 * first delivery. See `spentAttempts`.
 */
export function recordsStart(deliveries: number, maxAttempts: number): boolean {
  return deliveries > 1 || maxAttempts === 1;
}

/**
 * Gives a delivery back to the stream because this worker is shutting down,
 * without spending one of the task's attempts: the task's record says how many
 * it spent (`attempt`) and counts the delivery as returned
 * (`returned_deliveries`), then the message is nak'ed. A task whose record is
 * terminal already is acked instead, and one that a later delivery has is left
 * alone ({@link overtaken}). If the record cannot be written (NATS
 * unreachable), the nak goes out anyway, as a crash would. Broadcast copies
 * share one record between endpoints and are nak'ed as they are.
 */
export async function giveBack(bucket: StatusBucket, msg: JsMsg): Promise<GiveBackOutcome> {
  try {
    const workItem = decodeMessage(WorkItemSchema, msg.data);
    if (workItem.endpoint) {
      msg.nak();
      return "requeued";
    }
    const deliveries = msg.info.deliveryCount;
    const mine = deliveryOf(msg);
    // A first delivery has no record yet, unless a cancel wrote one.
    let record: StoredStatus | undefined = deliveries > 1 ? await readStatus(bucket, workItem.taskId) : undefined;
    record ??= { status: queuedStatus(workItem), revision: 0 };
    // Two tries: a conflict tells the revision (or the terminal state) to write over.
    for (let tries = 0; record && tries < 2; tries++) {
      if (isTerminal(record.status.state)) {
        msg.ack();
        return "superseded";
      }
      if (overtaken(record.status, mine)) return "overtaken";
      markReturned(record.status, spentAttempts(record.revision ? record.status : undefined, workItem, deliveries));
      Object.assign(record.status, mine);
      if (await writeStatus(bucket, record.status, record.revision)) break;
      record = await readStatus(bucket, workItem.taskId);
    }
  } catch {
    // Undecodable, or NATS unreachable: give it back all the same.
  }
  msg.nak();
  return "requeued";
}

/**
 * Makes the record queued again, as it was before the delivery started, with
 * the attempts spent before it, and counts the delivery as given back.
 */
export function markReturned(status: TaskStatus, spent: number): void {
  status.attempt = spent;
  status.returnedDeliveries += 1;
  if (status.state === TaskState.RUNNING) {
    status.state = status.errorHistory.length > 0 ? TaskState.RETRYING : TaskState.PENDING;
  }
  status.workerId = "";
}

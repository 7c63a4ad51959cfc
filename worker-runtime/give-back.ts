import type { JsMsg } from "@nats-io/jetstream";
import { WorkItemSchema } from "../gen/taskwire/v1/task_pb.ts";
import { isTerminal, queuedStatus } from "../sdk/core/index.ts";
import { readStatus, type StatusBucket, type StoredStatus, writeStatus } from "../sdk/nats/index.ts";
import { decodeMessage } from "../sdk/wire/index.ts";
import { deliveryOf, markReturned, overtaken, spentAttempts } from "./attempt-rules.ts";

/**
 * How a give-back ended: the task is queued again, it had ended already
 * (acked), or a later delivery has it (left alone: see {@link overtaken}).
 */
export type GiveBackOutcome = "requeued" | "superseded" | "overtaken";

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

import type { JsMsg } from "@nats-io/jetstream";
import { TaskState, type TaskStatus, WorkItemSchema } from "../gen/taskwire/v1/task_pb.js";
import {
  isTerminal,
  queuedStatus,
  readStatus,
  type StatusBucket,
  type StoredStatus,
  writeStatus,
} from "../sdk/task-status.js";
import { decodeMessage } from "../sdk/wire-codec.js";

/** How a give-back ended: the task is queued again, or it had ended already (acked). */
export type GiveBackOutcome = "requeued" | "superseded";

/**
 * Gives a delivery back to the stream because this worker is shutting down,
 * without spending one of the task's attempts: JetStream counts every delivery,
 * so the task's record first counts the delivery as returned
 * (`returned_deliveries`), then the message is nak'ed. A task whose record is
 * terminal already is acked instead. If the record cannot be written (NATS
 * unreachable), the nak goes out anyway and the delivery counts as an attempt,
 * as a crash would. Broadcast copies share one record between endpoints and
 * are nak'ed as they are.
 */
export async function giveBack(bucket: StatusBucket, msg: JsMsg): Promise<GiveBackOutcome> {
  try {
    const workItem = decodeMessage(WorkItemSchema, msg.data);
    if (workItem.endpoint) {
      msg.nak();
      return "requeued";
    }
    // A first delivery has no record yet, unless a cancel wrote one.
    let record: StoredStatus | undefined =
      msg.info.deliveryCount > 1 ? await readStatus(bucket, workItem.taskId) : undefined;
    record ??= { status: queuedStatus(workItem), revision: 0 };
    // Two tries: a conflict tells the revision (or the terminal state) to write over.
    for (let tries = 0; record && tries < 2; tries++) {
      if (isTerminal(record.status.state)) {
        msg.ack();
        return "superseded";
      }
      markReturned(record.status);
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
 * Counts a delivery as given back on the task's record and makes the record
 * queued again, as it was before that delivery started.
 */
export function markReturned(status: TaskStatus): void {
  status.returnedDeliveries += 1;
  if (status.state === TaskState.RUNNING) {
    status.state = status.errorHistory.length > 0 ? TaskState.RETRYING : TaskState.PENDING;
  }
  status.workerId = "";
}

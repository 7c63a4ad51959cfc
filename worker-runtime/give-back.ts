import { fromBinary } from "@bufbuild/protobuf";
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
 *
 * `current` is the record as the caller knows it, when it has read it.
 */
export async function giveBack(
  bucket: StatusBucket,
  msg: JsMsg,
  current?: { status: TaskStatus; revision: number },
): Promise<GiveBackOutcome> {
  try {
    let record: StoredStatus | undefined = current;
    if (!record) {
      const workItem = fromBinary(WorkItemSchema, msg.data);
      if (workItem.endpoint) {
        msg.nak();
        return "requeued";
      }
      // A first delivery has no record yet, unless a cancel wrote one.
      record = msg.info.deliveryCount > 1 ? await readStatus(bucket, workItem.taskId) : undefined;
      record ??= { status: queuedStatus(workItem), revision: 0 };
    }
    // Two tries: a conflict tells the revision (or the terminal state) to write over.
    for (let tries = 0; record && tries < 2; tries++) {
      if (isTerminal(record.status.state)) {
        msg.ack();
        return "superseded";
      }
      const status = record.status;
      status.returnedDeliveries += 1;
      // Queued again: as it was before this delivery started.
      if (status.state === TaskState.RUNNING) {
        status.state = status.errorHistory.length > 0 ? TaskState.RETRYING : TaskState.PENDING;
      }
      status.workerId = "";
      if (await writeStatus(bucket, status, record.revision)) break;
      record = await readStatus(bucket, status.taskId);
    }
  } catch {
    // Undecodable, or NATS unreachable: give it back all the same.
  }
  msg.nak();
  return "requeued";
}

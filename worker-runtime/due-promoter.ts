import { fromBinary } from "@bufbuild/protobuf";
import type { ConsumerMessages, JetStreamClient, JsMsg } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { DeliveryMode, type TaskStatus, type WorkItem, WorkItemSchema } from "../gen/taskwire/v1/task_pb.ts";
import {
  fairnessKeyHash,
  isTerminal,
  markCancelled,
  methodKeyHash,
  queuedStatus,
  taskSubjectOf,
  topology,
} from "../sdk/core/index.ts";
import {
  countChild,
  directGet,
  expireBroadcast,
  extractTraceContext,
  isQueuedAlready,
  publishWorkItem,
  readStatus,
  type StatusBucket,
  writeStatus,
} from "../sdk/nats/index.ts";

/**
 * Moves a worker type's delayed tasks onto their task subjects as they come
 * due. The server republishes each waiting task to its due subject at its
 * time (a message schedule); this pulls those, publishes each to the queue
 * (the same `Nats-Msg-Id`, so a repeat is a duplicate; a span `send` whose
 * parent is the submit's, carried by the due message) and acks only then. A
 * crash in between redelivers the due message: at-least-once, never lost.
 * A task cancelled or already finished (a keyed twin ran) is dropped. A
 * broadcast's deadline comes the same way: unanswered, the task ends INCOMPLETE.
 */
export class DuePromoter {
  private readonly messages: ConsumerMessages;
  private constructor(messages: ConsumerMessages) {
    this.messages = messages;
  }

  static async start(
    js: JetStreamClient,
    bucket: StatusBucket,
    workerType: string,
    onError: (error: unknown, msg: JsMsg) => void,
    ended: (status: TaskStatus, bytes: Uint8Array, workItem: WorkItem) => void,
  ): Promise<DuePromoter> {
    const consumer = await js.consumers.get(topology.schedulerStream(workerType), topology.dueConsumerName(workerType));
    const messages = await consumer.consume({ max_messages: 100 });
    const promoter = new DuePromoter(messages);
    void (async () => {
      for await (const msg of messages) {
        await promote(bucket, msg, ended).catch((error) => {
          msg.nak(1_000);
          onError(error, msg);
        });
      }
    })();
    return promoter;
  }

  /** Stops pulling; a due message being moved is finished or redelivered later. */
  stop(): void {
    this.messages.stop();
  }
}

async function promote(
  bucket: StatusBucket,
  msg: JsMsg,
  ended: (status: TaskStatus, bytes: Uint8Array, workItem: WorkItem) => void,
): Promise<void> {
  const workItem = fromBinary(WorkItemSchema, msg.data);
  // A broadcast's deadline: endpoints that have not answered by now leave it INCOMPLETE.
  if (workItem.delivery === DeliveryMode.BROADCAST) {
    const expired = await expireBroadcast(bucket, workItem.taskId);
    if (expired !== "superseded") ended(expired.status, expired.written.bytes, workItem);
    msg.ack();
    return;
  }
  const stored = await readStatus(bucket, workItem.taskId);
  if (stored && isTerminal(stored.status.state)) {
    msg.ack();
    return;
  }
  if (workItem.fairnessKey && (await debounced(bucket, workItem))) {
    msg.ack();
    return;
  }
  const id = headers();
  id.set("Nats-Msg-Id", workItem.taskId);
  // A task with a fairness key waits for its turn among its key's, as when submitted without delay.
  const subject = workItem.fairnessKey
    ? topology.fairSubject(workItem.workerType, fairnessKeyHash(workItem.fairnessKey))
    : taskSubjectOf(workItem);
  if (workItem.fairnessKey) await writeStatus(bucket, queuedStatus(workItem), stored?.revision ?? 0);
  try {
    // Its send span continues the trace of the submit, whose context the due message kept.
    await publishWorkItem(bucket.requests, subject, msg.data, id, workItem, extractTraceContext(msg.headers));
  } catch (error) {
    // Already queued (a keyed twin submitted without delay): nothing to move.
    if (!isQueuedAlready(error)) throw error;
  }
  msg.ack();
}

/**
 * Whether a debounced task was replaced by a later one of its method and key
 * (the debounce subject names the last): then it ends CANCELLED, saying by which.
 */
async function debounced(bucket: StatusBucket, workItem: WorkItem): Promise<boolean> {
  const subject = topology.debounceSubject(workItem.workerType, methodKeyHash(workItem.method, workItem.fairnessKey));
  const last = await directGet(bucket.requests, topology.schedulerStream(workItem.workerType), {
    lastBySubject: subject,
  });
  const lastId = last ? new TextDecoder().decode(last.data) : "";
  if (!lastId || lastId === workItem.taskId) return false;
  const stored = await readStatus(bucket, workItem.taskId);
  const status = stored?.status ?? queuedStatus(workItem);
  markCancelled(status, `debounced: ${lastId}, a later task of its key, replaced it`);
  if (await writeStatus(bucket, status, stored?.revision ?? 0)) await countChild(bucket, status);
  return true;
}

import { Code } from "@connectrpc/connect";
import type { JsMsg } from "@nats-io/jetstream";
import { TaskState, TaskStatusSchema, type WorkItem, WorkItemSchema } from "../gen/taskwire/v1/task_pb.ts";
import { TaskError } from "../sdk/core/index.ts";
import { countChild, readStatus, type StoredStatus } from "../sdk/nats/index.ts";
import { decodeMessage, encodeMessage } from "../sdk/wire/index.ts";
import { Attempt, AttemptReport, wasCancelled } from "./attempt.ts";
import type { AttemptEnvironment } from "./attempt-environment.ts";
import { copyDone, deliveryOf, queueWaitMs, redeliveryVerdict, spentAttempts, startRefusal } from "./attempt-rules.ts";
import { deadLetter } from "./dead-letter.ts";
import { giveBack } from "./give-back.ts";
import type { Lease } from "./leases.ts";
import type { AttemptOutcome } from "./worker-event.ts";

/**
 * Runs one delivery of a WorkItem to the end: the handler's result or error is
 * durably recorded in the status bucket, then the message is acked (or nak'ed
 * with the retry backoff). A crash before the record leaves the message unacked,
 * so JetStream redelivers it: at-least-once.
 *
 * The steps: decode; admit (draining, cancelled, already done, overtaken); refuse
 * a start that may not happen (expired, attempts spent); take the type's limits;
 * begin (a recorded start, then the `start` event); run the handler; conclude
 * (record, then settle). The concurrency lease taken is released in one place,
 * once the handler is done. The attempt's trace span ends with its end event,
 * or, when a step throws before there is one, as "unrecorded".
 */
export async function runAttempt(env: AttemptEnvironment, msg: JsMsg): Promise<void> {
  const workItem = decodeWorkItem(env, msg);
  if (!workItem) return;
  const report = new AttemptReport(env, workItem, msg);
  try {
    await runSteps(env, msg, workItem, report);
  } catch (error) {
    // No outcome was recorded: the message stays unacked, and the worker reports the error.
    report.span.end(report.attempt, "unrecorded", error);
    throw error;
  }
}

/** The steps of a decoded delivery; each step that ends the attempt reports how (see runAttempt). */
async function runSteps(env: AttemptEnvironment, msg: JsMsg, workItem: WorkItem, report: AttemptReport): Promise<void> {
  const admission = await admit(env, msg, workItem, report);
  if (admission.kind === "ended") return;
  const attempt = new Attempt(env, msg, workItem, report, admission.stored);
  const refusal = startRefusal(workItem, report.attempt, Date.now());
  if (refusal) return attempt.refuse(refusal);
  const held: Lease[] = [];
  let failure: TaskError | undefined;
  try {
    if (!(await attempt.takeLimits(held))) return;
    if (!(await attempt.begin())) return;
    report.emitStart(queueWaitMs(workItem, msg.info.deliveryCount, msg.info.timestampNanos / 1e6, Date.now()));
    failure = await attempt.execute(held);
  } finally {
    for (const lease of held) void lease.release();
  }
  await attempt.conclude(failure);
}

/** The delivery's WorkItem; an undecodable one (no retry can fix it, its id is unknown) is terminated and reported. */
function decodeWorkItem(env: AttemptEnvironment, msg: JsMsg): WorkItem | undefined {
  try {
    return decodeMessage(WorkItemSchema, msg.data);
  } catch (error) {
    msg.term("undecodable WorkItem");
    env.emit({
      type: "error",
      error: new TaskError(`undecodable WorkItem on ${msg.subject}: ${(error as Error).message}`, Code.DataLoss),
    });
    return undefined;
  }
}

/** Whether a delivery runs, with the task's record when a redelivery read one, or ended at admission. */
type Admission = { readonly kind: "run"; readonly stored: StoredStatus | undefined } | { readonly kind: "ended" };

/**
 * Admits the delivery, or ends it here, reported: given back (the worker drains),
 * cancelled, a broadcast copy with nothing left to do, a task a later delivery
 * has, or one that already ended.
 */
async function admit(
  env: AttemptEnvironment,
  msg: JsMsg,
  workItem: WorkItem,
  report: AttemptReport,
): Promise<Admission> {
  const { taskId, endpoint } = workItem;
  const ended = (outcome: AttemptOutcome): Admission => {
    report.emit(outcome);
    return { kind: "ended" };
  };
  if (env.draining()) return ended(await giveBack(env.bucket, msg));
  if (await wasCancelled(env, taskId)) {
    msg.ack(); // its CANCELLED record is written by the canceller
    return ended("cancelled");
  }
  if (endpoint) {
    if (copyDone((await readStatus(env.bucket, taskId))?.status, endpoint)) {
      msg.ack();
      return ended("superseded");
    }
    return { kind: "run", stored: undefined };
  }
  // Only a redelivery can find a record: read it to keep the error history, to skip a
  // task that already ended (cancelled, or finished before a crash), and to count the
  // attempts. A pull request this worker made before it stopped answering may bring a
  // redelivery after a later one started elsewhere: that one has the task.
  // A parent resumed after its children ended continues its attempt, from its record.
  const deliveries = msg.info.deliveryCount;
  const resumed = workItem.resumes > 0;
  const stored = deliveries > 1 || resumed ? await readStatus(env.bucket, taskId) : undefined;
  const verdict = redeliveryVerdict(stored?.status, deliveryOf(msg));
  if (verdict === "overtaken") return ended("overtaken");
  report.attempt =
    resumed && deliveries === 1 && stored
      ? Math.max(1, stored.status.attempt)
      : spentAttempts(stored?.status, workItem, deliveries) + 1;
  if (verdict === "finished" && stored) {
    // The attempt that recorded it may have died before its dead letter or its notification.
    if (stored.status.state === TaskState.FAILED) await deadLetter(env.bucket, workItem, stored.status);
    const bytes = encodeMessage(TaskStatusSchema, stored.status);
    if (workItem.notifySubject) env.publish(workItem.notifySubject, bytes);
    env.reportResult(stored.status, bytes);
    await countChild(env.bucket, stored.status);
    msg.ack();
    return ended("superseded");
  }
  return { kind: "run", stored };
}

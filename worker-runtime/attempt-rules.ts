import { timestampDate, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { JsMsg } from "@nats-io/jetstream";
import { TaskState, type TaskStatus, type WorkItem } from "../gen/taskwire/v1/task_pb.ts";
import { isTerminal, TaskError } from "../sdk/core/index.ts";
import type { AbortCause } from "./task-context-controller.ts";
import type { AttemptOutcome } from "./worker-event.ts";

// The decisions of one attempt, as pure functions of what it read: the steps in
// attempt.ts do the reads and writes, these say what follows from them.

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
 * What a redelivery does with the task's record: leave the task to a later
 * delivery ("overtaken"), finish what an attempt that died after recording the
 * outcome left undone ("finished": its dead letter, its notification, the ack),
 * or run it.
 */
export function redeliveryVerdict(record: TaskStatus | undefined, mine: Delivery): "overtaken" | "finished" | "run" {
  if (!record) return "run";
  if (overtaken(record, mine)) return "overtaken";
  return isTerminal(record.state) ? "finished" : "run";
}

/**
 * Whether a broadcast copy has nothing left to do: the task has no record (the
 * submit writes one), it ended (cancelled, or INCOMPLETE), or this endpoint's
 * outcome was recorded before a crash.
 */
export function copyDone(record: TaskStatus | undefined, endpoint: string): boolean {
  if (!record || isTerminal(record.state)) return true;
  const own = record.endpoints.find((e) => e.endpoint === endpoint);
  return own !== undefined && isTerminal(own.state);
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

/** DEADLINE_EXCEEDED when the task's expiry has passed at `nowMs`: it must not start. */
export function expiryError(workItem: WorkItem, nowMs: number): TaskError | undefined {
  if (!workItem.expiresAt || timestampMs(workItem.expiresAt) > nowMs) return undefined;
  return new TaskError(
    `not started before its expiry ${timestampDate(workItem.expiresAt).toISOString()}`,
    Code.DeadlineExceeded,
    { retryable: false },
  );
}

/** How an attempt that may not start ends, recorded as its outcome. */
export interface Refusal {
  readonly state: TaskState;
  readonly outcome: AttemptOutcome;
  readonly error: TaskError;
}

/**
 * Why an admitted attempt must not start, or undefined: its expiry passed, or
 * its attempts are spent (the last one started and its worker died).
 */
export function startRefusal(workItem: WorkItem, attempt: number, nowMs: number): Refusal | undefined {
  const expired = expiryError(workItem, nowMs);
  if (expired) return { state: TaskState.EXPIRED, outcome: "expired", error: expired };
  const maxAttempts = maxAttemptsOf(workItem);
  if (attempt <= maxAttempts) return undefined;
  const error = new TaskError(
    `gave up after ${maxAttempts} attempt(s): the last ones were lost (worker crashed or stopped heartbeating)`,
    Code.Aborted,
    { retryable: false },
  );
  return { state: TaskState.FAILED, outcome: "failed", error };
}

/**
 * What a failed handler's attempt comes to: given back, not counted, when this
 * worker's shutdown interrupted it ("requeue"); left as the cancel, a later
 * record or a later delivery has it; else retried while attempts and a retry
 * policy remain, or failed for good.
 */
export function failureVerdict(
  cause: AbortCause | undefined,
  failure: TaskError,
  attempt: number,
  workItem: WorkItem,
): "requeue" | "cancelled" | "superseded" | "overtaken" | "retry" | "fail" {
  if (cause === "shutdown") return "requeue";
  if (cause === "cancelled" || cause === "superseded" || cause === "overtaken") return cause;
  return failure.retryable && attempt < maxAttemptsOf(workItem) && workItem.retry ? "retry" : "fail";
}

/**
 * What becomes of the message once an outcome is stored (or found recorded by
 * someone else). A task a later delivery has is left to it ("leave"). A retry
 * is nak'ed with its backoff ("retry"), unless this delivery stalled past
 * ack_wait: a nak names the message, and would queue a copy beside one that
 * another worker may run now; left alone, it comes back after ack_wait.
 * Anything else is acked.
 */
export function settlement(
  state: TaskState,
  outcome: AttemptOutcome,
  hasRetry: boolean,
  stalled: boolean,
): "leave" | "retry" | "ack" {
  if (outcome === "overtaken") return "leave";
  if (state === TaskState.RETRYING && outcome !== "superseded" && hasRetry) return stalled ? "leave" : "retry";
  return "ack";
}

/** Whether a write failed for its size: over the server's max_payload, or its stream's max_msg_size. */
export function tooLargeToStore(error: unknown): boolean {
  return error instanceof Error && /max_payload size exceeded|message size exceeds maximum/i.test(error.message);
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

/**
 * How long a task waited in its queue before the attempt that starts at
 * `nowMs`: from when it became due, its `not_before` for a delayed task, else
 * when the broker stored its message at `storedAtMs` (its submit, or a dead
 * letter's retry). Only a message's first delivery waited in the queue alone:
 * a later one (a retry, a redelivery) also waited for earlier attempts and
 * backoffs, so it has none. Never negative, whatever the clocks' skew.
 */
export function queueWaitMs(
  workItem: WorkItem,
  deliveries: number,
  storedAtMs: number,
  nowMs: number,
): number | undefined {
  if (deliveries !== 1) return undefined;
  const dueMs = workItem.notBefore ? timestampMs(workItem.notBefore) : storedAtMs;
  return Math.max(0, nowMs - dueMs);
}

import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { type Any, durationMs, timestampDate, timestampMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { JsMsg } from "@nats-io/jetstream";
import {
  ProgressSchema,
  TaskState,
  type TaskStatus,
  TaskStatusSchema,
  type WorkItem,
  WorkItemSchema,
} from "../gen/taskwire/v1/task_pb.ts";
import type { TaskMethod } from "../sdk/core/index.ts";
import { isTerminal, queuedStatus, TaskError } from "../sdk/core/index.ts";
import { readStatus, recordEndpoint, type StatusBucket } from "../sdk/nats/index.ts";
import { decodeMessage, encodeMessage, packMessage } from "../sdk/wire/index.ts";
import { backoffMs } from "./backoff-ms.ts";
import { deadLetter } from "./dead-letter.ts";
import {
  deliveryOf,
  giveBack,
  markReturned,
  maxAttemptsOf,
  overtaken,
  recordsStart,
  spentAttempts,
} from "./give-back.ts";
import type { Lease, Leases } from "./leases.ts";
import { StatusWriter } from "./status-writer.ts";
import { TaskContextController } from "./task-context-controller.ts";
import type { TaskMethodHandler } from "./task-service-implementation.ts";
import type { AttemptOutcome, WorkerEvent } from "./worker-event.ts";

/** A method's definition and its handler. */
export interface BoundMethod {
  readonly method: TaskMethod;
  readonly handler: TaskMethodHandler<DescMessage, DescMessage>;
}

/** What an attempt needs from its worker. */
export interface AttemptEnvironment {
  readonly bucket: StatusBucket;
  readonly workerId: string;
  /** Coalescing interval of RUNNING and progress writes. */
  readonly statusIntervalMs: number;
  /** How often a running attempt tells JetStream it is alive (a third of ack_wait). */
  readonly heartbeatMs: number;
  /** The consumers' ack_wait: silent for longer, a delivery may be redelivered elsewhere. */
  readonly ackWaitMs: number;
  /** The handler of an rpc of this worker type. */
  readonly bind: (methodName: string) => BoundMethod | undefined;
  /** Attempts running now, by task id: cancellation and shutdown abort them. */
  readonly running: Map<string, TaskContextController>;
  /** Ids cancelled recently, so a task pulled just before its cancel never starts. */
  readonly cancelled: Set<string>;
  /** True once the worker drains: new attempts are given back. */
  readonly draining: () => boolean;
  /** True while the worker type is paused: attempts waiting for their limits take none meanwhile. */
  readonly paused: () => boolean;
  readonly emit: (event: WorkerEvent) => void;
  /** The type's `max_concurrency` across workers, when it has one. */
  readonly concurrency?: Leases;
  /** The type's `max_rate` across workers, when it has one. */
  readonly rate?: Leases;
  /** Publishes a stored terminal status as a TaskResult event. */
  readonly reportResult: (status: TaskStatus, stored: Uint8Array) => void;
  /** Publishes over core NATS: the terminal status to the submitter's notify subject. */
  readonly publish: (subject: string, data: Uint8Array) => void;
}

/**
 * Whether a task whose id came on the cancel subject was cancelled: its record is
 * terminal (the canceller writes it first). The record is read because the id may
 * name a new task by now: a keyed task's record expires, and its key may then be
 * submitted again. (Callers check `env.cancelled` first: no await on the hot path.)
 */
async function cancelled(env: AttemptEnvironment, taskId: string): Promise<boolean> {
  const record = await readStatus(env.bucket, taskId);
  if (record && isTerminal(record.status.state)) return true;
  env.cancelled.delete(taskId);
  return false;
}

/** Whether a write failed for its size: over the server's max_payload, or its stream's max_msg_size. */
function tooLargeToStore(error: unknown): boolean {
  return error instanceof Error && /max_payload size exceeded|message size exceeds maximum/i.test(error.message);
}

/** DEADLINE_EXCEEDED when the task's expiry has passed: it must not start. */
function expiryPassed(workItem: WorkItem): TaskError | undefined {
  if (!workItem.expiresAt || timestampMs(workItem.expiresAt) > Date.now()) return undefined;
  return new TaskError(
    `not started before its expiry ${timestampDate(workItem.expiresAt).toISOString()}`,
    Code.DeadlineExceeded,
    { retryable: false },
  );
}

/**
 * Runs one delivery of a WorkItem to the end: the handler's result or error is
 * durably recorded in the status bucket, then the message is acked (or nak'ed
 * with the retry backoff). A crash before the record leaves the message unacked,
 * so JetStream redelivers it: at-least-once.
 */
export async function runAttempt(env: AttemptEnvironment, msg: JsMsg): Promise<void> {
  const started = Date.now();
  const deliveries = msg.info.deliveryCount;
  // A queued task's: one more than it spent, once the record is read (see spentAttempts).
  let attempt = deliveries;
  let workItem: WorkItem;
  try {
    workItem = decodeMessage(WorkItemSchema, msg.data);
  } catch (error) {
    // Undecodable: no retry can fix it. Its id is unknown, so it is terminated and reported.
    msg.term("undecodable WorkItem");
    env.emit({
      type: "error",
      error: new TaskError(`undecodable WorkItem on ${msg.subject}: ${(error as Error).message}`, Code.DataLoss),
    });
    return;
  }
  const taskId = workItem.taskId;
  const report = (outcome: AttemptOutcome, error?: TaskError) =>
    env.emit({
      type: "attempt",
      taskId,
      method: workItem.method,
      attempt,
      outcome,
      durationMs: Date.now() - started,
      error,
    });

  if (env.draining()) return report(await giveBack(env.bucket, msg));
  if (env.cancelled.has(taskId) && (await cancelled(env, taskId))) {
    msg.ack(); // its CANCELLED record is written by the canceller
    return report("cancelled");
  }
  // A broadcast copy: this worker's share of a task every endpoint runs.
  const endpoint = workItem.endpoint;
  if (endpoint) {
    // Its record exists from the submit: skip the copy if the task ended (cancelled, or
    // INCOMPLETE), or if this endpoint's outcome was recorded before a crash.
    const record = await readStatus(env.bucket, taskId);
    const own = record?.status.endpoints.find((e) => e.endpoint === endpoint);
    if (!record || isTerminal(record.status.state) || (own && isTerminal(own.state))) {
      msg.ack();
      return report("superseded");
    }
  }
  // Only a redelivery can find a record: read it to keep the error history, to
  // skip a task that already ended (cancelled, or finished before a crash), and to
  // count the attempts.
  const stored = deliveries > 1 && !endpoint ? await readStatus(env.bucket, taskId) : undefined;
  // A pull request this worker made before it stopped answering may bring a
  // redelivery after a later one started elsewhere: that one has the task.
  const delivery = deliveryOf(msg);
  if (stored && overtaken(stored.status, delivery)) return report("overtaken");
  if (!endpoint) attempt = spentAttempts(stored?.status, workItem, deliveries) + 1;
  if (stored && isTerminal(stored.status.state)) {
    // The attempt that recorded it may have died before its dead letter or its notification.
    if (stored.status.state === TaskState.FAILED) await deadLetter(env.bucket, workItem, stored.status);
    const bytes = encodeMessage(TaskStatusSchema, stored.status);
    if (workItem.notifySubject) env.publish(workItem.notifySubject, bytes);
    env.reportResult(stored.status, bytes);
    msg.ack();
    return report("superseded");
  }
  const status = stored?.status ?? queuedStatus(workItem);
  const maxAttempts = maxAttemptsOf(workItem);
  status.attempt = attempt;
  status.maxAttempts = maxAttempts;
  status.state = TaskState.RUNNING;
  status.startedAt = timestampNow();
  status.workerId = env.workerId;
  Object.assign(status, delivery);
  // This attempt's handler context and heartbeat, once it runs (not the task id's entry in
  // env.running: a stalled worker can hold a later delivery of the same task too).
  let running: TaskContextController | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  const writer = new StatusWriter(
    env.bucket,
    status,
    stored?.revision ?? 0,
    env.statusIntervalMs,
    (error) => env.emit({ type: "error", error: TaskError.from(error), taskId }),
    // Cancelled while it ran (even if the cancel message never reached this worker), or
    // redelivered elsewhere while this worker stopped answering: then its +WPI would keep
    // alive a message that is the later delivery's, and hide that one's worker dying.
    (cause) => {
      running?.abort(cause);
      if (cause === "overtaken") clearInterval(heartbeat);
    },
  );
  // Silent for longer than ack_wait (this process stalled: frozen, or starved), the
  // delivery may have gone to another worker meanwhile: a best-effort write then finds
  // out (it meets that delivery's record), and a retry is not nak'ed (see settle).
  let lastBeat = started;
  let lapsed = false;
  const alive = () => {
    const now = Date.now();
    if (now - lastBeat > env.ackWaitMs && !lapsed) {
      lapsed = true;
      if (!endpoint) writer.touch();
    }
    lastBeat = now;
    msg.working();
  };
  const stalled = () => lapsed || Date.now() - lastBeat > env.ackWaitMs;

  let packed: Any | undefined;
  // Once the outcome is stored (or found recorded by someone else): the message is
  // settled in the same microtask as the events go out, so they leave in one socket
  // write. A retry is nak'ed with its backoff, unless this delivery stalled past ack_wait:
  // a nak names the message, and would queue a copy beside one that another worker may run
  // now; left alone, it comes back after ack_wait. A task a later delivery has is left to
  // it; anything else is acked.
  const settle = (state: TaskState, outcome: AttemptOutcome) => {
    if (outcome === "overtaken") return outcome;
    if (state === TaskState.RETRYING && outcome !== "superseded" && workItem.retry) {
      if (!stalled()) msg.nak(backoffMs(workItem.retry, attempt));
    } else msg.ack();
    return outcome;
  };
  /** Records the attempt's outcome, then settles the message. */
  const end = async (state: TaskState, outcome: AttemptOutcome, error?: TaskError, fill?: () => void) => {
    if (endpoint) {
      const recorded = await recordEndpoint(env.bucket, taskId, endpoint, (result) => {
        result.state = state;
        result.finishedAt = timestampNow();
        result.error = error?.toMessage(attempt);
        result.result = state === TaskState.SUCCEEDED ? packed : undefined;
      });
      if (recorded === "superseded") return settle(state, "superseded");
      // The last endpoint to answer ends the task: its submitter hears of it.
      if (isTerminal(recorded.status.state)) {
        if (workItem.notifySubject) env.publish(workItem.notifySubject, recorded.written.bytes);
        env.reportResult(recorded.status, recorded.written.bytes);
      }
      return settle(state, outcome);
    }
    const written = await writer.finish((s) => {
      s.state = state;
      if (isTerminal(state)) s.finishedAt = timestampNow();
      if (error) {
        s.error = error.toMessage(attempt);
        if (state === TaskState.RETRYING) s.errorHistory.push(s.error);
      }
      fill?.();
    });
    if (written === "superseded" || written === "overtaken") return settle(state, written);
    // Failed for good: dead-lettered before the ack, so a crash in between redelivers
    // the task, which then finds the FAILED record and dead-letters it.
    if (state === TaskState.FAILED) await deadLetter(env.bucket, workItem, writer.status);
    // Stored: now the submitter may hear of it (before the ack, which only frees the message).
    if (isTerminal(state)) {
      if (workItem.notifySubject) env.publish(workItem.notifySubject, written.bytes);
      env.reportResult(writer.status, written.bytes);
    }
    return settle(state, outcome);
  };

  const expired = expiryPassed(workItem);
  if (expired) return report(await end(TaskState.EXPIRED, "expired", expired), expired);
  if (attempt > maxAttempts) {
    // Attempts beyond the policy: the last one started and its worker died.
    attempt = maxAttempts;
    status.attempt = attempt;
    const error = new TaskError(
      `gave up after ${maxAttempts} attempt(s): the last ones were lost (worker crashed or stopped heartbeating)`,
      Code.Aborted,
      { retryable: false },
    );
    return report(await end(TaskState.FAILED, "failed", error), error);
  }

  // The type's limits across all its workers: wait for a lease, keeping the task alive.
  let lease: Lease | undefined;
  try {
    const waiting = async () => {
      // A paused queue starts nothing: while it is, take no lease, and keep the task alive.
      for (;;) {
        if (env.draining()) throw new TaskError("the worker is draining", Code.Unavailable);
        if (!env.paused()) return alive();
        if (Date.now() - lastBeat >= env.heartbeatMs) alive();
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    };
    lease = await env.concurrency?.acquire(env.workerId, waiting);
    await env.rate?.acquire(env.workerId, waiting);
  } catch (error) {
    await lease?.release();
    // Not started (draining, or no lease to be had): given back, it spends no attempt.
    return report(await giveBack(env.bucket, msg), TaskError.from(error));
  }
  if (env.cancelled.has(taskId) && (await cancelled(env, taskId))) {
    // Cancelled while it waited for its limits.
    void lease?.release();
    msg.ack();
    return report("cancelled");
  }
  // Its expiry may have passed while it waited for its limits.
  const late = env.concurrency || env.rate ? expiryPassed(workItem) : undefined;
  if (late) {
    void lease?.release();
    return report(await end(TaskState.EXPIRED, "expired", late), late);
  }
  // A start that a later delivery could not infer is recorded before the handler runs.
  const recordedStart = !endpoint && recordsStart(deliveries, maxAttempts);
  if (recordedStart) {
    const begun = await writer.begin().catch((error: unknown) => TaskError.from(error));
    if (begun === "superseded" || begun === "overtaken") {
      void lease?.release();
      return report(settle(TaskState.RUNNING, begun));
    }
    if (begun instanceof TaskError) {
      void lease?.release();
      // The write may have been stored with its PubAck lost: undo it if it was, best effort.
      const undone = await writer.finish((s) => markReturned(s, attempt - 1)).catch(() => undefined);
      if (undone === "overtaken") return report("overtaken", begun);
      msg.nak();
      return report("requeued", begun);
    }
    // Cancelled while its start was written: its id came before this attempt ran, so
    // nothing would abort it.
    if (env.cancelled.has(taskId) && (await cancelled(env, taskId))) {
      void lease?.release();
      msg.ack();
      return report("cancelled");
    }
  }

  const bound = env.bind(workItem.method);
  const timeoutMs = workItem.timeout ? durationMs(workItem.timeout) : 60_000;
  const ctx = new TaskContextController(
    taskId,
    workItem.workerType,
    workItem.method,
    attempt,
    maxAttempts,
    new Date(started + timeoutMs),
    workItem.metadata,
    workItem.endpoint || undefined,
    env.workerId,
    (fraction, message) => {
      if (endpoint) return; // a broadcast's record holds outcomes per endpoint, not progress
      status.progress = create(ProgressSchema, { fraction, message, updatedAt: timestampNow() });
      writer.touch();
    },
    alive,
  );
  running = ctx;
  env.running.set(taskId, ctx);
  heartbeat = setInterval(() => {
    alive();
    void lease?.renew().catch(() => undefined);
  }, env.heartbeatMs);
  // RUNNING, unless the handler finishes within the interval. After a recorded start too:
  // the write is how a worker that missed a cancel message learns of the cancel.
  if (!endpoint) writer.touch();
  let failure: TaskError | undefined;
  try {
    if (!bound)
      throw new TaskError(
        `this worker has no handler for ${workItem.workerType}/${workItem.method}`,
        Code.Unimplemented,
        { retryable: false },
      );
    let request: MessageShape<DescMessage>;
    try {
      request = decodeMessage(bound.method.input, workItem.payload);
    } catch (error) {
      throw new TaskError(
        `payload is not a valid ${bound.method.input.typeName}: ${(error as Error).message}`,
        Code.InvalidArgument,
        { retryable: false },
      );
    }
    const result = await bound.handler(request, ctx);
    if (ctx.abortReason) throw ctx.abortReason; // a result after cancel or deadline does not count
    packed = packMessage(bound.method.output, create(bound.method.output, result));
  } catch (thrown) {
    failure = ctx.abortReason ?? TaskError.from(thrown);
  } finally {
    clearInterval(heartbeat);
    ctx.dispose();
    if (env.running.get(taskId) === ctx) env.running.delete(taskId);
    void lease?.release();
  }

  // Record first, then ack: a crash in between redelivers, never loses. (The status
  // writes of attempts that end in one event-loop turn leave together: see RequestPipeline.)
  if (!failure) {
    try {
      const outcome = await end(TaskState.SUCCEEDED, "succeeded", undefined, () => {
        status.result = packed;
        status.error = undefined;
        if (status.progress) status.progress.fraction = 1;
      });
      return report(outcome);
    } catch (error) {
      // A record the server cannot take (over its max_payload) would fail so at every
      // attempt, and the task would run again and again: it fails, saying why.
      if (!tooLargeToStore(error)) throw error;
      status.result = undefined;
      failure = new TaskError(
        `its result is too large to store: ${(error as Error).message} (the status record holds the result)`,
        Code.ResourceExhausted,
        { retryable: false },
      );
    }
  }
  if (ctx.abortCause === "shutdown") {
    // Interrupted by this worker's shutdown: not the task's fault, so not an attempt
    // (see giveBack). A broadcast copy's record is shared: it is nak'ed as it is.
    const outcome = endpoint
      ? "requeued"
      : await writer.finish((s) => markReturned(s, attempt - 1)).catch(() => "requeued" as const);
    if (outcome === "superseded" || outcome === "overtaken") return report(settle(status.state, outcome), failure);
    if (!stalled()) msg.nak(); // as a retry (see settle)
    return report("requeued", failure);
  }
  if (ctx.abortCause === "cancelled") {
    msg.ack(); // the canceller recorded CANCELLED
    return report("cancelled", failure);
  }
  if (ctx.abortCause === "superseded") {
    msg.ack();
    return report("superseded", failure);
  }
  if (ctx.abortCause === "overtaken") return report("overtaken", failure);
  if (failure.retryable && attempt < maxAttempts && workItem.retry) {
    return report(await end(TaskState.RETRYING, "retrying", failure), failure);
  }
  report(await end(TaskState.FAILED, "failed", failure), failure);
}

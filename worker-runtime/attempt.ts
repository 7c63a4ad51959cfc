import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { type Any, durationMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { JsMsg } from "@nats-io/jetstream";
import {
  type Children,
  ChildrenSchema,
  ProgressSchema,
  TaskState,
  type TaskStatus,
  type WorkItem,
} from "../gen/taskwire/v1/task_pb.ts";
import { isTerminal, queuedStatus, stateName, TaskError } from "../sdk/core/index.ts";
import {
  awaitChildren,
  cancelChildren,
  countChild,
  parkWorkItem,
  readStatus,
  recordEndpoint,
  resumeParent,
  type StoredStatus,
} from "../sdk/nats/index.ts";
import { decodeMessage, packMessage } from "../sdk/wire/index.ts";
import type { AttemptEnvironment } from "./attempt-environment.ts";
import {
  deliveryOf,
  expiryError,
  failureVerdict,
  markReturned,
  maxAttemptsOf,
  type Refusal,
  recordsStart,
  settlement,
  tooLargeToStore,
} from "./attempt-rules.ts";
import { AttemptSpan } from "./attempt-span.ts";
import { backoffMs } from "./backoff-ms.ts";
import { type ChildTasks, WaitingForChildren } from "./child-tasks.ts";
import { deadLetter } from "./dead-letter.ts";
import { keyLeaseHeader } from "./fair-dispatcher.ts";
import { giveBack } from "./give-back.ts";
import type { Lease } from "./leases.ts";
import { StatusWriter } from "./status-writer.ts";
import { TaskContextController } from "./task-context-controller.ts";
import type { AttemptOutcome } from "./worker-event.ts";

/** What one attempt reports when it starts and when it ends: its number and how long it took. */
export class AttemptReport {
  private readonly env: AttemptEnvironment;
  private readonly workItem: WorkItem;
  readonly started = Date.now();
  /** When its handler started, once it has. */
  private ranFrom: number | undefined;
  /** The delivery count at first; a queued task's attempt once its record is read (see spentAttempts). */
  attempt: number;
  /** The attempt's trace span, ended with its end event. */
  readonly span: AttemptSpan;

  constructor(env: AttemptEnvironment, workItem: WorkItem, msg: JsMsg) {
    this.env = env;
    this.workItem = workItem;
    this.attempt = msg.info.deliveryCount;
    this.span = new AttemptSpan(msg, workItem, env.workerId);
  }

  /** Emits the attempt's start: its handler runs from now, after `queueWaitMs` in the queue where known. */
  emitStart(queueWaitMs: number | undefined): void {
    this.ranFrom = Date.now();
    this.env.emit({
      type: "start",
      taskId: this.workItem.taskId,
      workerType: this.workItem.workerType,
      method: this.workItem.method,
      attempt: this.attempt,
      queueWaitMs,
    });
  }

  /** Emits the attempt's end, and ends its span. */
  emit(outcome: AttemptOutcome, error?: TaskError): void {
    this.span.end(this.attempt, outcome, error);
    const now = Date.now();
    this.env.emit({
      type: "attempt",
      taskId: this.workItem.taskId,
      workerType: this.workItem.workerType,
      method: this.workItem.method,
      attempt: this.attempt,
      outcome,
      durationMs: now - this.started,
      runMs: this.ranFrom === undefined ? undefined : now - this.ranFrom,
      error,
    });
  }
}

/**
 * Whether a task whose id came on the cancel subject was cancelled: its record is
 * terminal (the canceller writes it first). The record is read because the id may
 * name a new task by now: a keyed task's record expires, and its key may then be
 * submitted again. Checks `env.cancelled` first: no await on the hot path.
 */
export async function wasCancelled(env: AttemptEnvironment, taskId: string): Promise<boolean> {
  if (!env.cancelled.has(taskId)) return false;
  const record = await readStatus(env.bucket, taskId);
  if (record && isTerminal(record.status.state)) return true;
  env.cancelled.delete(taskId);
  return false;
}

/**
 * One admitted delivery of a WorkItem, from its RUNNING record to its settled
 * message. runAttempt calls its steps in order; each step that can end the
 * attempt reports its outcome and says so by returning false.
 */
export class Attempt {
  private readonly env: AttemptEnvironment;
  private readonly msg: JsMsg;
  private readonly workItem: WorkItem;
  private readonly report: AttemptReport;
  private readonly taskId: string;
  /** A broadcast copy's endpoint: this worker's share of a task every endpoint runs. */
  private readonly endpoint: string;
  private readonly maxAttempts: number;
  private readonly status: TaskStatus;
  private readonly writer: StatusWriter;
  /**
   * This attempt's handler context and heartbeat, once it runs (not the task id's entry in
   * env.running: a stalled worker can hold a later delivery of the same task too).
   */
  private context: TaskContextController | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private lastBeat: number;
  private lapsed = false;
  private packed: Any | undefined;
  /** The children spawned, when the handler ended its run to wait for them. */
  private waiting: bigint | undefined;

  constructor(
    env: AttemptEnvironment,
    msg: JsMsg,
    workItem: WorkItem,
    report: AttemptReport,
    stored: StoredStatus | undefined,
  ) {
    this.env = env;
    this.msg = msg;
    this.workItem = workItem;
    this.report = report;
    this.taskId = workItem.taskId;
    this.endpoint = workItem.endpoint;
    this.maxAttempts = maxAttemptsOf(workItem);
    this.lastBeat = report.started;
    this.status = stored?.status ?? queuedStatus(workItem);
    Object.assign(this.status, {
      attempt: report.attempt,
      maxAttempts: this.maxAttempts,
      state: TaskState.RUNNING,
      startedAt: timestampNow(),
      workerId: env.workerId,
      ...deliveryOf(msg),
    });
    this.writer = new StatusWriter(
      env.bucket,
      this.status,
      stored?.revision ?? 0,
      env.statusIntervalMs,
      (error) => env.emit({ type: "error", error: TaskError.from(error), taskId: this.taskId }),
      // Cancelled while it ran (even if the cancel message never reached this worker), or
      // redelivered elsewhere while this worker stopped answering: then its +WPI would keep
      // alive a message that is the later delivery's, and hide that one's worker dying.
      (cause) => {
        this.context?.abort(cause);
        if (cause === "overtaken") clearInterval(this.heartbeat);
      },
    );
  }

  /** Records why the attempt may not start (expired, or its attempts spent). */
  async refuse(refusal: Refusal): Promise<void> {
    if (refusal.state === TaskState.FAILED) {
      // Attempts beyond the policy: the last one started and its worker died.
      this.report.attempt = this.maxAttempts;
      this.status.attempt = this.maxAttempts;
    }
    this.report.emit(await this.end(refusal.state, refusal.outcome, refusal.error), refusal.error);
  }

  /**
   * Waits for the type's limits across all its workers, keeping the task alive; a
   * concurrency lease taken goes into `held`. A paused queue starts nothing: while
   * it is, no lease is taken. Not started (draining, or no lease to be had), the
   * task is given back and spends no attempt.
   */
  async takeLimits(held: Lease[]): Promise<boolean> {
    const { env } = this;
    const waiting = async () => {
      for (;;) {
        if (env.draining()) throw new TaskError("the worker is draining", Code.Unavailable);
        if (!env.paused()) return this.alive();
        if (Date.now() - this.lastBeat >= env.heartbeatMs) this.alive();
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    };
    // A keyed task's key lease came with it, taken by the dispatcher: this attempt holds it now.
    const keyLease = this.msg.headers?.get(keyLeaseHeader);
    if (keyLease && env.adoptLease) {
      const [subject = "", seq = ""] = keyLease.split(" ");
      held.push(env.adoptLease(subject, Number(seq), this.taskId));
    }
    try {
      if (env.concurrency) held.push(await env.concurrency.acquire(env.workerId, waiting));
      await env.rate?.acquire(env.workerId, waiting);
      return true;
    } catch (error) {
      this.report.emit(await giveBack(env.bucket, this.msg), TaskError.from(error));
      return false;
    }
  }

  /**
   * The checks between the limits and the handler: a cancel or the expiry that
   * came while it waited for its limits, then the recorded start, for a start
   * that a later delivery could not infer (see recordsStart).
   */
  async begin(): Promise<boolean> {
    if (await this.cancelledNow()) return false;
    const late = this.env.concurrency || this.env.rate ? expiryError(this.workItem, Date.now()) : undefined;
    if (late) {
      this.report.emit(await this.end(TaskState.EXPIRED, "expired", late), late);
      return false;
    }
    if (this.endpoint || !recordsStart(this.msg.info.deliveryCount, this.maxAttempts)) return true;
    const begun = await this.writer.begin().catch((error: unknown) => TaskError.from(error));
    if (begun === "superseded" || begun === "overtaken") {
      this.report.emit(this.settle(TaskState.RUNNING, begun));
      return false;
    }
    if (begun instanceof TaskError) {
      // The write may have been stored with its PubAck lost: undo it if it was, best effort.
      const undone = await this.writer.finish((s) => markReturned(s, this.report.attempt - 1)).catch(() => undefined);
      if (undone === "overtaken") {
        this.report.emit("overtaken", begun);
        return false;
      }
      this.msg.nak();
      this.report.emit("requeued", begun);
      return false;
    }
    // Cancelled while its start was written: its id came before this attempt ran, so
    // nothing would abort it.
    return !(await this.cancelledNow());
  }

  /** Acks and reports a task cancelled before its handler ran: the canceller recorded it. */
  private async cancelledNow(): Promise<boolean> {
    if (!(await wasCancelled(this.env, this.taskId))) return false;
    this.msg.ack();
    this.report.emit("cancelled");
    return true;
  }

  /**
   * Runs the handler with its context and heartbeat (which renews `leases`).
   * Resolves its failure, or undefined with the packed result kept for the record.
   */
  async execute(leases: readonly Lease[]): Promise<TaskError | undefined> {
    const { env, workItem } = this;
    const bound = env.bind(workItem.method);
    const timeoutMs = workItem.timeout ? durationMs(workItem.timeout) : 60_000;
    const ctx = new TaskContextController(
      this.taskId,
      workItem.workerType,
      workItem.method,
      this.report.attempt,
      this.maxAttempts,
      new Date(this.report.started + timeoutMs),
      workItem.metadata,
      workItem.endpoint || undefined,
      env.workerId,
      (fraction, message) => {
        if (this.endpoint) return; // a broadcast's record holds outcomes per endpoint, not progress
        this.status.progress = create(ProgressSchema, { fraction, message, updatedAt: timestampNow() });
        this.writer.touch();
      },
      () => this.alive(),
    );
    // Made for every attempt: made on first use instead, it cost the worker 20 µs per task
    // (npm run bench -- --quick --only raw,direct: 61-66 µs against 41-45).
    if (!this.endpoint) ctx.childTasks = env.children?.(this.taskId, this.status.children?.spawned ?? 0n);
    this.context = ctx;
    env.running.set(this.taskId, ctx);
    this.heartbeat = setInterval(() => {
      this.alive();
      for (const lease of leases) void lease.renew().catch(() => undefined);
    }, env.heartbeatMs);
    // RUNNING, unless the handler finishes within the interval. After a recorded start too:
    // the write is how a worker that missed a cancel message learns of the cancel.
    if (!this.endpoint) this.writer.touch();
    try {
      if (!bound) {
        throw new TaskError(
          `this worker has no handler for ${workItem.workerType}/${workItem.method}`,
          Code.Unimplemented,
          { retryable: false },
        );
      }
      const request = decodeRequest(bound.method.input, workItem.payload);
      const result = await this.report.span.run(() => bound.handler(request, ctx));
      if (ctx.abortReason) throw ctx.abortReason; // a result after cancel or deadline does not count
      this.packed = packMessage(bound.method.output, create(bound.method.output, result));
      if (this.packed.value.length > env.maxResultBytes) {
        throw new TaskError(
          `its result is ${this.packed.value.length} bytes, over the ${env.maxResultBytes} kept (retention.maxResultBytes)`,
          Code.ResourceExhausted,
          { retryable: false },
        );
      }
      return undefined;
    } catch (thrown) {
      if (thrown instanceof WaitingForChildren && !ctx.abortReason) {
        this.waiting = thrown.spawned;
        return undefined;
      }
      return ctx.abortReason ?? TaskError.from(thrown);
    } finally {
      clearInterval(this.heartbeat);
      ctx.dispose();
      if (env.running.get(this.taskId) === ctx) env.running.delete(this.taskId);
    }
  }

  /**
   * Records the handler's outcome, then settles the message: record first, then ack,
   * so a crash in between redelivers, never loses.
   */
  async conclude(failure: TaskError | undefined): Promise<void> {
    if (this.waiting !== undefined && !failure) return this.report.emit(await this.park(this.waiting));
    if (!failure) {
      try {
        return this.report.emit(await this.end(TaskState.SUCCEEDED, "succeeded", undefined, () => this.keepResult()));
      } catch (error) {
        // A record the server cannot take (over its max_payload) would fail so at every
        // attempt, and the task would run again and again: it fails, saying why.
        if (!tooLargeToStore(error)) throw error;
        this.status.result = undefined;
        failure = new TaskError(
          `its result is too large to store: ${(error as Error).message} (the status record holds the result)`,
          Code.ResourceExhausted,
          { retryable: false },
        );
      }
    }
    const verdict = failureVerdict(this.context?.abortCause, failure, this.report.attempt, this.workItem);
    switch (verdict) {
      case "requeue":
        return this.report.emit(await this.requeue(), failure);
      case "cancelled": // the canceller recorded CANCELLED
      case "superseded":
        this.msg.ack();
        return this.report.emit(verdict, failure);
      case "overtaken":
        return this.report.emit("overtaken", failure);
      case "retry":
        return this.report.emit(await this.end(TaskState.RETRYING, "retrying", failure), failure);
      case "fail":
        return this.report.emit(await this.end(TaskState.FAILED, "failed", failure), failure);
    }
  }

  /**
   * Ends a run that waits for its children: the WorkItem is kept, the children
   * spawned since the last wait are subtracted from the `ended` counter, the
   * record says WAITING (with the children spawned), and the message is acked,
   * freeing the slot. Then, in case they all ended meanwhile (a child that
   * ended before the record said WAITING could not resume it), it resumes itself.
   */
  private async park(spawned: bigint): Promise<AttemptOutcome> {
    const { bucket } = this.env;
    const waited = this.status.children?.spawned ?? 0n;
    await parkWorkItem(bucket.requests, this.taskId, this.msg.data);
    await awaitChildren(bucket.requests, this.taskId, spawned, waited);
    const written = await this.writer.finish((s) => {
      s.state = TaskState.WAITING;
      s.children = create(ChildrenSchema, { spawned });
      s.workerId = "";
    });
    if (written === "superseded" || written === "overtaken") return this.settle(TaskState.WAITING, written);
    // Acked for sure before a resume: one queues the task on the same subject, which holds one message.
    await this.msg.ackAck();
    await resumeParent(bucket, this.taskId);
    return "waiting";
  }

  private keepResult(): void {
    this.status.result = this.packed;
    this.status.error = undefined;
    if (this.status.progress) this.status.progress.fraction = 1;
  }

  /**
   * Gives back an attempt this worker's shutdown interrupted: not the task's fault, so
   * not an attempt (see giveBack). A broadcast copy's record is shared: it is nak'ed as it is.
   */
  private async requeue(): Promise<AttemptOutcome> {
    const outcome = this.endpoint
      ? "requeued"
      : await this.writer.finish((s) => markReturned(s, this.report.attempt - 1)).catch(() => "requeued" as const);
    if (outcome === "superseded" || outcome === "overtaken") return this.settle(this.status.state, outcome);
    if (!this.stalled()) this.msg.nak(); // as a retry (see settlement)
    return "requeued";
  }

  /** Records the attempt's outcome, then settles the message. */
  private async end(
    state: TaskState,
    outcome: AttemptOutcome,
    error?: TaskError,
    fill?: () => void,
  ): Promise<AttemptOutcome> {
    const attempt = this.report.attempt;
    if (this.endpoint) return this.endCopy(state, outcome, error);
    // Most handlers spawn nothing: no call, no await (the hot path).
    const family = isTerminal(state) ? this.context?.childTasks : undefined;
    const children = family && family.counts.spawned > 0n ? await this.childrenAtEnd(family) : undefined;
    const written = await this.writer.finish((s) => {
      if (children) s.children = children;
      s.state = state;
      if (isTerminal(state)) s.finishedAt = timestampNow();
      if (error) {
        s.error = error.toMessage(attempt);
        if (state === TaskState.RETRYING) s.errorHistory.push(s.error);
      }
      fill?.();
    });
    if (written === "superseded" || written === "overtaken") return this.settle(state, written);
    // Failed for good: dead-lettered before the ack, so a crash in between redelivers
    // the task, which then finds the FAILED record and dead-letters it.
    if (state === TaskState.FAILED) await deadLetter(this.env.bucket, this.workItem, this.writer.status);
    // Stored: now the submitter may hear of it (before the ack, which only frees the message).
    if (isTerminal(state)) {
      this.announce(this.writer.status, written.bytes);
      // Most tasks have neither a parent nor a failure: no call, no await (the hot path).
      const ended = this.writer.status;
      if (ended.parentTaskId || ended.state !== TaskState.SUCCEEDED) await this.family(ended);
    }
    return this.settle(state, outcome);
  }

  /**
   * What a task that ends records of its children: the counts of its last
   * wait, when that wait covered every child it spawned, else how many it
   * spawned; undefined when it spawned none since its record's. Children spawned
   * since its last wait are subtracted from its counter first, as a wait would.
   */
  private async childrenAtEnd(children: ChildTasks): Promise<Children | undefined> {
    const { spawned, waited } = children.counts;
    if (spawned > waited) await awaitChildren(this.env.bucket.requests, this.taskId, spawned, waited);
    const last = children.lastCounts;
    if (last && BigInt(last.spawned) === spawned)
      return create(ChildrenSchema, { spawned, ended: BigInt(last.ended), failed: BigInt(last.failed) });
    return spawned > waited ? create(ChildrenSchema, { spawned }) : undefined;
  }

  /**
   * A task that ended tells its parent, before its message is acked (a crash in
   * between redelivers it, which tells again: counted once). One that failed
   * leaves no child of its own running: they are cancelled, in the background.
   */
  private async family(status: TaskStatus): Promise<void> {
    await countChild(this.env.bucket, status);
    const { cancel } = this.env;
    // A failure before any wait has no children in its record: its list is read all the same.
    if (status.state !== TaskState.SUCCEEDED && cancel) {
      const reason = `its parent ${status.taskId} ended ${stateName(status.state)}`;
      void cancelChildren(this.env.bucket.requests, status.taskId, (id) => cancel(id, reason)).catch((error) =>
        this.env.emit({ type: "error", error: TaskError.from(error), taskId: status.taskId }),
      );
    }
  }

  /** Records a broadcast copy's outcome in the task's record; the last endpoint to answer ends the task. */
  private async endCopy(state: TaskState, outcome: AttemptOutcome, error?: TaskError): Promise<AttemptOutcome> {
    const recorded = await recordEndpoint(this.env.bucket, this.taskId, this.endpoint, (result) => {
      result.state = state;
      result.finishedAt = timestampNow();
      result.error = error?.toMessage(this.report.attempt);
      result.result = state === TaskState.SUCCEEDED ? this.packed : undefined;
    });
    if (recorded === "superseded") return this.settle(state, "superseded");
    if (isTerminal(recorded.status.state)) this.announce(recorded.status, recorded.written.bytes);
    return this.settle(state, outcome);
  }

  /** Tells the submitter and the TaskResult subject of a stored terminal record. */
  private announce(status: TaskStatus, bytes: Uint8Array): void {
    if (this.workItem.notifySubject) this.env.publish(this.workItem.notifySubject, bytes);
    this.env.reportResult(status, bytes);
  }

  /**
   * Settles the message once the outcome is stored, in the same microtask as the events
   * go out, so they leave in one socket write (see settlement).
   */
  private settle(state: TaskState, outcome: AttemptOutcome): AttemptOutcome {
    const how = settlement(state, outcome, this.workItem.retry !== undefined, this.stalled());
    if (how === "retry" && this.workItem.retry) this.msg.nak(backoffMs(this.workItem.retry, this.report.attempt));
    else if (how === "ack") this.msg.ack();
    return outcome;
  }

  /**
   * Tells JetStream the attempt is alive. Silent for longer than ack_wait (this process
   * stalled: frozen, or starved), the delivery may have gone to another worker meanwhile:
   * a best-effort write then finds out (it meets that delivery's record), and a retry is
   * not nak'ed (see settlement).
   */
  private alive(): void {
    const now = Date.now();
    if (now - this.lastBeat > this.env.ackWaitMs && !this.lapsed) {
      this.lapsed = true;
      if (!this.endpoint) this.writer.touch();
    }
    this.lastBeat = now;
    this.msg.working();
  }

  private stalled(): boolean {
    return this.lapsed || Date.now() - this.lastBeat > this.env.ackWaitMs;
  }
}

/** The task's request message; INVALID_ARGUMENT, not retried, when the payload is not one. */
function decodeRequest(input: DescMessage, payload: Uint8Array): MessageShape<DescMessage> {
  try {
    return decodeMessage(input, payload);
  } catch (error) {
    throw new TaskError(`payload is not a valid ${input.typeName}: ${(error as Error).message}`, Code.InvalidArgument, {
      retryable: false,
    });
  }
}

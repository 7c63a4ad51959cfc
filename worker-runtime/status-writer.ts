import { TaskState, type TaskStatus } from "../gen/taskwire/v1/task_pb.ts";
import { isTerminal } from "../sdk/core/index.ts";
import { readStatusEntry, type StatusBucket, type WrittenStatus, writeStatus } from "../sdk/nats/index.ts";
import { overtaken } from "./attempt-rules.ts";

/**
 * How a durable write ended: what was stored; "superseded" when a terminal
 * state is recorded already; "overtaken" when a later delivery of the task
 * wrote the record (see `overtaken`), which has the task now.
 */
export type FinishOutcome = WrittenStatus | "superseded" | "overtaken";

/**
 * Writes one attempt's status record. RUNNING and progress are coalesced: at
 * most one write per interval, none at all for a task that finishes within it,
 * and never awaited by the handler. The terminal write is durable and
 * conditional: it never overwrites a terminal state written by someone else
 * (a cancellation), which it reports as "superseded".
 */
export class StatusWriter {
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();
  /**
   * Why this attempt writes nothing more, once a conflict told it: a terminal
   * state recorded by someone else, or a later delivery's record.
   */
  private lost: "superseded" | "overtaken" | undefined;
  private finished = false;
  /** Whether this attempt was added to the running tasks' index entries. */
  private listedRunning = false;

  private readonly bucket: StatusBucket;
  /** The record as this attempt sees it; mutate, then call `touch()`. */
  readonly status: TaskStatus;
  private revision: number;
  private readonly intervalMs: number;
  private readonly onError: (error: unknown) => void;
  /** Called once when a best-effort write finds that this attempt lost the record (see `lost`). */
  private readonly onSuperseded: (cause: "superseded" | "overtaken") => void;

  constructor(
    bucket: StatusBucket,
    status: TaskStatus,
    revision: number,
    intervalMs: number,
    onError: (error: unknown) => void,
    onSuperseded: (cause: "superseded" | "overtaken") => void,
  ) {
    this.bucket = bucket;
    this.status = status;
    this.revision = revision;
    this.intervalMs = intervalMs;
    this.onError = onError;
    this.onSuperseded = onSuperseded;
  }

  /** Schedules a best-effort write of the current status within the interval. */
  touch(): void {
    if (this.timer || this.finished || this.lost) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.chain = this.chain.then(() => this.writeBestEffort());
    }, this.intervalMs);
  }

  /**
   * Durably writes the terminal (or retrying) status built by `update` from the
   * current one. Resolves what was stored, or why nothing was (see {@link FinishOutcome}).
   */
  async finish(update: (status: TaskStatus) => void): Promise<FinishOutcome> {
    this.finished = true;
    clearTimeout(this.timer);
    await this.chain;
    if (this.lost) return this.lost;
    update(this.status);
    return this.writeDurably();
  }

  /**
   * Durably writes the current status now, before the handler starts: a later
   * delivery then knows this attempt started (see `spentAttempts`). Resolves
   * as {@link finish} does.
   */
  begin(): Promise<FinishOutcome> {
    return this.writeDurably();
  }

  private async writeDurably(): Promise<FinishOutcome> {
    for (;;) {
      const written = await this.writeOnce();
      if (written) return written;
      if (this.lost) return this.lost;
    }
  }

  private async writeBestEffort(): Promise<void> {
    try {
      // Two tries: a conflict with a non-terminal record (an earlier attempt's)
      // only tells us the revision to write over.
      for (let tries = 0; tries < 2 && !this.finished && !this.lost; tries++) {
        if (await this.writeOnce()) return;
        if (this.lost) this.onSuperseded(this.lost);
      }
    } catch (error) {
      this.onError(error);
    }
  }

  /**
   * One conditional write of the current status. On a conflict it reads the
   * record: a terminal one, or one a later delivery wrote, ends this attempt's
   * writes (`lost`); any other gives the revision to write over next.
   */
  private async writeOnce(): Promise<WrittenStatus | undefined> {
    const written = await writeStatus(this.bucket, this.status, this.revision);
    if (written !== undefined) {
      this.revision = written.revision;
      // The attempt's first stored RUNNING lists it among the type's running tasks.
      if (this.status.state === TaskState.RUNNING && !this.listedRunning) {
        this.listedRunning = true;
        this.bucket.index?.addState(this.status);
      }
      return written;
    }
    // With no record, the revision is a purge marker's: the next write goes over it.
    const { status: current, revision } = await readStatusEntry(this.bucket, this.status.taskId);
    if (current && isTerminal(current.state)) this.lost = "superseded";
    else if (current && overtaken(current, this.status)) this.lost = "overtaken";
    else {
      // A first write meeting a record: the attempt began without one (a first delivery),
      // and RetryDeadLetter wrote one since, which keeps the errors of the runs before.
      if (current && this.revision === 0) {
        this.status.errorHistory = [...current.errorHistory, ...this.status.errorHistory];
        this.status.returnedDeliveries = current.returnedDeliveries;
      }
      this.revision = revision;
    }
    return undefined;
  }
}

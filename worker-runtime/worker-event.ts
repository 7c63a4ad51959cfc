import type { TaskError } from "../sdk/core/index.ts";

/** How one attempt ended, as the worker saw it. */
export type AttemptOutcome =
  | "succeeded"
  | "failed"
  | "retrying"
  | "cancelled"
  | "expired"
  /** A terminal state was already recorded (cancelled meanwhile, or a redelivery of a finished task). */
  | "superseded"
  /** Given back to the queue unfinished (shutdown). */
  | "requeued"
  /**
   * Left to a later delivery of the task, which recorded it: this worker had
   * stopped answering (frozen, or cut off) for `ack_wait`, and the task went to
   * another. Neither acked nor nak'ed; the handler, if it ran, was aborted.
   */
  | "overtaken";

/**
 * What a worker reports in the background: one event per finished attempt,
 * and faults that did not belong to any handler (a failed status write, a
 * broken consumer). Faults never vanish: they are always reported here.
 */
export type WorkerEvent =
  | {
      readonly type: "attempt";
      readonly taskId: string;
      readonly method: string;
      readonly attempt: number;
      readonly outcome: AttemptOutcome;
      readonly durationMs: number;
      readonly error?: TaskError;
    }
  | { readonly type: "error"; readonly error: TaskError; readonly taskId?: string };

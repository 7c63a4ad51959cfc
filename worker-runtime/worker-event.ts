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
  /** The handler waits for the children it spawned: the task is WAITING, and runs again once they end. */
  | "waiting"
  /**
   * Left to a later delivery of the task, which recorded it: this worker had
   * stopped answering (frozen, or cut off) for `ack_wait`, and the task went to
   * another. Neither acked nor nak'ed; the handler, if it ran, was aborted.
   */
  | "overtaken";

/**
 * What a worker reports in the background: one event per attempt that starts
 * its handler, one per finished attempt, and faults that did not belong to any
 * handler (a failed status write, a broken consumer). Faults never vanish:
 * they are always reported here.
 */
export type WorkerEvent =
  /** An attempt passed its checks and limits: its handler runs now. */
  | {
      /** The kind of event. */
      readonly type: "start";
      /** The task's id. */
      readonly taskId: string;
      /** The task's worker type, e.g. "hasher". */
      readonly workerType: string;
      /** The rpc it runs, e.g. "Digest". */
      readonly method: string;
      /** The attempt's number, from 1. */
      readonly attempt: number;
      /**
       * How long the task waited for this start since it became due (its
       * `not_before`, else when the broker stored it: its submit): on the first
       * delivery of its message only, absent on a retry or a redelivery.
       */
      readonly queueWaitMs?: number;
    }
  /** An attempt ended. */
  | {
      /** The kind of event. */
      readonly type: "attempt";
      /** The task's id. */
      readonly taskId: string;
      /** The task's worker type, e.g. "hasher". */
      readonly workerType: string;
      /** The rpc it ran, e.g. "Digest". */
      readonly method: string;
      /** The attempt's number, from 1. */
      readonly attempt: number;
      /** How it ended. */
      readonly outcome: AttemptOutcome;
      /** How long it took, from its delivery to this worker. */
      readonly durationMs: number;
      /** How long it ran, from its `start` event to its end; absent when it ended before it started. */
      readonly runMs?: number;
      /** Why it failed, where it did. */
      readonly error?: TaskError;
    }
  /** A fault outside any handler: a failed status write, a broken consumer... */
  | {
      /** The kind of event. */
      readonly type: "error";
      /** What went wrong. */
      readonly error: TaskError;
      /** The task it concerned, where it concerned one. */
      readonly taskId?: string;
    };

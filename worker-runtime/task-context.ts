import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { TaskError as TaskErrorMessage, TaskState } from "../gen/taskwire/v1/task_pb.ts";
import type { SubmitOptions, TaskMethod } from "../sdk/core/index.ts";

/**
 * What a handler knows about the attempt it runs, and how it talks back.
 */
export interface TaskContext {
  /** The task's id. */
  readonly taskId: string;
  /** The worker type. */
  readonly workerType: string;
  /** The rpc name, e.g. `"Digest"`. */
  readonly method: string;
  /** This attempt's number, starting at 1. */
  readonly attempt: number;
  /** Attempts allowed in total. */
  readonly maxAttempts: number;
  /** When this attempt's timeout passes; `signal` aborts then. */
  readonly deadline: Date;
  /** The task's metadata. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Broadcast only: the endpoint this copy runs for. */
  readonly endpoint: string | undefined;
  /** The worker instance running the attempt. */
  readonly workerId: string;
  /** Aborts on deadline, cancellation or shutdown; `signal.reason` says which. */
  readonly signal: AbortSignal;
  /** Reports progress (fraction in [0, 1]); coalesced, best effort. */
  progress(fraction: number, message?: string): void;
  /** Tells the broker the attempt is alive so a long task is not redelivered. */
  heartbeat(): void;
  /**
   * Submits a child task of this one and resolves with its id. A child is keyed
   * by its parent and `options.key` (default: its rank among the children this
   * run spawned), so a handler that runs again (a retry, or after
   * {@link waitForChildren}) must spawn the same children in the same order:
   * each is then the task spawned before, never a second one.
   */
  spawn<I extends DescMessage>(
    method: TaskMethod<I>,
    request: MessageInitShape<I>,
    options?: SpawnOptions,
  ): Promise<string>;
  /**
   * Resolves once every child spawned so far has ended, with their counts.
   * Until then the task waits without a worker slot (WAITING): this throws to
   * end the run (do not catch it), and the handler runs again from the start
   * once they have ended. Rejects, naming the child, when one spawned with
   * `onFailure: "fail"` (the default) failed.
   */
  waitForChildren(): Promise<ChildCounts>;
  /**
   * The children's outcomes, a list message at a time in spawn order, with
   * results decoded as `output`.
   */
  children<O extends DescMessage>(output: O): AsyncIterable<ChildOutcome<O>[]>;
  /** One child's outcome, its result decoded as `output`. */
  child<O extends DescMessage>(taskId: string, output: O): Promise<ChildOutcome<O>>;
}

/** Options of {@link TaskContext.spawn}: a submit's, with the child's key and failure policy. */
export interface SpawnOptions extends Omit<SubmitOptions, "idempotencyKey"> {
  /** Unique among the parent's children. @default its rank among the children spawned in this run */
  key?: string;
  /**
   * What the child's failure (FAILED, CANCELLED or EXPIRED) does to the parent:
   * "fail" ends the parent's wait at once with an error naming it (its other
   * unfinished children are cancelled); "continue" counts it in `failed`;
   * "ignore" counts it as if it had succeeded. @default "fail"
   */
  onFailure?: "fail" | "continue" | "ignore";
}

/** A parent's children, as {@link TaskContext.waitForChildren} counts them. */
export interface ChildCounts {
  /** Children spawned. */
  readonly spawned: number;
  /** Of those, how many ended. */
  readonly ended: number;
  /** Of those, how many failed, were cancelled or expired ("ignore" ones left out). */
  readonly failed: number;
}

/** One child's outcome. */
export interface ChildOutcome<O extends DescMessage> {
  /** The child's task id. */
  readonly taskId: string;
  /** Its state now (UNSPECIFIED when its record is gone). */
  readonly state: TaskState;
  /** Its result, when it succeeded. */
  readonly result?: MessageShape<O>;
  /** Why it failed, when it did. */
  readonly error?: TaskErrorMessage;
}

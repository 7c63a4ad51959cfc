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
}

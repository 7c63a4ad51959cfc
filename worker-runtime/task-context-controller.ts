import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { TaskError, type TaskMethod } from "../sdk/core/index.ts";
import type { ChildTasks } from "./child-tasks.ts";
import type { ChildCounts, ChildOutcome, SpawnOptions, TaskContext } from "./task-context.ts";

/** Why an attempt's signal aborted. */
export type AbortCause = "deadline" | "cancelled" | "shutdown" | "superseded" | "overtaken";

/**
 * The runtime's side of a {@link TaskContext}: owns the AbortController and
 * the deadline timer, and records why the signal fired.
 */
export class TaskContextController implements TaskContext {
  /** Set when the attempt is aborted. */
  abortCause: AbortCause | undefined;
  /** Why, once aborted: the signal's reason. */
  abortReason: TaskError | undefined;
  // Made on first use of `signal`: most handlers never look at it.
  private controller: AbortController | undefined;
  private readonly deadlineTimer: NodeJS.Timeout;

  readonly taskId: string;
  readonly workerType: string;
  readonly method: string;
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly deadline: Date;
  readonly metadata: Readonly<Record<string, string>>;
  readonly endpoint: string | undefined;
  readonly workerId: string;
  private readonly onProgress: (fraction: number, message: string) => void;
  private readonly onHeartbeat: () => void;
  constructor(
    taskId: string,
    workerType: string,
    method: string,
    attempt: number,
    maxAttempts: number,
    deadline: Date,
    metadata: Readonly<Record<string, string>>,
    endpoint: string | undefined,
    workerId: string,
    onProgress: (fraction: number, message: string) => void,
    onHeartbeat: () => void,
  ) {
    this.taskId = taskId;
    this.workerType = workerType;
    this.method = method;
    this.attempt = attempt;
    this.maxAttempts = maxAttempts;
    this.deadline = deadline;
    this.metadata = metadata;
    this.endpoint = endpoint;
    this.workerId = workerId;
    this.onProgress = onProgress;
    this.onHeartbeat = onHeartbeat;
    // Node fires a longer timer at once: submits refuse timeouts above 24.8 days, and a
    // WorkItem made elsewhere with one waits that long.
    const ms = Math.min(2 ** 31 - 1, Math.max(0, deadline.getTime() - Date.now()));
    this.deadlineTimer = setTimeout(() => this.abort("deadline"), ms);
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.abortReason) this.controller.abort(this.abortReason);
    }
    return this.controller.signal;
  }

  progress(fraction: number, message = ""): void {
    if (!(fraction >= 0 && fraction <= 1)) throw new RangeError(`progress fraction must be in [0, 1], got ${fraction}`);
    this.onProgress(fraction, message);
  }

  heartbeat(): void {
    this.onHeartbeat();
  }

  /** The attempt's children, when its worker can spawn them (see {@link ChildTasks}). */
  childTasks: ChildTasks | undefined;

  spawn<I extends DescMessage>(
    method: TaskMethod<I>,
    request: MessageInitShape<I>,
    options?: SpawnOptions,
  ): Promise<string> {
    return this.parent().spawn(method, request, options);
  }

  waitForChildren(): Promise<ChildCounts> {
    return this.parent().waitForChildren();
  }

  children<O extends DescMessage>(output: O): AsyncIterable<ChildOutcome<O>[]> {
    return this.parent().children(output);
  }

  child<O extends DescMessage>(taskId: string, output: O): Promise<ChildOutcome<O>> {
    return this.parent().child(taskId, output);
  }

  private parent(): ChildTasks {
    if (this.childTasks) return this.childTasks;
    throw new TaskError(
      this.endpoint ? "a broadcast copy spawns no child tasks" : "this worker spawns no child tasks",
      Code.FailedPrecondition,
      { retryable: false },
    );
  }

  /** Aborts the signal once, recording the first cause. */
  abort(cause: AbortCause): void {
    if (this.abortCause) return;
    this.abortCause = cause;
    const reasons: Record<AbortCause, () => TaskError> = {
      deadline: () =>
        new TaskError(
          `attempt ${this.attempt} passed its deadline ${this.deadline.toISOString()}`,
          Code.DeadlineExceeded,
        ),
      cancelled: () => new TaskError("the task was cancelled", Code.Canceled, { retryable: false }),
      shutdown: () => new TaskError(`worker ${this.workerId} is shutting down`, Code.Unavailable),
      superseded: () =>
        new TaskError("the task already ended (cancelled, or finished by another delivery)", Code.Aborted, {
          retryable: false,
        }),
      overtaken: () =>
        new TaskError("a later delivery of the task, to another worker, has it now", Code.Aborted, {
          retryable: false,
        }),
    };
    this.abortReason = reasons[cause]();
    this.controller?.abort(this.abortReason);
  }

  /** Stops the deadline timer once the handler has returned. */
  dispose(): void {
    clearTimeout(this.deadlineTimer);
  }
}

import type { DescMessage, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { TaskStatus } from "../../gen/taskwire/v1/task_pb.ts";
import type { TaskError } from "./task-error.ts";
import type { DeliveryName, PriorityName, RetryOptions, TaskMethod } from "./task-method.ts";

/** Per-task overrides accepted at submit. Every field is optional. */
export interface SubmitOptions {
  /** Submitting the same key again within the duplicate window returns the first task. */
  idempotencyKey?: string;
  /**
   * Whose task this is (a tenant, a user): queued tasks of different keys are
   * taken in turn. @default the request field marked `(taskwire.v1.field).fairness_key`, else none
   */
  fairnessKey?: string;
  /** Overrides the method's priority. */
  priority?: PriorityName;
  /** Do not start before this many milliseconds after acceptance. */
  delayMs?: number;
  /** Do not start before this time. */
  notBefore?: Date;
  /** If no attempt has started by then, the task ends EXPIRED without running. */
  expiresAt?: Date;
  /** Limit of each attempt. */
  timeoutMs?: number;
  /** Overrides fields of the method's retry policy. */
  retry?: RetryOptions;
  /** Key/values propagated to the handler's context. */
  metadata?: Record<string, string>;
  /** Overrides the method's delivery mode. */
  delivery?: DeliveryName;
  /** Broadcast only: the worker instance names that must each run the task. */
  endpoints?: string[];
}

/** A stream of status changes; `close()` stops it early. */
export interface StatusStream extends AsyncIterable<TaskStatus> {
  /** Stops the stream; a pending iteration ends. Idempotent. */
  close(): void;
}

/**
 * An accepted task. `O` is the result message's descriptor, so `result()` is typed.
 */
export interface TaskHandle<O extends DescMessage = DescMessage> {
  /** The task's id. */
  readonly id: string;
  /** True when the idempotency key matched an earlier task. */
  readonly duplicate: boolean;
  /**
   * Waits for a terminal state. Resolves with the typed result on SUCCEEDED;
   * rejects with a `TaskError` on any other terminal state.
   */
  result(options?: { signal?: AbortSignal }): Promise<MessageShape<O>>;
  /** Reads the current status. */
  status(): Promise<TaskStatus>;
  /** Follows status changes: the current status first, ending after a terminal state. */
  watch(): StatusStream;
  /** Cancels the task; resolves with the status after the request. */
  cancel(reason?: string): Promise<TaskStatus>;
}

/**
 * The client API shared by gateway mode and direct (NATS) mode. Generated typed
 * clients (`createHashServiceClient(client)`) are thin wrappers around `submitTask`.
 */
export interface TaskClient {
  /** Submits one task of a generated task method; resolves once it is durably accepted. */
  submitTask<I extends DescMessage, O extends DescMessage>(
    method: TaskMethod<I, O>,
    request: MessageInitShape<I>,
    options?: SubmitOptions,
  ): Promise<TaskHandle<O>>;
  /**
   * Submits many tasks of one method in one request (BatchSubmit, at most 1000).
   * Each is accepted or refused on its own: the answer holds, in order, a handle
   * or the TaskError that names what was wrong with that task.
   */
  submitBatch<I extends DescMessage, O extends DescMessage>(
    method: TaskMethod<I, O>,
    tasks: ReadonlyArray<{ request: MessageInitShape<I>; options?: SubmitOptions }>,
  ): Promise<Array<TaskHandle<O> | TaskError>>;
}

import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type ErrorCode, type TaskError as TaskErrorMessage, TaskErrorSchema } from "../../gen/taskwire/v1/task_pb.ts";

/**
 * The one error type of Taskwire: a task's outcome, a refused submit, a lost
 * connection. It is a `ConnectError`, so the gateway sends it as is and clients
 * see the same code on every transport. Codes are Connect's `Code`.
 */
export class TaskError extends ConnectError {
  // `name` stays "ConnectError": Connect recognises its errors by it (across
  // package copies), so a TaskError thrown in a handler keeps its code on the wire.
  /** Whether another attempt may succeed. */
  readonly retryable: boolean;
  /** The task the error is about, when there is one. */
  readonly taskId: string | undefined;

  constructor(
    message: string,
    code: Code = Code.Unknown,
    options: { retryable?: boolean; taskId?: string; cause?: unknown } = {},
  ) {
    super(message, code, undefined, undefined, options.cause);
    this.retryable = options.retryable ?? defaultRetryable(code);
    this.taskId = options.taskId;
  }

  /** `instanceof TaskError` by prototype chain (ConnectError's own check is by name). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // biome-ignore lint/complexity/noThisInStatic: `this` is the subclass being tested (NonRetryableError too)
    return Function.prototype[Symbol.hasInstance].call(this, value);
  }

  /**
   * Normalises whatever was caught: a TaskError as is, a ConnectError with its
   * code, anything else as UNKNOWN with its message.
   */
  static override from(reason: unknown, fallback: Code = Code.Unknown): TaskError {
    if (reason instanceof TaskError) return reason;
    if (reason instanceof ConnectError) return new TaskError(reason.rawMessage, reason.code, { cause: reason });
    if (reason instanceof Error) return new TaskError(reason.message || reason.name, fallback, { cause: reason });
    return new TaskError(String(reason), fallback, { cause: reason });
  }

  /** Rebuilds the error a worker recorded in a task's status. */
  static fromMessage(message: TaskErrorMessage, taskId?: string): TaskError {
    const code = (message.code || Code.Unknown) as Code;
    return new TaskError(message.message, code, { retryable: message.retryable, taskId });
  }

  /** The error as recorded in a task's status. */
  toMessage(attempt: number): TaskErrorMessage {
    return create(TaskErrorSchema, {
      code: this.code as number as ErrorCode,
      message: this.rawMessage,
      retryable: this.retryable,
      attempt,
      occurredAt: timestampNow(),
    });
  }
}

/**
 * Thrown by a handler to end the task now: no further attempt is made, whatever
 * the retry policy says (BullMQ's `UnrecoverableError`).
 */
export class NonRetryableError extends TaskError {
  constructor(message: string, code: Code = Code.FailedPrecondition) {
    super(message, code, { retryable: false });
  }
}

// Errors that describe the input or the caller never succeed on a retry.
function defaultRetryable(code: Code): boolean {
  switch (code) {
    case Code.InvalidArgument:
    case Code.NotFound:
    case Code.AlreadyExists:
    case Code.PermissionDenied:
    case Code.Unauthenticated:
    case Code.Unimplemented:
    case Code.OutOfRange:
    case Code.FailedPrecondition:
    case Code.Canceled:
      return false;
    default:
      return true;
  }
}

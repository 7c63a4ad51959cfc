import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { TaskState, type TaskStatus } from "../../gen/taskwire/v1/task_pb.ts";
import type { StatusStream, TaskBackend, TaskHandle } from "../core/index.ts";
import { stateName, TaskError, type TaskOutcome } from "../core/index.ts";
import { decodeMessage } from "../wire/index.ts";

/**
 * A handle on task `id`, whose result decodes as `output`. A producer holds one
 * per task until it asks for the result, often tens of thousands at once: one
 * object each, its methods shared.
 */
export function createTaskHandle<O extends DescMessage>(
  backend: TaskBackend,
  id: string,
  output: O,
  duplicate = false,
): TaskHandle<O> {
  return new BackendTaskHandle(backend, id, output, duplicate);
}

class BackendTaskHandle<O extends DescMessage> implements TaskHandle<O> {
  private readonly backend: TaskBackend;
  readonly id: string;
  private readonly output: O;
  readonly duplicate: boolean;
  constructor(backend: TaskBackend, id: string, output: O, duplicate: boolean) {
    this.backend = backend;
    this.id = id;
    this.output = output;
    this.duplicate = duplicate;
  }

  status(): Promise<TaskStatus> {
    return this.backend.getTask(this.id);
  }

  cancel(reason = ""): Promise<TaskStatus> {
    return this.backend.cancelTask(this.id, reason);
  }

  watch(): StatusStream {
    return watchStatus(this.backend, this.id);
  }

  result(options: { signal?: AbortSignal } = {}): Promise<MessageShape<O>> {
    const output = this.output;
    return this.backend.awaitOutcome(this.id, options.signal).then((outcome) => decodeResult(outcome, output));
  }
}

/** Follows a task's status until a terminal state, or until `close()`. */
export function watchStatus(backend: TaskBackend, id: string): StatusStream {
  const controller = new AbortController();
  const statuses = backend.watchTask(id, controller.signal);
  return {
    close: () => controller.abort(),
    async *[Symbol.asyncIterator]() {
      let ended = false;
      try {
        for await (const status of statuses) {
          yield status;
          if (controller.signal.aborted) return;
        }
        ended = true;
      } catch (error) {
        if (controller.signal.aborted) return; // closed by the caller
        throw error;
      } finally {
        // Left early (break, close): cancel the watch underneath.
        if (!ended) controller.abort();
      }
    },
  };
}

/** The typed result of a terminal status, or the TaskError that ended it. */
export function decodeResult<O extends DescMessage>(status: TaskOutcome, output: O): MessageShape<O> {
  if (status.state === TaskState.SUCCEEDED) {
    const any = status.result;
    const typeName = any?.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1);
    if (!any || typeName !== output.typeName) {
      throw new TaskError(
        `task ${status.taskId} succeeded with a ${typeName ?? "missing"} result, expected ${output.typeName}`,
        Code.Internal,
        { taskId: status.taskId },
      );
    }
    return decodeMessage(output, any.value);
  }
  if (status.error) throw TaskError.fromMessage(status.error, status.taskId);
  throw new TaskError(`task ${status.taskId} ended ${stateName(status.state)}`, Code.Unknown, {
    taskId: status.taskId,
  });
}

import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { TaskState, type TaskStatus } from "../gen/taskwire/v1/task_pb.js";
import type { TaskBackend } from "./task-backend.js";
import type { StatusStream, TaskHandle } from "./task-client.js";
import { TaskError } from "./task-error.js";
import { decodeMessage } from "./wire-codec.js";

/**
 * A handle on task `id`, whose result decodes as `output`.
 */
export function createTaskHandle<O extends DescMessage>(
  backend: TaskBackend,
  id: string,
  output: O,
  duplicate = false,
): TaskHandle<O> {
  const watch = (): StatusStream => watchStatus(backend, id);
  return {
    id,
    duplicate,
    status: () => backend.getTask(id),
    cancel: (reason = "") => backend.cancelTask(id, reason),
    watch,
    async result(options = {}) {
      return decodeResult(await backend.awaitTerminal(id, options.signal), output);
    },
  };
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
export function decodeResult<O extends DescMessage>(status: TaskStatus, output: O): MessageShape<O> {
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
  throw new TaskError(`task ${status.taskId} ended ${TaskState[status.state]}`, Code.Unknown, {
    taskId: status.taskId,
  });
}

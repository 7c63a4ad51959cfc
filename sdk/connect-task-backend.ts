import { Code, createClient, type Transport } from "@connectrpc/connect";
import type { TaskStatus } from "../gen/taskwire/v1/task_pb.js";
import { TaskService } from "../gen/taskwire/v1/task_service_pb.js";
import type { TaskBackend } from "./task-backend.js";
import { TaskError } from "./task-error.js";
import { isTerminal } from "./task-status.js";

/**
 * TaskService through a gateway: the same {@link TaskBackend} as direct mode,
 * over any Connect transport (Connect, gRPC or gRPC-Web).
 */
export function createConnectTaskBackend(transport: Transport): TaskBackend {
  const client = createClient(TaskService, transport);
  const call = <T>(promise: Promise<T>) => promise.catch((error) => Promise.reject(TaskError.from(error)));
  const status = <S>(s: S | undefined, what: string): S => {
    if (s === undefined) throw new TaskError(`the gateway answered ${what} without a status`, Code.Internal);
    return s;
  };
  const backend: TaskBackend = {
    submit: (task) => call(client.submit({ task })),
    batchSubmit: (tasks) => call(client.batchSubmit({ tasks })).then((r) => r.results),
    getTask: (taskId) => call(client.getTask({ taskId })).then((r) => status(r.status, "GetTask")),
    cancelTask: (taskId, reason) =>
      call(client.cancelTask({ taskId, reason })).then((r) => status(r.status, "CancelTask")),
    listTasks: (request) => call(client.listTasks(request)),
    close: async () => {},
    async awaitTerminal(taskId, signal) {
      // Read the stream to its end (it ends after the terminal state): cancelling
      // it instead costs the gateway a stream reset, or an HTTP/1.1 connection.
      let last: TaskStatus | undefined;
      for await (const s of backend.watchTask(taskId, signal)) last = s;
      signal?.throwIfAborted();
      if (!last || !isTerminal(last.state))
        throw new TaskError(`the watch of task ${taskId} ended before a terminal state`, Code.Unavailable, { taskId });
      return last;
    },
    async *watchTask(taskId, signal) {
      try {
        for await (const response of client.watchTask({ taskId }, { signal })) {
          yield status(response.status, "WatchTask");
        }
      } catch (error) {
        throw TaskError.from(error);
      }
    },
  };
  return backend;
}

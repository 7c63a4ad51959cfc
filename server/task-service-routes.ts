import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { TaskService } from "../gen/taskwire/v1/task_service_pb.js";
import type { TaskBackend } from "../sdk/task-backend.js";

/**
 * Serves `taskwire.v1.TaskService` by delegating each call to a
 * {@link TaskBackend}. The backend's TaskErrors reach the client with their code
 * and message on every protocol.
 *
 * ```ts
 * const handler = connectNodeAdapter({ routes: taskServiceRoutes(backend) });
 * ```
 */
export function taskServiceRoutes(backend: TaskBackend): (router: ConnectRouter) => void {
  return (router) => {
    router.service(TaskService, {
      async submit({ task }) {
        if (task === undefined) throw new ConnectError("task is required", Code.InvalidArgument);
        return backend.submit(task);
      },
      async batchSubmit({ tasks }) {
        return { results: await backend.batchSubmit(tasks) };
      },
      async getTask({ taskId }) {
        return { status: await backend.getTask(taskId) };
      },
      // The context's signal fires when the client hangs up, the deadline passes or
      // the gateway shuts down; the backend stops following the task then. A watch cut
      // short must not look like one that ended after a terminal state, so it ends
      // with the signal's reason (DEADLINE_EXCEEDED, or UNAVAILABLE on shutdown).
      async *watchTask({ taskId }, context) {
        for await (const status of backend.watchTask(taskId, context.signal)) yield { status };
        context.signal.throwIfAborted();
      },
      // As for watchTask: a wait cut short ends with the signal's reason.
      async waitTask({ taskId }, context) {
        try {
          return { status: await backend.awaitTerminal(taskId, context.signal) };
        } catch (error) {
          context.signal.throwIfAborted();
          throw error;
        }
      },
      async cancelTask({ taskId, reason }) {
        return { status: await backend.cancelTask(taskId, reason) };
      },
      async listTasks(request) {
        return backend.listTasks(request);
      },
    });
  };
}

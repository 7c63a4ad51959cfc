import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import type { TaskStatus } from "../gen/taskwire/v1/task_pb.js";
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
      async waitTask({ taskId }, context) {
        return { status: await awaitTerminal(backend, taskId, context.signal) };
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

/**
 * As `backend.awaitTerminal`, but a wait cut short ends with the signal's reason
 * (DEADLINE_EXCEEDED, or UNAVAILABLE on shutdown), as watchTask does: it must not
 * look like any other failure.
 */
export async function awaitTerminal(backend: TaskBackend, taskId: string, signal: AbortSignal): Promise<TaskStatus> {
  try {
    return await backend.awaitTerminal(taskId, signal);
  } catch (error) {
    signal.throwIfAborted();
    throw error;
  }
}

import { defaultMaxListeners, setMaxListeners } from "node:events";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import type { TaskStatus } from "../gen/taskwire/v1/task_pb.ts";
import { TaskService, type WaitTasksResponseSchema } from "../gen/taskwire/v1/task_service_pb.ts";
import type { TaskBackend } from "../sdk/core/index.ts";
import { Mailbox, maxBatchSize, TaskError } from "../sdk/core/index.ts";
import { submitterOf } from "./gateway-auth.ts";

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
      async submit({ task }, context) {
        if (task === undefined) throw new ConnectError("task is required", Code.InvalidArgument);
        task.submittedBy = submitterOf(context);
        return backend.submit(task);
      },
      async batchSubmit({ tasks }, context) {
        const submitter = submitterOf(context);
        for (const task of tasks) task.submittedBy = submitter;
        return { results: await backend.batchSubmit(tasks) };
      },
      async getTask({ taskId, includePayload }) {
        const status = await backend.getTask(taskId);
        return { status, payload: includePayload ? await backend.getPayload(taskId) : undefined };
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
      async *waitTasks({ taskIds }, context) {
        const ids = [...new Set(taskIds)];
        if (ids.length > maxBatchSize) {
          throw new ConnectError(
            `WaitTasks waits for at most ${maxBatchSize} tasks, got ${ids.length}`,
            Code.InvalidArgument,
          );
        }
        if (ids.length === 0) return;
        // Each wait runs on its own and may listen to the call's signal (the NATS
        // backend's share one listener), as do the stream and connect itself:
        // Node's limit (10) is raised by the waits' count.
        setMaxListeners(defaultMaxListeners + ids.length, context.signal);
        // The stream yields their outcomes as they come.
        const outcomes = new Mailbox<MessageInitShape<typeof WaitTasksResponseSchema>>();
        for (const taskId of ids) {
          backend.awaitTerminal(taskId, context.signal).then(
            (status) => outcomes.push({ taskId, outcome: { case: "status", value: status } }),
            (error) => outcomes.push({ taskId, outcome: { case: "error", value: TaskError.from(error).toMessage(0) } }),
          );
        }
        const stop = () => outcomes.close();
        context.signal.addEventListener("abort", stop, { once: true });
        try {
          let left = ids.length;
          for await (const outcome of outcomes) {
            yield outcome;
            if (--left === 0) return;
          }
          context.signal.throwIfAborted(); // cut short: DEADLINE_EXCEEDED, or UNAVAILABLE on shutdown
        } finally {
          context.signal.removeEventListener("abort", stop);
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

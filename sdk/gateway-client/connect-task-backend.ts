import { createClient, type Transport } from "@connectrpc/connect";
import { TaskService } from "../../gen/taskwire/v1/task_service_pb.ts";
import type { TaskBackend } from "../core/index.ts";
import { TaskError } from "../core/index.ts";
import { gatewayCall as call, required } from "./gateway-call.ts";
import { WaitBatcher } from "./wait-batcher.ts";

/**
 * TaskService through a gateway: the same {@link TaskBackend} as direct mode,
 * over any Connect transport (Connect, gRPC or gRPC-Web).
 */
export function createConnectTaskBackend(transport: Transport): TaskBackend {
  const client = createClient(TaskService, transport);
  const waits = new WaitBatcher(client);
  const status = required;
  return {
    submit: (task) => call(client.submit({ task })),
    batchSubmit: (tasks) => call(client.batchSubmit({ tasks })).then((r) => r.results),
    getTask: (taskId) => call(client.getTask({ taskId })).then((r) => status(r.status, "GetTask")),
    getPayload: (taskId) => call(client.getTask({ taskId, includePayload: true })).then((r) => r.payload),
    cancelTask: (taskId, reason) =>
      call(client.cancelTask({ taskId, reason })).then((r) => status(r.status, "CancelTask")),
    listTasks: (request) => call(client.listTasks(request)),
    close: async () => {},
    awaitTerminal: (taskId, signal) => waits.wait(taskId, signal),
    awaitOutcome: (taskId, signal) => waits.wait(taskId, signal),
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
}

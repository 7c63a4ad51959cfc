import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { ConnectRouter } from "@connectrpc/connect";
import { QueueService } from "../gen/taskwire/v1/queue_service_pb.ts";
import type { QueueBackend } from "../sdk/core/index.ts";

/** Serves `taskwire.v1.QueueService` by delegating each call to a {@link QueueBackend}. */
export function queueServiceRoutes(backend: QueueBackend): (router: ConnectRouter) => void {
  return (router) => {
    router.service(QueueService, {
      getQueue: async ({ workerType }) => ({ queue: await backend.getQueue(workerType) }),
      pauseQueue: async ({ workerType, until }) => ({
        queue: await backend.pauseQueue(workerType, until && timestampDate(until)),
      }),
      resumeQueue: async ({ workerType }) => ({ queue: await backend.resumeQueue(workerType) }),
      purgeQueue: async ({ workerType, reason }) => ({
        purged: BigInt(await backend.purgeQueue(workerType, reason)),
      }),
      listDeadLetters: ({ workerType, pageSize, pageToken }) =>
        backend.listDeadLetters(workerType, { pageSize, pageToken }),
      getDeadLetter: async ({ taskId }) => ({ deadLetter: await backend.getDeadLetter(taskId) }),
      retryDeadLetter: async ({ taskId }) => ({ status: await backend.retryDeadLetter(taskId) }),
      purgeDeadLetters: async ({ workerType, taskIds }) => ({
        purged: BigInt(await backend.purgeDeadLetters(workerType, taskIds)),
      }),
    });
  };
}

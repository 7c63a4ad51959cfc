import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Transport } from "@connectrpc/connect";
import { QueueService } from "../../gen/taskwire/v1/queue_service_pb.ts";
import { WorkerService } from "../../gen/taskwire/v1/worker_service_pb.ts";
import { type QueueBackend, TaskError } from "../core/index.ts";
import { gatewayCall as call, required } from "./gateway-call.ts";

/** QueueService and WorkerService through a gateway: the same {@link QueueBackend} as direct mode. */
export function createConnectQueueBackend(transport: Transport): QueueBackend {
  const client = createClient(QueueService, transport);
  const workers = createClient(WorkerService, transport);
  return {
    getQueue: (workerType) => call(client.getQueue({ workerType })).then((r) => required(r.queue, "GetQueue")),
    pauseQueue: (workerType, until) =>
      call(client.pauseQueue({ workerType, until: until && timestampFromDate(until) })).then((r) =>
        required(r.queue, "PauseQueue"),
      ),
    resumeQueue: (workerType) => call(client.resumeQueue({ workerType })).then((r) => required(r.queue, "ResumeQueue")),
    purgeQueue: (workerType, reason = "") =>
      call(client.purgeQueue({ workerType, reason })).then((r) => Number(r.purged)),
    listDeadLetters: (workerType, page = {}) => call(client.listDeadLetters({ workerType, ...page })),
    getDeadLetter: (taskId) =>
      call(client.getDeadLetter({ taskId })).then((r) => required(r.deadLetter, "GetDeadLetter")),
    retryDeadLetter: (taskId) =>
      call(client.retryDeadLetter({ taskId })).then((r) => required(r.status, "RetryDeadLetter")),
    purgeDeadLetters: (workerType, taskIds = []) =>
      call(client.purgeDeadLetters({ workerType, taskIds })).then((r) => Number(r.purged)),
    getStore: () => call(client.getStore({})),
    listQueues: () => call(client.listQueues({})).then((r) => r.queues),
    async *watchQueues(signal) {
      try {
        for await (const response of client.watchQueues({}, { signal })) yield response.queues;
      } catch (error) {
        throw TaskError.from(error);
      }
    },
    getThroughput: (workerType, since) =>
      call(client.getThroughput({ workerType, since: since && timestampFromDate(since) })).then((r) => r.points),
    listWorkers: (workerType = "") => call(workers.listWorkers({ workerType })).then((r) => r.workers),
    async *watchWorkers(workerType = "", signal) {
      try {
        for await (const response of workers.watchWorkers({ workerType }, { signal })) yield response.workers;
      } catch (error) {
        throw TaskError.from(error);
      }
    },
  };
}

import { timestampDate, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { QueueService, type QueueSnapshot } from "../gen/taskwire/v1/queue_service_pb.ts";
import type { QueueBackend } from "../sdk/core/index.ts";
import { combineSnapshots, workerTypeOf } from "../sdk/core/index.ts";
import { type AuditLog, principalOf } from "./gateway-auth.ts";
import { allows } from "./permissions.ts";
import { SharedFeed } from "./shared-feed.ts";

/** Whether the caller may read a worker type's queue and tasks. */
export function readable(context: HandlerContext): (workerType: string) => boolean {
  const { permissions } = principalOf(context);
  return (workerType) => allows(permissions, "read", workerType);
}

/**
 * Runs an operation that changes something of a worker type, then logs who did
 * it to which type, and how it ended.
 */
export function audited(
  log: AuditLog,
): <T>(context: HandlerContext, workerType: string, run: () => Promise<T>) => Promise<T> {
  return async (context, workerType, run) => {
    const principal = principalOf(context);
    const entry = {
      principal: principal.name,
      via: principal.via,
      method: `/${context.service.typeName}/${context.method.name}`,
      action: "operate" as const,
      workerTypes: [workerType],
    };
    try {
      const result = await run();
      log({ time: new Date().toISOString(), ...entry, outcome: "ok" });
      return result;
    } catch (error) {
      const failure = ConnectError.from(error);
      log({
        time: new Date().toISOString(),
        ...entry,
        outcome: "failed",
        code: Code[failure.code],
        reason: failure.rawMessage,
      });
      throw error;
    }
  };
}

/**
 * Serves `taskwire.v1.QueueService` by delegating each call to a {@link QueueBackend}.
 * Each operation that changes a queue (pause, resume, purge, dead letters retried
 * or purged) is logged to `log` with its caller and outcome. Every WatchQueues
 * caller follows one watch of the backend's, with the last hour's throughput.
 */
export function queueServiceRoutes(backend: QueueBackend, log: AuditLog): (router: ConnectRouter) => void {
  const operation = audited(log);
  const hourMs = 3_600_000;
  const queues = new SharedFeed<QueueSnapshot[]>(
    (signal) => backend.watchQueues(signal),
    (earlier, later) => combineSnapshots(earlier, later, Date.now() - hourMs),
  );
  return (router) => {
    router.service(QueueService, {
      getQueue: async ({ workerType }) => ({ queue: await backend.getQueue(workerType) }),
      pauseQueue: ({ workerType, until }, context) =>
        operation(context, workerType, async () => ({
          queue: await backend.pauseQueue(workerType, until && timestampDate(until)),
        })),
      resumeQueue: ({ workerType }, context) =>
        operation(context, workerType, async () => ({ queue: await backend.resumeQueue(workerType) })),
      purgeQueue: ({ workerType, reason }, context) =>
        operation(context, workerType, async () => ({
          purged: BigInt(await backend.purgeQueue(workerType, reason)),
        })),
      listDeadLetters: ({ workerType, pageSize, pageToken }) =>
        backend.listDeadLetters(workerType, { pageSize, pageToken }),
      getDeadLetter: async ({ taskId }) => ({ deadLetter: await backend.getDeadLetter(taskId) }),
      retryDeadLetter: ({ taskId }, context) =>
        operation(context, workerTypeOf(taskId), async () => ({ status: await backend.retryDeadLetter(taskId) })),
      purgeDeadLetters: ({ workerType, taskIds }, context) =>
        operation(context, workerType, async () => ({
          purged: BigInt(await backend.purgeDeadLetters(workerType, taskIds)),
        })),
      getStore: () => backend.getStore(),
      listQueues: async (_, context) => ({
        queues: (await backend.listQueues()).filter((q) => readable(context)(q.workerType)),
      }),
      async *watchQueues(_, context) {
        const mayRead = readable(context);
        for await (const snapshots of queues.follow(context.signal)) {
          yield { queues: snapshots.filter((s) => mayRead(s.queue?.workerType ?? "")), at: timestampNow() };
        }
      },
      getThroughput: async ({ workerType, since }) => ({
        points: await backend.getThroughput(workerType, since && timestampDate(since)),
      }),
    });
  };
}

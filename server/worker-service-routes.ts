import type { ConnectRouter } from "@connectrpc/connect";
import { type WorkerInstance, WorkerService } from "../gen/taskwire/v1/worker_service_pb.ts";
import type { QueueBackend } from "../sdk/core/index.ts";
import { readable } from "./queue-service-routes.ts";
import { SharedFeed } from "./shared-feed.ts";

/**
 * Serves `taskwire.v1.WorkerService` from a {@link QueueBackend}. Each caller
 * sees the instances serving a type it may read, and of those only the types
 * it may read. Every WatchWorkers caller follows one watch of the backend's.
 */
export function workerServiceRoutes(backend: QueueBackend): (router: ConnectRouter) => void {
  const feed = new SharedFeed<WorkerInstance[]>(
    (signal) => backend.watchWorkers(undefined, signal),
    (_, later) => later,
  );
  /** The instances, each with only the types `mayRead` (and of `workerType`, if given); none left out of all. */
  const visible = (instances: WorkerInstance[], mayRead: (type: string) => boolean, workerType: string) =>
    instances
      .map((i) => ({
        ...i,
        types: i.types.filter((t) => mayRead(t.workerType) && (!workerType || t.workerType === workerType)),
      }))
      .filter((i) => i.types.length > 0);
  return (router) => {
    router.service(WorkerService, {
      listWorkers: async ({ workerType }, context) => ({
        workers: visible(await backend.listWorkers(workerType || undefined), readable(context), workerType),
      }),
      async *watchWorkers({ workerType }, context) {
        const mayRead = readable(context);
        for await (const instances of feed.follow(context.signal)) {
          yield { workers: visible(instances, mayRead, workerType) };
        }
      },
    });
  };
}

import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { millis, type NatsConnection } from "@nats-io/transport-node";
import type { TaskStatus } from "../gen/taskwire/v1/task_pb.ts";
import { isTerminal, type TaskServiceDefinition, taskIdToken, topology } from "../sdk/core/index.ts";
import {
  bucketOf,
  jetStreamOptionsOf,
  provisionStatusBucket,
  RequestPipeline,
  type StatusBucket,
  type StatusTopologyOptions,
  statusTtls,
} from "../sdk/nats/index.ts";
import { DuePromoter } from "./due-promoter.ts";
import { FairDispatcher } from "./fair-dispatcher.ts";
import { Leases } from "./leases.ts";
import { resultPublisher } from "./result-events.ts";

/** What {@link startHousekeeping} works with: a process's connection, status bucket and identity. */
export interface HousekeepingEnvironment {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly bucket: StatusBucket;
  /** Who holds the type's dispatch lease while this process dispatches (a worker or gateway id). */
  readonly holder: string;
  /** Publishes a stored terminal outcome as a TaskResult event. */
  readonly reportResult: (status: TaskStatus, bytes: Uint8Array) => void;
  readonly onError: (error: unknown, doing: string) => void;
}

/** Housekeeping running in one process. */
export interface Housekeeping {
  /** Ends it: work in hand finishes, or is redelivered to another process. */
  stop(): Promise<void>;
}

/**
 * The work of a worker type that is not running its tasks: moving its delayed
 * tasks to the queue as they come due (and ending a broadcast whose deadline
 * came first), and queueing its tasks with fairness keys (one dispatcher per
 * type at a time, by lease). TypeScript workers and gateways both do it, so a
 * type whose workers are written in another language, which run tasks only,
 * is kept all the same (docs/decisions/workers-in-other-languages.md).
 */
export async function startHousekeeping(
  env: HousekeepingEnvironment,
  definition: TaskServiceDefinition,
  ackWaitMs: number,
): Promise<Housekeeping> {
  const { workerType } = definition;
  const { nc, jsm, bucket } = env;
  const promoter = await DuePromoter.start(
    env.js,
    bucket,
    workerType,
    (error) => env.onError(error, `moving a due ${workerType} task to its queue`),
    (status, bytes, workItem) => {
      // A broadcast ended INCOMPLETE: its copies left unanswered go, and its submitter hears of it.
      for (const e of status.endpoints) {
        if (isTerminal(e.state)) continue;
        const filter = topology.broadcastSubject(workerType, e.endpoint, taskIdToken(status.taskId));
        jsm.streams.purge(topology.broadcastStream(workerType), { filter }).catch(() => undefined);
      }
      if (workItem.notifySubject) nc.publish(workItem.notifySubject, bytes);
      env.reportResult(status, bytes);
    },
  );
  const dispatcher = new FairDispatcher(
    jsm,
    bucket,
    workerType,
    new Leases(bucket.requests, jsm, workerType, "dispatch", 1, 5_000),
    env.holder,
    (error) => env.onError(error, `queueing ${workerType}'s keyed tasks`),
    definition.keyLimits,
    // Key leases live one ack wait unless renewed, as the type's consumers hold a task.
    ackWaitMs,
  );
  return {
    async stop() {
      promoter.stop();
      await dispatcher.stop();
    },
  };
}

/**
 * A gateway's housekeeping of its worker types: for each, it moves due delayed
 * tasks to the queue (ending a broadcast whose deadline came first) and queues
 * tasks with fairness keys, as TypeScript workers do, so that workers in other
 * languages need only run tasks. It works over a status bucket of its own
 * (provisioned already by its task backend); results of broadcasts it ends go
 * to the default result subject.
 */
export async function keepHouse(
  nc: NatsConnection,
  definitions: readonly TaskServiceDefinition[],
  options: {
    readonly holder: string;
    readonly topology?: StatusTopologyOptions;
    onError(error: unknown, doing: string): void;
  },
): Promise<Housekeeping> {
  const jsm = await jetstreamManager(nc, jetStreamOptionsOf(nc));
  const requests = new RequestPipeline(nc);
  const kv = await provisionStatusBucket(nc, options.topology);
  const env: HousekeepingEnvironment = {
    nc,
    js: jetstream(nc, jetStreamOptionsOf(nc)),
    jsm,
    bucket: bucketOf(kv, requests, await statusTtls(jsm, definitions)),
    holder: options.holder,
    reportResult: resultPublisher(nc, {}, (error) => options.onError(error, "publishing a result")),
    onError: options.onError,
  };
  const started: Housekeeping[] = [];
  const stop = async () => {
    await Promise.all(started.map((h) => h.stop()));
    requests.close();
  };
  try {
    for (const definition of definitions) {
      const { workerType } = definition;
      const info = await jsm.consumers.info(
        topology.streamName(workerType),
        topology.consumerName(workerType, "normal"),
      );
      started.push(await startHousekeeping(env, definition, millis(info.config.ack_wait ?? 30_000_000_000)));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { stop };
}

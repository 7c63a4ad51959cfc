import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toJsonString } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { NatsConnection } from "@nats-io/transport-node";
import { type ThroughputPoint, ThroughputPointSchema } from "../../gen/taskwire/v1/queue_service_pb.ts";
import {
  ListWorkersResponseSchema,
  type WorkerInstance,
  WorkerInstanceSchema,
} from "../../gen/taskwire/v1/worker_service_pb.ts";
import { addPoint, topology } from "../core/index.ts";
import { presenceTtlMs } from "./broadcast.ts";
import { type BatchedMessage, directGetBatch, isNoSuchStream } from "./jetstream-ops.ts";

const workersStream = `KV_${topology.workersBucket}`;
const presencePrefix = `$KV.${topology.workersBucket}.`;

/**
 * The live worker instances (serving `workerType`, or all), by worker id: the
 * last presence of each, its heartbeat the broker's time of that presence.
 * One batched read, whatever the number of instances.
 */
export async function readWorkers(nc: NatsConnection, workerType?: string): Promise<WorkerInstance[]> {
  return (await readFleet(nc, workerType)).instances(Date.now());
}

/**
 * The number of live instances serving each worker type (types with none left
 * out), from one batched read of every presence: as many as
 * {@link readWorkers} of each type would give.
 */
export async function liveWorkerCounts(nc: NatsConnection): Promise<Map<string, number>> {
  return (await readFleet(nc)).liveByType(Date.now());
}

/** The last presence of every key (of `workerType`'s, or all). */
async function readFleet(nc: NatsConnection, workerType?: string): Promise<Fleet> {
  let found: BatchedMessage[];
  try {
    found = await directGetBatch(nc, workersStream, { multi_last: [`${presencePrefix}${workerType ?? "*"}.*`] });
  } catch (error) {
    if (isNoSuchStream(error)) return new Fleet();
    throw error;
  }
  const live = new Fleet();
  for (const message of found) {
    live.record(message.subject.slice(presencePrefix.length), message.data, message.storedAtUs / 1000);
  }
  return live;
}

/**
 * Follows the live worker instances (serving `workerType`, or all): yields
 * them once read, then again after each change (an instance arriving,
 * reporting, leaving or going silent past its presence TTL), reading them once
 * per `intervalMs`: one batched read, no consumer. Ends when `signal` aborts.
 */
export async function* watchWorkers(
  nc: NatsConnection,
  workerType: string | undefined,
  signal: AbortSignal,
  intervalMs = 1_000,
): AsyncGenerator<WorkerInstance[]> {
  let last: string | undefined;
  while (!signal.aborted) {
    const instances = await readWorkers(nc, workerType);
    const seen = toJsonString(ListWorkersResponseSchema, create(ListWorkersResponseSchema, { workers: instances }));
    if (seen !== last) {
      last = seen;
      yield instances;
    }
    await sleep(intervalMs, undefined, { signal }).catch(() => undefined);
  }
}

/** Presences by key, merged into instances by worker id. */
class Fleet {
  private readonly byKey = new Map<string, { data: Uint8Array; atMs: number }>();

  record(key: string, data: Uint8Array, atMs: number): void {
    if (data.length === 0) this.byKey.delete(key);
    else this.byKey.set(key, { data, atMs });
  }

  /** Per worker type, its keys heard from within the presence TTL: one per instance serving it. */
  liveByType(nowMs: number): Map<string, number> {
    const counts = new Map<string, number>();
    for (const [key, { atMs }] of this.byKey) {
      if (nowMs - atMs > presenceTtlMs) continue;
      const type = key.slice(0, key.indexOf("."));
      counts.set(type, (counts.get(type) ?? 0) + 1);
    }
    return counts;
  }

  /** The instances heard from within the presence TTL, by worker id. */
  instances(nowMs: number): WorkerInstance[] {
    const byId = new Map<string, { instance: WorkerInstance; atMs: number }>();
    for (const [key, { data, atMs }] of this.byKey) {
      if (nowMs - atMs > presenceTtlMs) continue;
      const instance = presenceOf(key, data);
      const known = byId.get(instance.workerId);
      if (!known || known.atMs < atMs) byId.set(instance.workerId, { instance, atMs });
    }
    return [...byId.values()]
      .map(({ instance, atMs }) => ({ ...instance, heartbeatAt: timestampFromMs(atMs) }))
      .sort((a, b) => a.workerId.localeCompare(b.workerId));
  }
}

/**
 * A presence's instance. A worker writes its whole instance, every type it
 * serves, under each of its types' keys (the freshest wins); one of an older
 * worker holds only its id, and the key says its type.
 */
function presenceOf(key: string, data: Uint8Array): WorkerInstance {
  const dot = key.indexOf(".");
  const [workerType, workerId] = [key.slice(0, dot), key.slice(dot + 1)];
  try {
    const instance = fromBinary(WorkerInstanceSchema, data);
    if (instance.workerId === workerId) return instance;
  } catch {
    // An older worker's presence: its id as text.
  }
  return create(WorkerInstanceSchema, { workerId, types: [{ workerType }] });
}

/** What {@link readThroughput} read: the points, and where to read on from. */
export interface ThroughputRead {
  /** Every worker's counts of a step summed into one point, oldest first. */
  readonly points: ThroughputPoint[];
  /** The last message read (or `after`, with none): pass as `after` for what came since. */
  readonly lastSeq: number;
}

/**
 * The throughput of a worker type: reported at or after `from.sinceMs`, or
 * stored after sequence `from.after`. Nothing when no worker reported (or none
 * ever created the stream).
 */
export async function readThroughput(
  nc: NatsConnection,
  workerType: string,
  from: { readonly sinceMs: number } | { readonly after: number },
): Promise<ThroughputRead> {
  const subject = topology.throughputSubject(workerType);
  const byStart = new Map<number, ThroughputPoint>();
  const batch = 1_000;
  let lastSeq = "after" in from ? from.after : 0;
  let query: Parameters<typeof directGetBatch>[2] =
    "after" in from
      ? { seq: from.after + 1, batch, next_by_subj: subject }
      : { start_time: new Date(from.sinceMs).toISOString(), batch, next_by_subj: subject };
  for (;;) {
    let found: BatchedMessage[];
    try {
      found = await directGetBatch(nc, topology.throughputStream, query);
    } catch (error) {
      if (isNoSuchStream(error)) return { points: [], lastSeq };
      throw error;
    }
    for (const message of found) addPoint(byStart, fromBinary(ThroughputPointSchema, message.data));
    const last = found.at(-1);
    if (!last) break;
    lastSeq = last.seq;
    if (found.length < batch) break;
    query = { seq: last.seq + 1, batch, next_by_subj: subject };
  }
  return { points: [...byStart.entries()].sort(([a], [b]) => a - b).map(([, point]) => point), lastSeq };
}

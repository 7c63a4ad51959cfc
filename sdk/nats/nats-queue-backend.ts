import { setTimeout as sleep } from "node:timers/promises";
import { create, fromBinary, toBinary, toJsonString } from "@bufbuild/protobuf";
import { type Duration, durationFromMs, timestampFromDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { JetStreamApiError, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { headers, millis, type NatsConnection } from "@nats-io/transport-node";
import {
  type DeadLetter,
  DeadLetterSchema,
  type GetStoreResponse,
  GetStoreResponseSchema,
  type ListDeadLettersResponse,
  ListDeadLettersResponseSchema,
  ListQueuesResponseSchema,
  type QueueInfo,
  QueueInfoSchema,
  type QueueSnapshot,
  QueueSnapshotSchema,
  type ThroughputPoint,
} from "../../gen/taskwire/v1/queue_service_pb.ts";
import { TaskState, type TaskStatus, WorkItemSchema } from "../../gen/taskwire/v1/task_pb.ts";
import type { WorkerInstance } from "../../gen/taskwire/v1/worker_service_pb.ts";
import type { QueueBackend, TaskBackend } from "../core/index.ts";
import {
  checkWorkerType,
  stateName,
  TaskError,
  taskIdToken,
  taskSubjectOf,
  throughputStepMs,
  topology,
  workerTypeOf,
} from "../core/index.ts";
import { jetStreamOptionsOf } from "./connection-settings.ts";
import { liveWorkerCounts, readThroughput, readWorkers, watchWorkers } from "./fleet.ts";
import { directGet, directGetBatch, type StoredMessage } from "./jetstream-ops.ts";
import { fromNatsError } from "./nats-error.ts";
import { publishWorkItem } from "./publish-work-item.ts";
import { RequestPipeline } from "./request-pipeline.ts";
import { bucketOf, readStatus, type StatusBucket, writeStatus } from "./status-store.ts";

/** Options of {@link createNatsQueueBackend}. */
export interface NatsQueueBackendOptions {
  /** The connection the worker types were provisioned on. */
  nc: NatsConnection;
  /** Cancels the tasks a purge finds: usually the gateway's or client's own backend. */
  tasks: TaskBackend;
}

const tasksPrefix = topology.streamName("");
const hourMs = 3_600_000;
const dayMs = 24 * hourMs;
/** How often WatchQueues reads the queues. */
const queuesIntervalMs = 2_000;

/** A pause "until resumed" is a pause of a century: JetStream pauses always have an end. */
const pauseForeverMs = 100 * 365 * 24 * 3600 * 1000;

/**
 * QueueService over NATS JetStream. Works on worker types already provisioned
 * (by a gateway, client or worker); an unknown one is NOT_FOUND.
 */
export async function createNatsQueueBackend(options: NatsQueueBackendOptions): Promise<QueueBackend> {
  const { nc, tasks } = options;
  const jsm = await jetstreamManager(nc, jetStreamOptionsOf(nc));
  const kv = await new Kvm(jetstream(nc, jetStreamOptionsOf(nc))).open(topology.statusBucket);
  return new NatsQueueBackend(nc, jsm, bucketOf(kv, new RequestPipeline(nc)), tasks);
}

class NatsQueueBackend implements QueueBackend {
  private readonly nc: NatsConnection;
  private readonly jsm: JetStreamManager;
  private readonly bucket: StatusBucket;
  private readonly tasks: TaskBackend;
  constructor(nc: NatsConnection, jsm: JetStreamManager, bucket: StatusBucket, tasks: TaskBackend) {
    this.nc = nc;
    this.jsm = jsm;
    this.bucket = bucket;
    this.tasks = tasks;
  }

  getQueue(workerType: string): Promise<QueueInfo> {
    return this.queueOf(workerType, () => readWorkers(this.nc, workerType).then((live) => live.length));
  }

  /** A type's queue, with its live workers counted by `liveWorkers` (one read for a listing of every type). */
  private async queueOf(workerType: string, liveWorkers: () => Promise<number>): Promise<QueueInfo> {
    return this.nats(workerType, `reading the ${workerType} queue`, async () => {
      const stream = await this.jsm.streams.info(topology.streamName(workerType));
      let running = 0;
      let pausedUntil: Date | undefined;
      let oldestUs = Number.POSITIVE_INFINITY;
      for (const priority of topology.priorities) {
        const consumer = await this.jsm.consumers.info(
          topology.streamName(workerType),
          topology.consumerName(workerType, priority),
        );
        running += consumer.num_ack_pending;
        if (consumer.paused && consumer.config.pause_until) pausedUntil = new Date(consumer.config.pause_until);
        // The first task of the priority the consumer has not delivered yet.
        const [next] = await directGetBatch(this.nc, topology.streamName(workerType), {
          seq: consumer.delivered.stream_seq + 1,
          batch: 1,
          next_by_subj: consumer.config.filter_subject ?? topology.streamSubjects(workerType),
        });
        if (next) oldestUs = Math.min(oldestUs, next.storedAtUs);
      }
      const workers = await liveWorkers();
      const dead = await this.jsm.streams.info(topology.deadLetterStream(workerType));
      const scheduled = await this.jsm.streams.info(topology.schedulerStream(workerType));
      // Tasks with a fairness key wait for their turn before the queue: queued all the same.
      const held = await this.jsm.streams.info(topology.fairStream(workerType)).catch(() => undefined);
      // A type only ever worked on (no process that submits has started) has no index yet.
      const index = await this.jsm.streams.info(topology.indexStream(workerType)).catch(() => undefined);
      const forever = pausedUntil !== undefined && pausedUntil.getTime() - Date.now() > pauseForeverMs / 2;
      return create(QueueInfoSchema, {
        workerType,
        queued: BigInt(Math.max(0, stream.state.messages - running) + (held?.state.messages ?? 0)),
        running: BigInt(running),
        deadLetters: BigInt(dead.state.messages),
        paused: pausedUntil !== undefined,
        pausedUntil: pausedUntil && !forever ? timestampFromDate(pausedUntil) : undefined,
        maxQueued: BigInt(Math.max(0, stream.config.max_msgs)),
        scheduled: BigInt(scheduled.state.messages),
        oldestQueuedAt: Number.isFinite(oldestUs) ? timestampFromMs(Math.floor(oldestUs / 1000)) : undefined,
        workers,
        storage: {
          queuedBytes: BigInt(stream.state.bytes),
          scheduledBytes: BigInt(scheduled.state.bytes),
          deadLetterBytes: BigInt(dead.state.bytes),
          indexBytes: BigInt(index?.state.bytes ?? 0),
          deadLetterTtl: durationOfNanos(dead.config.max_age),
          indexTtl: index && durationOfNanos(index.config.max_age),
          replicas: stream.config.num_replicas,
        },
      });
    });
  }

  async pauseQueue(workerType: string, until?: Date): Promise<QueueInfo> {
    if (until && until.getTime() <= Date.now()) {
      throw new TaskError(`pause until ${until.toISOString()}: that time has passed`, Code.InvalidArgument);
    }
    const end = until ?? new Date(Date.now() + pauseForeverMs);
    await this.nats(workerType, `pausing the ${workerType} queue`, async () => {
      for (const priority of topology.priorities) {
        await this.jsm.consumers.pause(
          topology.streamName(workerType),
          topology.consumerName(workerType, priority),
          end,
        );
      }
    });
    // Tasks workers pulled before the pause wait (kept alive) instead of starting, until it ends.
    this.nc.publish(topology.controlSubject(workerType), `paused ${end.toISOString()}`);
    return this.getQueue(workerType);
  }

  async resumeQueue(workerType: string): Promise<QueueInfo> {
    await this.nats(workerType, `resuming the ${workerType} queue`, async () => {
      for (const priority of topology.priorities) {
        await this.jsm.consumers.resume(topology.streamName(workerType), topology.consumerName(workerType, priority));
      }
    });
    // Pull requests made while paused stay unserved until they expire: workers pull anew.
    this.nc.publish(topology.controlSubject(workerType), "resumed");
    return this.getQueue(workerType);
  }

  async purgeQueue(workerType: string, reason = ""): Promise<number> {
    const doing = `purging the ${workerType} queue`;
    const cancelled = new Set<string>();
    // Delayed tasks (and broadcast deadlines) first, then parents waiting for their
    // children, then tasks waiting for their key's turn, then the queue: a task that
    // moves on meanwhile is found further on. (SCHED_<type> holds schedules' armed
    // times and debounce marks too, which are no tasks.)
    const scheduler = topology.schedulerStream(workerType);
    for (const [stream, subjects] of [
      [scheduler, topology.waitingSubject(workerType, "*")],
      [scheduler, topology.dueSubject(workerType, "*")],
      [scheduler, topology.parkedSubject(workerType, "*")],
      [topology.fairStream(workerType), topology.fairSubject(workerType, "*")],
      [topology.streamName(workerType), topology.streamSubjects(workerType)],
    ] as const) {
      // Only what was there when the purge began: later submits stay. (A type made before fairness keys has no FAIR stream.)
      const info =
        stream === topology.fairStream(workerType)
          ? await this.jsm.streams.info(stream).catch(() => undefined)
          : await this.nats(workerType, doing, () => this.jsm.streams.info(stream));
      if (!info) continue;
      const last = info.state.last_seq;
      for (let from = 0; ; ) {
        const message = await this.nats(workerType, doing, () =>
          directGet(this.bucket.requests, stream, { nextBySubject: subjects, from }),
        );
        if (!message || message.seq > last) break;
        from = message.seq + 1;
        const { taskId } = fromBinary(WorkItemSchema, message.data);
        if (cancelled.has(taskId)) continue;
        const status = await this.tasks.cancelTask(taskId, reason || "purged with its queue");
        if (status.state === TaskState.CANCELLED) cancelled.add(taskId);
      }
    }
    return cancelled.size;
  }

  async listDeadLetters(
    workerType: string,
    page: { pageSize?: number; pageToken?: string } = {},
  ): Promise<ListDeadLettersResponse> {
    const pageSize = page.pageSize || 100;
    if (pageSize < 1 || pageSize > 1000) {
      throw new TaskError(`page_size must be between 1 and 1000, got ${pageSize}`, Code.InvalidArgument);
    }
    let from = 0;
    if (page.pageToken) {
      from = Number(page.pageToken);
      if (!Number.isSafeInteger(from) || from < 0) {
        throw new TaskError(`page_token "${page.pageToken}" is not one this service returned`, Code.InvalidArgument);
      }
    }
    await this.ensureType(workerType);
    const deadLetters: DeadLetter[] = [];
    const stream = topology.deadLetterStream(workerType);
    while (deadLetters.length < pageSize) {
      const message = await this.nats(workerType, `listing ${workerType} dead letters`, () =>
        directGet(this.bucket.requests, stream, { nextBySubject: topology.deadLetterSubject(workerType, "*"), from }),
      );
      if (!message) return create(ListDeadLettersResponseSchema, { deadLetters });
      deadLetters.push(fromBinary(DeadLetterSchema, message.data));
      from = message.seq + 1;
    }
    return create(ListDeadLettersResponseSchema, { deadLetters, nextPageToken: String(from) });
  }

  async getDeadLetter(taskId: string): Promise<DeadLetter> {
    return fromBinary(DeadLetterSchema, (await this.findDeadLetter(taskId)).data);
  }

  async retryDeadLetter(taskId: string): Promise<TaskStatus> {
    const workerType = workerTypeOf(taskId);
    const found = await this.findDeadLetter(taskId);
    const letter = fromBinary(DeadLetterSchema, found.data);
    const { workItem } = letter;
    if (!workItem) throw new TaskError(`the dead letter of ${taskId} holds no WorkItem`, Code.DataLoss, { taskId });
    const retrying = `retrying dead letter ${taskId}`;
    const current = await readStatus(this.bucket, taskId).catch((e) => Promise.reject(fromNatsError(e, retrying)));
    if (current && current.status.state !== TaskState.FAILED) {
      throw new TaskError(
        `${retrying}: the task is ${stateName(current.status.state)}, not FAILED`,
        Code.FailedPrecondition,
        { taskId },
      );
    }
    // The record may have expired: the letter keeps the FAILED status too.
    const failed = current?.status ?? letter.status;
    if (!failed) throw new TaskError(`the dead letter of ${taskId} holds no status`, Code.DataLoss, { taskId });
    // First make the record non-terminal, or the worker would take the task for
    // one already finished; then queue it; then drop the letter.
    const next: TaskStatus = {
      ...failed,
      state: TaskState.PENDING,
      attempt: 0,
      errorHistory: failed.error ? [...failed.errorHistory, failed.error] : failed.errorHistory,
      error: undefined,
      result: undefined,
      startedAt: undefined,
      finishedAt: undefined,
      progress: undefined,
      workerId: "",
      // Published again, the task is a new message: no delivery of the old one has it.
      deliverySequence: 0n,
      deliveryCount: 0,
    };
    const written = await writeStatus(this.bucket, next, current?.revision ?? 0).catch((e) =>
      Promise.reject(fromNatsError(e, retrying)),
    );
    if (written === undefined) {
      throw new TaskError(`${retrying}: its status changed meanwhile; try again`, Code.Aborted, { taskId });
    }
    workItem.attempt = 1;
    const id = headers();
    // A fresh message id: the task's own id may still be in the duplicate window.
    id.set("Nats-Msg-Id", `${taskId}/retry/${found.seq}`);
    try {
      await publishWorkItem(
        this.bucket.requests,
        taskSubjectOf(workItem),
        toBinary(WorkItemSchema, workItem),
        id,
        workItem,
      );
    } catch (error) {
      // Not queued: put the FAILED record back, so the letter and the status agree.
      await writeStatus(this.bucket, failed, written.revision).catch(() => undefined);
      throw fromNatsError(error, retrying);
    }
    await this.jsm.streams.deleteMessage(topology.deadLetterStream(workerType), found.seq, false).catch(() => false);
    return next;
  }

  async purgeDeadLetters(workerType: string, taskIds: string[] = []): Promise<number> {
    const stream = topology.deadLetterStream(workerType);
    return this.nats(workerType, `purging ${workerType} dead letters`, async () => {
      if (taskIds.length === 0) return (await this.jsm.streams.purge(stream)).purged;
      let purged = 0;
      for (const taskId of taskIds) {
        if (workerTypeOf(taskId) !== workerType) {
          throw new TaskError(`task ${taskId} is not of worker type ${workerType}`, Code.InvalidArgument);
        }
        const filter = topology.deadLetterSubject(workerType, taskIdToken(taskId));
        purged += (await this.jsm.streams.purge(stream, { filter })).purged;
      }
      return purged;
    });
  }

  private async findDeadLetter(taskId: string): Promise<StoredMessage> {
    const workerType = workerTypeOf(taskId);
    await this.ensureType(workerType);
    const found = await this.nats(workerType, `reading the dead letter of ${taskId}`, () =>
      directGet(this.bucket.requests, topology.deadLetterStream(workerType), {
        lastBySubject: topology.deadLetterSubject(workerType, taskIdToken(taskId)),
      }),
    );
    if (!found) throw new TaskError(`task ${taskId} has no dead letter`, Code.NotFound, { taskId });
    return found;
  }

  /** NOT_FOUND unless the worker type's streams exist: direct gets on a missing stream get no answer at all. */
  private async ensureType(workerType: string): Promise<void> {
    await this.nats(workerType, `reading the ${workerType} queue`, () =>
      this.jsm.streams.info(topology.deadLetterStream(workerType)),
    );
  }

  async listQueues(): Promise<QueueInfo[]> {
    const types: string[] = [];
    try {
      for await (const name of this.jsm.streams.names()) {
        const type = name.startsWith(tasksPrefix) ? name.slice(tasksPrefix.length) : "";
        if (type) types.push(type);
      }
    } catch (error) {
      throw fromNatsError(error, "listing the worker types");
    }
    // Every type's live workers from one read of the presence bucket.
    let counts: Promise<Map<string, number>> | undefined;
    const liveWorkers = (type: string) => async () => {
      counts ??= liveWorkerCounts(this.nc);
      return (await counts).get(type) ?? 0;
    };
    const queues = await Promise.all(
      types.map((type) =>
        // A type deleted between the listing and the read is no longer a queue.
        this.queueOf(type, liveWorkers(type)).catch((error) => {
          if (error instanceof TaskError && error.code === Code.NotFound) return undefined;
          throw error;
        }),
      ),
    );
    return queues.filter((q) => q !== undefined).sort((a, b) => a.workerType.localeCompare(b.workerType));
  }

  async *watchQueues(signal = new AbortController().signal): AsyncGenerator<QueueSnapshot[]> {
    const after = new Map<string, number>();
    let last = "";
    while (!signal.aborted) {
      const queues = await this.listQueues();
      const snapshots: QueueSnapshot[] = [];
      for (const queue of queues) {
        const seen = after.get(queue.workerType);
        const read = await readThroughput(
          this.nc,
          queue.workerType,
          seen === undefined ? { sinceMs: Date.now() - hourMs } : { after: seen },
        ).catch((error) => Promise.reject(fromNatsError(error, `reading the ${queue.workerType} throughput`)));
        // Nothing reported in the last hour: read from an hour ago again next time, not the whole day.
        if (read.lastSeq > 0) after.set(queue.workerType, read.lastSeq);
        snapshots.push(create(QueueSnapshotSchema, { queue, throughput: read.points }));
      }
      const state = toJsonString(ListQueuesResponseSchema, create(ListQueuesResponseSchema, { queues }));
      if (state !== last || snapshots.some((s) => s.throughput.length > 0)) {
        last = state;
        yield snapshots;
      }
      await sleep(queuesIntervalMs, undefined, { signal }).catch(() => undefined);
    }
  }

  async getThroughput(workerType: string, since = new Date(Date.now() - hourMs)): Promise<ThroughputPoint[]> {
    if (Date.now() - since.getTime() > dayMs) {
      throw new TaskError(
        `since ${since.toISOString()} is more than a day ago: throughput is kept a day`,
        Code.InvalidArgument,
      );
    }
    await this.ensureType(workerType);
    const doing = `reading the ${workerType} throughput`;
    return this.nats(workerType, doing, async () => {
      const { points } = await readThroughput(this.nc, workerType, { sinceMs: since.getTime() });
      // The step a point starts in: one starting before `since` ends after it.
      return points.filter((p) => Number(p.start?.seconds ?? 0) * 1000 + throughputStepMs > since.getTime());
    });
  }

  async listWorkers(workerType?: string): Promise<WorkerInstance[]> {
    if (workerType) checkWorkerType(workerType);
    try {
      return await readWorkers(this.nc, workerType);
    } catch (error) {
      throw fromNatsError(error, "reading the live workers");
    }
  }

  async *watchWorkers(workerType?: string, signal = new AbortController().signal): AsyncGenerator<WorkerInstance[]> {
    if (workerType) checkWorkerType(workerType);
    try {
      yield* watchWorkers(this.nc, workerType, signal);
    } catch (error) {
      throw fromNatsError(error, "watching the live workers");
    }
  }

  /** Runs a NATS operation on a worker type's streams: a missing stream is an unknown type. */
  async getStore(): Promise<GetStoreResponse> {
    try {
      const { state, config } = await this.jsm.streams.info(topology.statusStream);
      return create(GetStoreResponseSchema, {
        statuses: BigInt(state.messages),
        bytes: BigInt(state.bytes),
        statusTtl: durationOfNanos(config.max_age),
        replicas: config.num_replicas,
        storage: config.storage,
      });
    } catch (error) {
      throw fromNatsError(error, "reading the status store");
    }
  }

  private async nats<T>(workerType: string, doing: string, operation: () => Promise<T>): Promise<T> {
    if (!workerType) throw new TaskError(`${doing}: worker_type is required`, Code.InvalidArgument);
    checkWorkerType(workerType);
    try {
      return await operation();
    } catch (error) {
      if (error instanceof TaskError) throw error;
      if (error instanceof JetStreamApiError && error.code === 10059) {
        throw new TaskError(`unknown worker type "${workerType}"`, Code.NotFound);
      }
      throw fromNatsError(error, doing);
    }
  }
}

/** A stream's max_age as a Duration; undefined for 0 (kept until removed). */
function durationOfNanos(nanos: number): Duration | undefined {
  return nanos > 0 ? durationFromMs(millis(nanos)) : undefined;
}

import { Code } from "@connectrpc/connect";
import {
  AckPolicy,
  type ConsumerConfig,
  DiscardPolicy,
  JetStreamApiError,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { type NatsConnection, nanos } from "@nats-io/transport-node";
import type { TaskServiceDefinition } from "../core/index.ts";
import { routeLength, TaskError, topology } from "../core/index.ts";
import { jetStreamOptionsOf } from "./connection-settings.ts";

/** Where and how durably the broker stores tasks. */
export interface StorageOptions {
  /** "file" survives a restart; "memory" is faster and loses everything on restart. @default "file" */
  storage?: "file" | "memory";
  /** Copies kept in a cluster (1, 3 or 5). @default 1 */
  replicas?: number;
}

/** Options of a worker type's stream and consumers. */
export interface WorkerTypeTopologyOptions extends StorageOptions {
  /** How long a worker may hold a task without acking or heartbeating before it is redelivered. @default 30000 */
  ackWaitMs?: number;
  /** Queued tasks at most; a submit past it fails with RESOURCE_EXHAUSTED. -1: unbounded. @default the type's `max_queued` option, else -1 */
  maxQueueLength?: number;
  /** Window in which a republished task id is recognised as a duplicate. @default 120000 */
  duplicateWindowMs?: number;
  /** Largest WorkItem accepted, in bytes. -1: the server's limit. @default -1 */
  maxMessageBytes?: number;
  /** How long a dead letter is kept. 0: until purged. @default 7 days */
  deadLetterTtlMs?: number;
}

/** Options of the shared buckets. */
export interface StatusTopologyOptions extends StorageOptions {
  /** How long a task's status is kept after its last change. 0: forever. @default 7 days */
  statusTtlMs?: number;
}

const defaultStatusTtlMs = 7 * 24 * 3600 * 1000;

/** The lowest nats-server version Taskwire runs on (direct get, consumer pause, message schedules). */
export const minimumServerVersion = "2.12.0";

/**
 * Fails with FAILED_PRECONDITION when the connected server is older than
 * {@link minimumServerVersion} or has no JetStream.
 */
export function checkServerVersion(nc: NatsConnection): void {
  const info = nc.info;
  if (!info) throw new TaskError("not connected to NATS", Code.Unavailable);
  if (compareVersions(info.version, minimumServerVersion) < 0) {
    throw new TaskError(
      `nats-server ${info.version} is too old: Taskwire needs ${minimumServerVersion} or newer`,
      Code.FailedPrecondition,
    );
  }
  if (!info.jetstream) {
    throw new TaskError(
      `nats-server ${info.version} at ${nc.getServer()} has JetStream disabled: start it with -js`,
      Code.FailedPrecondition,
    );
  }
}

/**
 * Creates or updates the stream and the per-priority consumers of a worker
 * type. Idempotent: every gateway and worker calls it at start-up.
 */
export async function provisionWorkerType(
  jsm: JetStreamManager,
  definition: Pick<TaskServiceDefinition, "workerType" | "maxQueued" | "storage">,
  options: WorkerTypeTopologyOptions = {},
): Promise<void> {
  const { workerType } = definition;
  const stream: Partial<StreamConfig> & { name: string } = {
    name: topology.streamName(workerType),
    subjects: [topology.streamSubjects(workerType)],
    retention: RetentionPolicy.Workqueue,
    storage: (options.storage ?? definition.storage) === "memory" ? StorageType.Memory : StorageType.File,
    num_replicas: options.replicas ?? 1,
    discard: DiscardPolicy.New,
    // One message per subject, and each task has its own subject: a task id can
    // never be queued twice, whatever the duplicate window.
    max_msgs_per_subject: 1,
    discard_new_per_subject: true,
    max_msgs: options.maxQueueLength ?? (definition.maxQueued || -1),
    max_msg_size: options.maxMessageBytes ?? -1,
    duplicate_window: nanos(options.duplicateWindowMs ?? 120_000),
    allow_direct: true,
  };
  await addOrUpdateStream(jsm, stream);
  await addOrUpdateStream(jsm, {
    name: topology.deadLetterStream(workerType),
    subjects: [topology.deadLetterSubject(workerType, "*")],
    retention: RetentionPolicy.Limits,
    storage: stream.storage,
    num_replicas: stream.num_replicas,
    // A task fails for good once per retry of its dead letter: its latest letter replaces any older one.
    max_msgs_per_subject: 1,
    max_age: nanos(options.deadLetterTtlMs ?? 7 * 24 * 3600 * 1000),
    allow_direct: true,
  });
  await addOrUpdateStream(jsm, {
    name: topology.schedulerStream(workerType),
    subjects: [topology.schedulerSubjects(workerType)],
    retention: RetentionPolicy.Workqueue,
    storage: stream.storage,
    num_replicas: stream.num_replicas,
    // The server turns each waiting message into a due one at its time (ADR-51).
    allow_msg_schedules: true,
    duplicate_window: stream.duplicate_window,
    allow_direct: true,
  } as Partial<StreamConfig> & { name: string });
  await addOrUpdateStream(jsm, {
    name: topology.limitStream(workerType),
    subjects: [`taskwire.limit.${workerType}.>`],
    retention: RetentionPolicy.Limits,
    storage: stream.storage,
    num_replicas: stream.num_replicas,
    // A lease is taken only where none is held (expected last subject sequence 0),
    // and lapses by itself when its holder stops renewing it.
    max_msgs_per_subject: 1,
    allow_msg_ttl: true,
    allow_direct: true,
  } as Partial<StreamConfig> & { name: string });
  await addOrUpdateStream(jsm, {
    name: topology.broadcastStream(workerType),
    subjects: [`taskwire.bcast.${workerType}.>`],
    retention: RetentionPolicy.Workqueue,
    storage: stream.storage,
    num_replicas: stream.num_replicas,
    duplicate_window: stream.duplicate_window,
    allow_direct: true,
  });
  await addOrUpdateConsumer(jsm, topology.schedulerStream(workerType), {
    durable_name: topology.dueConsumerName(workerType),
    filter_subject: topology.dueSubject(workerType, "*"),
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(30_000),
    max_deliver: -1,
  });
  for (const priority of topology.priorities) {
    const consumer: Partial<ConsumerConfig> = {
      durable_name: topology.consumerName(workerType, priority),
      filter_subject: topology.consumerFilter(workerType, priority),
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(options.ackWaitMs ?? 30_000),
      // Attempts are counted by the runtime against the task's retry policy.
      max_deliver: -1,
      max_ack_pending: 10_000,
    };
    await addOrUpdateConsumer(jsm, stream.name, consumer);
  }
}

/**
 * Creates or updates a worker type's task index (task-index.ts), kept as long
 * as task statuses are. Idempotent: every process that submits calls it at start-up.
 */
export async function provisionTaskIndex(
  jsm: JetStreamManager,
  definition: Pick<TaskServiceDefinition, "workerType" | "storage">,
  options: StatusTopologyOptions = {},
): Promise<void> {
  const ttlMs = options.statusTtlMs ?? defaultStatusTtlMs;
  await addOrUpdateStream(jsm, {
    name: topology.indexStream(definition.workerType),
    subjects: [topology.indexSubject(definition.workerType)],
    retention: RetentionPolicy.Limits,
    storage: (options.storage ?? definition.storage) === "memory" ? StorageType.Memory : StorageType.File,
    num_replicas: options.replicas ?? 1,
    max_age: ttlMs === 0 ? 0 : nanos(ttlMs),
    allow_direct: true,
  });
}

/** Creates (or updates) the consumer of one endpoint's broadcast copies: its worker calls it at start. */
export async function provisionEndpointConsumer(
  jsm: JetStreamManager,
  workerType: string,
  endpoint: string,
  ackWaitMs: number,
): Promise<void> {
  await addOrUpdateConsumer(jsm, topology.broadcastStream(workerType), {
    durable_name: topology.endpointConsumerName(workerType, endpoint),
    filter_subject: topology.broadcastSubject(workerType, endpoint, "*"),
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(ackWaitMs),
    max_deliver: -1,
  });
}

/**
 * Runs `provision` again after every reconnect: a restarted server has lost
 * its memory streams, definitions included, and the types stored there would
 * refuse every task until provisioned anew.
 */
export function keepProvisioned(
  nc: NatsConnection,
  provision: () => Promise<unknown>,
  onError: (error: unknown) => void,
): void {
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === "reconnect") await provision().catch(onError);
    }
  })();
}

/**
 * The server republishes each write to the status bucket, once stored, on
 * {@link topology.statusEventSubject}: the key `<type>.<ulid>` becomes
 * `taskwire.status.<last 8 of the ulid>.<type>.<ulid>`.
 */
const statusRepublish = {
  src: `$KV.${topology.statusBucket}.*.*`,
  dest: `taskwire.status.{{Right(2,${routeLength})}}.{{wildcard(1)}}.{{wildcard(2)}}`,
};

/**
 * Creates or opens the task status bucket, and gives a bucket made before its
 * status events existed their republish. Idempotent.
 */
export async function provisionStatusBucket(nc: NatsConnection, options: StatusTopologyOptions = {}): Promise<KV> {
  const kv = await new Kvm(jetstream(nc, jetStreamOptionsOf(nc))).create(topology.statusBucket, {
    history: 1,
    storage: options.storage === "memory" ? StorageType.Memory : StorageType.File,
    replicas: options.replicas ?? 1,
    ttl: options.statusTtlMs ?? defaultStatusTtlMs,
    republish: statusRepublish,
  });
  const { config } = (await kv.status()).streamInfo;
  if (config.republish?.src !== statusRepublish.src || config.republish.dest !== statusRepublish.dest) {
    const jsm = await jetstreamManager(nc, jetStreamOptionsOf(nc));
    await jsm.streams.update(topology.statusStream, { ...config, republish: statusRepublish });
  }
  return kv;
}

async function addOrUpdateStream(jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }) {
  try {
    await jsm.streams.add(config);
  } catch (error) {
    if (!isAlreadyInUse(error)) throw error;
    await jsm.streams.update(config.name, config);
  }
}

async function addOrUpdateConsumer(jsm: JetStreamManager, stream: string, config: Partial<ConsumerConfig>) {
  try {
    await jsm.consumers.add(stream, config);
  } catch (error) {
    if (!isAlreadyInUse(error) || !config.durable_name) throw error;
    // A paused queue stays paused when a worker or gateway starts.
    const current = await jsm.consumers.info(stream, config.durable_name);
    await jsm.consumers.update(stream, config.durable_name, {
      ...config,
      pause_until: current.config.pause_until,
    } as Partial<ConsumerConfig>);
  }
}

// JetStream answers "already in use" (10058 stream, 10148 consumer) when the name
// exists with another configuration; then the update below applies ours.
function isAlreadyInUse(error: unknown): boolean {
  return error instanceof JetStreamApiError && (error.code === 10058 || error.code === 10148);
}

function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((p) => Number.parseInt(p, 10) || 0);
  const pb = b.split(/[.-]/).map((p) => Number.parseInt(p, 10) || 0);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import {
  AckPolicy,
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
import { errors, millis, type NatsConnection, nanos } from "@nats-io/transport-node";
import type { TaskServiceDefinition } from "../core/index.ts";
import { routeLength, TaskError, topology } from "../core/index.ts";
import { jetStreamOptionsOf } from "./connection-settings.ts";
import { ensureConsumer, ensureStream, keepAndWarn, type ProvisionContext, type StreamSpec } from "./ensure.ts";

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
  /** The largest result kept in a status record, in bytes: workers fail a task whose result is larger. @default 1000000 */
  maxResultBytes?: number;
}

/** The largest result kept when nothing says: a status record must fit in NATS' default 1 MiB max_payload. */
export const defaultMaxResultBytes = 1_000_000;

/** How long statuses, index entries and dead letters are kept when nothing says. */
const defaultTtlMs = 7 * 24 * 3600 * 1000;

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

/** A setting's value and whether it was asked for (not a default). */
interface Setting<T> {
  readonly value: T;
  readonly explicit: boolean;
}

function setting<T>(...candidates: (T | undefined)[]): (fallback: T) => Setting<T> {
  const given = candidates.find((c) => c !== undefined);
  return (fallback) => (given === undefined ? { value: fallback, explicit: false } : { value: given, explicit: true });
}

/** A stream's spec: the code's own configuration, and its settings. */
function streamSpec(
  structural: Partial<StreamConfig> & { name: string },
  settings: Partial<Record<keyof StreamConfig, Setting<unknown>>>,
): StreamSpec {
  const config: Record<string, unknown> = { ...structural };
  const explicit = new Set<keyof StreamConfig>();
  for (const [key, { value, explicit: asked }] of Object.entries(settings) as [
    keyof StreamConfig,
    Setting<unknown>,
  ][]) {
    config[key] = value;
    if (asked) explicit.add(key);
  }
  return {
    config: config as Partial<StreamConfig> & { name: string },
    settings: Object.keys(settings) as (keyof StreamConfig)[],
    explicit,
  };
}

/**
 * Copies kept of a stream or bucket: the deployment's setting, else the worker
 * type's, else those of the status bucket in place (what the deployment made
 * first), else 1. Only the first two are asked for: a process that says
 * nothing creates what is missing as the deployment did.
 */
async function replicasOf(
  jsm: JetStreamManager,
  options: StorageOptions,
  definition?: Pick<TaskServiceDefinition, "replicas">,
): Promise<Setting<number>> {
  const asked = options.replicas ?? (definition?.replicas || undefined);
  if (asked !== undefined) {
    checkReplicas(asked);
    return { value: asked, explicit: true };
  }
  const status = await jsm.streams.info(topology.statusStream).catch(() => undefined);
  return { value: status?.config.num_replicas || 1, explicit: false };
}

/** Refuses a replica count other than 1, 3 or 5, naming it. */
function checkReplicas(replicas: number): void {
  if (![1, 3, 5].includes(replicas)) {
    throw new TaskError(`replicas must be 1, 3 or 5, got ${replicas}`, Code.InvalidArgument);
  }
}

function storageOf(options: StorageOptions, definition?: Pick<TaskServiceDefinition, "storage">): Setting<StorageType> {
  const storage = setting(options.storage, definition?.storage)("file");
  return { value: storage.value === "memory" ? StorageType.Memory : StorageType.File, explicit: storage.explicit };
}

/**
 * Creates the streams and consumers of a worker type that are missing, and
 * brings those in place up to date with what the code relies on. Their settings
 * (replicas, ack_wait, limits, storage) are left as they are unless `context`
 * applies them (`taskwire migrate`): a process started with other values keeps
 * what exists, and says so for those it asked for explicitly. Every gateway and
 * worker calls it at start-up.
 */
export async function provisionWorkerType(
  jsm: JetStreamManager,
  definition: Pick<TaskServiceDefinition, "workerType" | "maxQueued" | "storage" | "replicas" | "retention">,
  options: WorkerTypeTopologyOptions = {},
  context: ProvisionContext = keepAndWarn,
): Promise<void> {
  const { workerType } = definition;
  const replicas = await replicasOf(jsm, options, definition);
  const storage = storageOf(options, definition);
  const duplicateWindow = setting(options.duplicateWindowMs)(120_000);
  const duplicate_window = { ...duplicateWindow, value: nanos(duplicateWindow.value) };
  const ensure = (
    structural: Partial<StreamConfig> & { name: string },
    settings: Partial<Record<keyof StreamConfig, Setting<unknown>>>,
  ) => ensureStream(jsm, streamSpec(structural, { num_replicas: replicas, storage, ...settings }), context);
  await ensure(
    {
      name: topology.streamName(workerType),
      subjects: [topology.streamSubjects(workerType)],
      retention: RetentionPolicy.Workqueue,
      discard: DiscardPolicy.New,
      // One message per subject, and each task has its own subject: a task id can
      // never be queued twice, whatever the duplicate window.
      max_msgs_per_subject: 1,
      discard_new_per_subject: true,
      allow_direct: true,
    },
    {
      max_msgs: setting(options.maxQueueLength, definition.maxQueued || undefined)(-1),
      max_msg_size: setting(options.maxMessageBytes)(-1),
      duplicate_window,
    },
  );
  // A type's own retention wins over the deployment's, which is the default of the types that say nothing.
  const deadLetterTtl = setting(definition.retention?.deadLetterTtlMs, options.deadLetterTtlMs)(defaultTtlMs);
  await ensure(
    {
      name: topology.deadLetterStream(workerType),
      subjects: [topology.deadLetterSubject(workerType, "*")],
      retention: RetentionPolicy.Limits,
      // A task fails for good once per retry of its dead letter: its latest letter replaces any older one.
      max_msgs_per_subject: 1,
      allow_direct: true,
    },
    { max_age: { ...deadLetterTtl, value: nanos(deadLetterTtl.value) } },
  );
  await ensure(
    {
      name: topology.schedulerStream(workerType),
      subjects: [topology.schedulerSubjects(workerType)],
      retention: RetentionPolicy.Workqueue,
      // The server turns each waiting message into a due one at its time (ADR-51).
      allow_msg_schedules: true,
      allow_direct: true,
    } as Partial<StreamConfig> & { name: string },
    { duplicate_window },
  );
  await ensure(
    {
      name: topology.fairStream(workerType),
      subjects: [topology.fairSubject(workerType, "*")],
      // A held task leaves when the dispatcher queues it (it deletes the message).
      retention: RetentionPolicy.Workqueue,
      allow_direct: true,
    },
    {
      max_msgs: setting(options.maxQueueLength, definition.maxQueued || undefined)(-1),
      max_msg_size: setting(options.maxMessageBytes)(-1),
      duplicate_window,
    },
  );
  await ensure(
    {
      name: topology.limitStream(workerType),
      subjects: [`taskwire.limit.${workerType}.>`],
      retention: RetentionPolicy.Limits,
      // A lease is taken only where none is held (expected last subject sequence 0),
      // and lapses by itself when its holder stops renewing it.
      max_msgs_per_subject: 1,
      allow_msg_ttl: true,
      allow_direct: true,
    } as Partial<StreamConfig> & { name: string },
    {},
  );
  await ensure(
    {
      name: topology.broadcastStream(workerType),
      subjects: [`taskwire.bcast.${workerType}.>`],
      retention: RetentionPolicy.Workqueue,
      allow_direct: true,
    },
    { duplicate_window },
  );
  await ensureConsumer(
    jsm,
    {
      stream: topology.schedulerStream(workerType),
      config: {
        durable_name: topology.dueConsumerName(workerType),
        filter_subject: topology.dueSubject(workerType, "*"),
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(30_000),
        max_deliver: -1,
      },
      settings: [],
      explicit: new Set(),
    },
    context,
  );
  await ensureConsumer(
    jsm,
    {
      stream: topology.schedulerStream(workerType),
      config: {
        durable_name: topology.tickConsumerName(workerType),
        filter_subject: topology.scheduleTickSubject(workerType, "*"),
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(30_000),
        max_deliver: -1,
      },
      settings: [],
      explicit: new Set(),
    },
    context,
  );
  const ackWait = setting(options.ackWaitMs)(30_000);
  for (const priority of topology.priorities) {
    await ensureConsumer(
      jsm,
      {
        stream: topology.streamName(workerType),
        config: {
          durable_name: topology.consumerName(workerType, priority),
          filter_subject: topology.consumerFilter(workerType, priority),
          ack_policy: AckPolicy.Explicit,
          ack_wait: nanos(ackWait.value),
          // Attempts are counted by the runtime against the task's retry policy.
          max_deliver: -1,
          max_ack_pending: 10_000,
        },
        settings: ["ack_wait"],
        explicit: new Set(ackWait.explicit ? ["ack_wait"] : []),
      },
      context,
    );
  }
}

/**
 * Creates a worker type's task index (task-index.ts), kept as long as the
 * type's task statuses are, as {@link provisionWorkerType} does its streams. Every process
 * that submits calls it at start-up.
 */
export async function provisionTaskIndex(
  jsm: JetStreamManager,
  definition: Pick<TaskServiceDefinition, "workerType" | "storage" | "replicas" | "retention">,
  options: StatusTopologyOptions = {},
  context: ProvisionContext = keepAndWarn,
): Promise<void> {
  const ttl = setting(definition.retention?.statusTtlMs, options.statusTtlMs)(defaultTtlMs);
  await ensureStream(
    jsm,
    streamSpec(
      {
        name: topology.indexStream(definition.workerType),
        subjects: topology.indexSubjects(definition.workerType),
        retention: RetentionPolicy.Limits,
        allow_direct: true,
      },
      {
        num_replicas: await replicasOf(jsm, options, definition),
        storage: storageOf(options, definition),
        max_age: { ...ttl, value: ttl.value === 0 ? 0 : nanos(ttl.value) },
      },
    ),
    context,
  );
  // Its tasks' children, counted as they end (ADR-49 counters), kept as long as the index.
  await ensureStream(
    jsm,
    streamSpec(
      {
        name: topology.childrenStream(definition.workerType),
        subjects: [topology.childrenSubjects(definition.workerType)],
        retention: RetentionPolicy.Limits,
        allow_msg_counter: true,
        allow_direct: true,
      } as Partial<StreamConfig> & { name: string },
      {
        num_replicas: await replicasOf(jsm, options, definition),
        storage: storageOf(options, definition),
        max_age: { ...ttl, value: ttl.value === 0 ? 0 : nanos(ttl.value) },
        // A repeat of a child's count comes within an ack wait; the window may not outlast the records.
        duplicate_window: { value: nanos(ttl.value === 0 ? 120_000 : Math.min(120_000, ttl.value)), explicit: false },
      },
    ),
    context,
  );
}

/** How long workers' throughput counts are kept: a day. */
export const throughputKeptMs = 24 * 3600 * 1000;

/**
 * Creates the stream of throughput counts (one per worker, type and 10-second
 * step, kept a day) as {@link provisionWorkerType} does its streams. Workers and
 * the gateway call it at start-up.
 */
export async function provisionThroughputStream(
  jsm: JetStreamManager,
  options: StorageOptions = {},
  context: ProvisionContext = keepAndWarn,
): Promise<void> {
  await ensureStream(
    jsm,
    streamSpec(
      {
        name: topology.throughputStream,
        subjects: [topology.throughputSubject(">")],
        retention: RetentionPolicy.Limits,
        max_age: nanos(throughputKeptMs),
        allow_direct: true,
      },
      { num_replicas: await replicasOf(jsm, options), storage: storageOf(options) },
    ),
    context,
  );
}

/** Creates (or updates) the consumer of one endpoint's broadcast copies: its worker calls it at start. */
export async function provisionEndpointConsumer(
  jsm: JetStreamManager,
  workerType: string,
  endpoint: string,
  ackWaitMs: number,
): Promise<void> {
  await ensureConsumer(
    jsm,
    {
      stream: topology.broadcastStream(workerType),
      config: {
        durable_name: topology.endpointConsumerName(workerType, endpoint),
        filter_subject: topology.broadcastSubject(workerType, endpoint, "*"),
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(ackWaitMs),
        max_deliver: -1,
      },
      settings: [],
      explicit: new Set(),
    },
    // Its own consumer: the worker's ack_wait is the one in place on the type's.
    { mode: "apply", report: () => {} },
  );
}

/**
 * Runs `provision` until it succeeds, again while JetStream does not answer yet:
 * a request timed out, nobody answered, or the server said it is temporarily
 * unavailable. A cluster just started, or electing a leader, answers late, and
 * creating a replicated stream on a loaded machine can take longer than one
 * request's timeout; every step of provisioning is idempotent. Any other
 * failure, or the last one after `withinMs`, is final.
 */
export async function provisionPatiently<T>(provision: () => Promise<T>, withinMs = 60_000): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await provision();
    } catch (error) {
      if (!answersLater(error) || Date.now() >= deadline) throw error;
      await sleep(Math.min(250 * attempt, 2_000));
    }
  }
}

/** A failure that JetStream, starting or electing a leader, ends by itself. */
function answersLater(error: unknown): boolean {
  if (error instanceof errors.TimeoutError || error instanceof errors.NoRespondersError) return true;
  return error instanceof JetStreamApiError && error.code === 10008;
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
      if (status.type === "reconnect") await provisionPatiently(provision).catch(onError);
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
 * Creates or opens the task status bucket, as {@link provisionBucket} does,
 * with the republish that makes its status events.
 */
export async function provisionStatusBucket(
  nc: NatsConnection,
  options: StatusTopologyOptions = {},
  context: ProvisionContext = keepAndWarn,
): Promise<KV> {
  return provisionBucket(
    nc,
    topology.statusBucket,
    { ttlMs: options.statusTtlMs, defaultTtlMs: defaultTtlMs, republish: statusRepublish },
    options,
    context,
  );
}

/**
 * Creates or opens a KV bucket of Taskwire's (one record per key), as
 * {@link provisionWorkerType} does its streams: replicas, storage and TTL are
 * settings; `republish` is what the code relies on.
 */
export async function provisionBucket(
  nc: NatsConnection,
  bucket: string,
  shape: {
    /** How long a record is kept after its last write; asked for when given. 0: forever. */
    readonly ttlMs: number | undefined;
    readonly defaultTtlMs: number;
    readonly republish?: { src: string; dest: string };
  },
  options: StorageOptions = {},
  context: ProvisionContext = keepAndWarn,
): Promise<KV> {
  const js = jetstream(nc, jetStreamOptionsOf(nc));
  const jsm = await jetstreamManager(nc, jetStreamOptionsOf(nc));
  const replicas = await replicasOf(jsm, options);
  const storage = storageOf(options);
  const ttlMs = setting(shape.ttlMs)(shape.defaultTtlMs);
  const kvm = new Kvm(js);
  await ensureStream(
    jsm,
    streamSpec(
      {
        name: `KV_${bucket}`,
        ...(shape.republish ? { republish: shape.republish } : {}),
      },
      {
        num_replicas: replicas,
        storage,
        max_age: { ...ttlMs, value: ttlMs.value === 0 ? 0 : nanos(ttlMs.value) },
      },
    ),
    context,
    (metadata) =>
      kvm.create(bucket, {
        metadata,
        history: 1,
        replicas: replicas.value,
        storage: storage.value,
        ttl: ttlMs.value,
        ...(shape.republish ? { republish: shape.republish } : {}),
      }),
  );
  return kvm.open(bucket);
}

/**
 * The `Nats-TTL` header value of each type whose `retention.status` is shorter
 * than the status bucket's TTL in place: its status writes carry it. A type
 * that asks for longer than the bucket keeps is warned of, as a setting kept.
 */
export async function statusTtls(
  jsm: JetStreamManager,
  definitions: readonly Pick<TaskServiceDefinition, "workerType" | "retention">[],
  context: ProvisionContext = keepAndWarn,
): Promise<Map<string, string>> {
  const ttls = new Map<string, string>();
  const asking = definitions.filter((d) => d.retention?.statusTtlMs !== undefined);
  if (asking.length === 0) return ttls;
  const { config } = await jsm.streams.info(topology.statusStream);
  const bucketMs = millis(config.max_age);
  for (const { workerType, retention } of asking) {
    const ttlMs = retention?.statusTtlMs as number;
    if (bucketMs === 0 || ttlMs < bucketMs) ttls.set(workerType, `${Math.max(1, Math.ceil(ttlMs / 1000))}s`);
    else if (ttlMs > bucketMs)
      context.report({
        resource: `bucket ${topology.statusBucket}`,
        setting: `retention.status (of worker type ${workerType})`,
        existing: `${bucketMs} ms`,
        asked: `${ttlMs} ms`,
        outcome: "kept",
      });
  }
  // Only a bucket whose records may be kept for less than it keeps them takes per-message TTLs.
  if (ttls.size > 0 && !(config as { allow_msg_ttl?: boolean }).allow_msg_ttl) {
    await jsm.streams.update(topology.statusStream, { ...config, allow_msg_ttl: true } as StreamConfig);
  }
  return ttls;
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

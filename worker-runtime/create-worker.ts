import { hostname } from "node:os";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import {
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { millis, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import type { TaskStatus } from "../gen/taskwire/v1/task_pb.ts";
import { WorkerInstanceSchema } from "../gen/taskwire/v1/worker_service_pb.ts";
import { createTaskRegistry, type TaskBackend, TaskError, topology, workerTypeOf } from "../sdk/core/index.ts";
import {
  bucketOf,
  checkServerVersion,
  createNatsTaskBackend,
  defaultMaxResultBytes,
  fromNatsError,
  jetStreamOptionsOf,
  keepProvisioned,
  openConnection,
  openWorkersBucket,
  presenceTtlMs,
  provisionEndpointConsumer,
  provisionPatiently,
  provisionStatusBucket,
  provisionThroughputStream,
  provisionWorkerType,
  RequestPipeline,
  type Scheduling,
  type StatusBucket,
  startScheduling,
  statusTtls,
  type TaskIndexWriter,
} from "../sdk/nats/index.ts";
import type { AttemptEnvironment } from "./attempt-environment.ts";
import { ChildTasks, learningRegistry } from "./child-tasks.ts";
import { giveBack } from "./give-back.ts";
import { type Housekeeping, startHousekeeping } from "./housekeeping.ts";
import { Leases } from "./leases.ts";
import { PrioritySlots } from "./priority-slots.ts";
import { resultPublisher } from "./result-events.ts";
import { runAttempt } from "./run-attempt.ts";
import type { TaskContextController } from "./task-context-controller.ts";
import { TaskFeed } from "./task-feed.ts";
import { ThroughputCounter } from "./throughput.ts";
import type { WorkerEvent } from "./worker-event.ts";
import {
  type ResolvedWorkerOptions,
  resolveWorkerOptions,
  type ServedType,
  type WorkerOptions,
} from "./worker-options.ts";

/** A worker's lifecycle state. */
export type WorkerState = "running" | "draining" | "closed";

/** A running worker. */
export interface Worker {
  /** The instance name recorded in task statuses. */
  readonly id: string;
  /** "running", then "draining" during close(), then "closed". */
  readonly state: WorkerState;
  /** Attempts running now. */
  readonly inFlight: number;
  /** The worker types it serves. */
  readonly workerTypes: readonly string[];
  /**
   * Stops fetching, lets running handlers finish within the grace period, then
   * aborts the rest (they are redelivered) and disconnects. Returns the same
   * promise every time.
   */
  close(): Promise<void>;
}

/**
 * Starts a worker: one fetch loop per priority of every worker type it serves,
 * bounded concurrency, typed handlers.
 *
 * ```ts
 * const worker = await createWorker({ nats: "nats://127.0.0.1:4222", services: [hasher] });
 * process.on("SIGTERM", () => worker.close());
 * ```
 */
export async function createWorker(options: WorkerOptions): Promise<Worker> {
  const resolved = resolveWorkerOptions(options);
  const { nc, owned } = await openConnection(resolved.nats, undefined, { onWaiting: resolved.onWaitingForNats });
  try {
    checkServerVersion(nc);
    // A cluster electing its leader answers late: waited for, as provisioning is.
    const jsm = await provisionPatiently(() => jetstreamManager(nc, jetStreamOptionsOf(nc)));
    const provision = async () => {
      for (const { definition } of resolved.types) await provisionWorkerType(jsm, definition, resolved.topology);
      await provisionThroughputStream(jsm, resolved.topology);
      return provisionStatusBucket(nc, resolved.topology);
    };
    const kv = await provisionPatiently(provision);
    const ttls = await statusTtls(
      jsm,
      resolved.types.map((t) => t.definition),
    );
    const worker = new TaskWorker(nc, owned, bucketOf(kv, new RequestPipeline(nc), ttls), resolved);
    await worker.start();
    keepProvisioned(nc, provision, (error) =>
      resolved.emit({ type: "error", error: fromNatsError(error, "provisioning after a reconnect") }),
    );
    return worker;
  } catch (error) {
    if (owned) await nc.close();
    throw fromNatsError(error, "starting the worker");
  }
}

/** A feed's source: a priority's shared consumer, or this instance's broadcast consumer. */
interface FeedSource {
  readonly rank: number;
  readonly stream: string;
  readonly consumer: string;
}

class TaskWorker implements Worker {
  readonly id: string;
  readonly workerTypes: readonly string[];
  state: WorkerState = "running";
  private readonly running = new Map<string, TaskContextController>();
  private readonly cancelled = new Set<string>();
  private readonly feeds: TaskFeed[] = [];
  private readonly housekeeping: Housekeeping[] = [];
  private scheduling: Scheduling | undefined;
  /** Submits and cancels for its handlers (children) and schedules. */
  private tasks: TaskBackend | undefined;
  private family: Pick<AttemptEnvironment, "children" | "cancel"> = {};
  /** Live worker instances; this one's keys are refreshed while it runs. */
  private presence: KV | undefined;
  private readonly presenceKeys: string[] = [];
  private presenceTimer: NodeJS.Timeout | undefined;
  /** When each paused type's pause ends by itself. */
  private readonly pauseEnds = new Map<string, NodeJS.Timeout>();
  private readonly subscriptions: Subscription[] = [];
  /** Stops showing this worker in its metrics registry. */
  private unfollowMetrics: (() => void) | undefined;
  private readonly attempts = new Set<Promise<void>>();
  private closing: Promise<void> | undefined;
  private readonly emit: (event: WorkerEvent) => void;
  private readonly throughput: ThroughputCounter;
  private readonly startedAt = timestampNow();
  private readonly nc: NatsConnection;
  private readonly ownsConnection: boolean;
  private readonly bucket: StatusBucket & { readonly index: TaskIndexWriter };
  private readonly options: ResolvedWorkerOptions;

  constructor(
    nc: NatsConnection,
    ownsConnection: boolean,
    bucket: StatusBucket & { readonly index: TaskIndexWriter },
    options: ResolvedWorkerOptions,
  ) {
    this.nc = nc;
    this.ownsConnection = ownsConnection;
    this.bucket = bucket;
    this.options = options;
    this.id = options.workerId;
    this.throughput = new ThroughputCounter((subject, data) => nc.publish(subject, data));
    this.emit = (event) => {
      this.throughput.count(event);
      options.metrics?.observe(event);
      options.emit(event);
    };
    this.workerTypes = options.types.map((type) => type.definition.workerType);
  }

  get inFlight(): number {
    return this.attempts.size;
  }

  async start(): Promise<void> {
    const js = jetstream(this.nc, jetStreamOptionsOf(this.nc));
    const jsm = await jetstreamManager(this.nc, jetStreamOptionsOf(this.nc));
    const presence = await openWorkersBucket(this.nc, this.options.topology ?? {});
    this.presence = presence;
    this.presenceTimer = setInterval(() => {
      const instance = this.instance();
      for (const key of this.presenceKeys) presence.put(key, instance).catch(() => undefined);
    }, presenceTtlMs / 3);
    this.presenceTimer.unref();
    // What its handlers and schedules submit goes through a task backend of its own.
    const registry = learningRegistry(createTaskRegistry(this.options.types.map((type) => type.definition)));
    const tasks = await createNatsTaskBackend({ nc: this.nc, registry, topology: this.options.topology });
    this.tasks = tasks;
    this.family = {
      children: (parentId, waited) => new ChildTasks(parentId, tasks, registry.learn, this.bucket, waited),
      cancel: (taskId, reason) => tasks.cancelTask(taskId, reason),
    };
    for (const type of this.options.types) await this.serve(type, js, jsm);
    // Its types' schedules: the declared ones applied, and a share of their ticks fired. Without
    // the permissions for it (docs/security.md) it runs tasks all the same, and says so.
    this.scheduling = await startScheduling(this.nc, registry, {
      tasks,
      topology: this.options.topology,
      onError: (error) => this.emit({ type: "error", error: fromNatsError(error, "firing a schedule") }),
    }).catch((error) => {
      this.emit({ type: "error", error: fromNatsError(error, "starting to fire its types' schedules") });
      return undefined;
    });
    this.unfollowMetrics = this.options.metrics?.follow({
      nc: this.nc,
      running: this.running,
      methods: this.options.types.flatMap(({ definition, methods }) =>
        [...methods.keys()].map((method) => [definition.workerType, method] as const),
      ),
    });
  }

  /** Starts serving one worker type: its promoter, cancel and control subjects, feeds, and presence. */
  private async serve(type: ServedType, js: JetStreamClient, jsm: JetStreamManager): Promise<void> {
    const { workerType } = type.definition;
    const slots = new PrioritySlots(type.concurrency, topology.priorities.length);
    // The consumers' ack_wait, read once: it sets the heartbeat, the pull expiry and the lease TTL.
    const info = await jsm.consumers.info(topology.streamName(workerType), topology.consumerName(workerType, "normal"));
    const ackWaitMs = millis(info.config.ack_wait ?? 30_000_000_000);
    const heartbeatMs = Math.max(100, Math.floor(ackWaitMs / 3));
    const reportResult = this.resultReporter();
    this.housekeeping.push(
      await startHousekeeping(
        {
          nc: this.nc,
          js,
          jsm,
          bucket: this.bucket,
          holder: this.id,
          reportResult,
          onError: (error, doing) => this.emit({ type: "error", error: fromNatsError(error, doing) }),
        },
        type.definition,
        ackWaitMs,
      ),
    );
    const feeds: TaskFeed[] = [];
    this.subscriptions.push(
      this.nc.subscribe(topology.cancelSubject(workerType), { callback: (_, msg) => this.cancel(msg.string()) }),
      this.nc.subscribe(topology.controlSubject(workerType), {
        callback: (_, msg) => this.control(workerType, msg.string(), slots, feeds),
      }),
    );
    await provisionEndpointConsumer(jsm, workerType, this.id, ackWaitMs);
    const { maxConcurrency, maxRate } = type.definition;
    const env: AttemptEnvironment = {
      bucket: this.bucket,
      workerId: this.id,
      statusIntervalMs: this.options.statusIntervalMs,
      heartbeatMs,
      ackWaitMs,
      maxResultBytes:
        type.definition.retention?.maxResultBytes ?? this.options.topology?.maxResultBytes ?? defaultMaxResultBytes,
      bind: (name) => type.methods.get(name),
      running: this.running,
      cancelled: this.cancelled,
      draining: () => this.state !== "running",
      paused: () => slots.holding,
      emit: this.emit,
      publish: (subject, data) => this.nc.publish(subject, data),
      reportResult,
      // The type's limits across all its workers, as leases; a lease lives one ack wait unless renewed.
      concurrency: maxConcurrency
        ? new Leases(this.bucket.requests, jsm, workerType, "run", maxConcurrency, ackWaitMs)
        : undefined,
      rate: maxRate ? Leases.forRate(this.bucket.requests, jsm, workerType, maxRate) : undefined,
      // A keyed task's key lease, taken by the dispatcher, is this attempt's to renew and release.
      adoptLease: (subject, seq, holder) =>
        Leases.adopt(this.bucket.requests, jsm, workerType, subject, seq, ackWaitMs, holder),
      ...this.family,
    };
    for (const source of this.feedSources(workerType)) {
      const feed = new TaskFeed({
        consumer: await js.consumers.get(source.stream, source.consumer),
        slots,
        rank: source.rank,
        prefetch: type.prefetch,
        heartbeatMs,
        // A pull request lasts half an ack wait, from 1 to 10 s: with an ack wait of 2 s or
        // more, one a frozen worker made is gone by the time its tasks are redelivered.
        expiresMs: Math.min(10_000, Math.max(1_000, Math.floor(ackWaitMs / 2))),
        run: (msg) => this.run(env, msg),
        giveBack: (msg) => giveBack(this.bucket, msg),
        onError: (error) => this.emit({ type: "error", error: fromNatsError(error, `fetching ${workerType} tasks`) }),
      });
      feeds.push(feed);
      this.feeds.push(feed);
    }
    // Live while it runs: broadcasts to "every worker" include it.
    const key = `${workerType}.${this.id}`;
    this.presenceKeys.push(key);
    await this.presence?.put(key, this.instance());
  }

  /** This instance as its presence tells it (WorkerService): where it runs, and its load per type. */
  private instance(): Uint8Array {
    const running = new Map<string, number>();
    for (const taskId of this.running.keys()) {
      const type = workerTypeOf(taskId);
      running.set(type, (running.get(type) ?? 0) + 1);
    }
    return toBinary(
      WorkerInstanceSchema,
      create(WorkerInstanceSchema, {
        workerId: this.id,
        host: hostname(),
        pid: process.pid,
        types: this.options.types
          .filter((type) => this.presenceKeys.includes(`${type.definition.workerType}.${this.id}`))
          .map((type) => ({
            workerType: type.definition.workerType,
            running: running.get(type.definition.workerType) ?? 0,
            concurrency: type.concurrency,
          })),
        startedAt: this.startedAt,
        runtime: `node ${process.versions.node}`,
      }),
    );
  }

  /** One feed per priority, and one for this instance's broadcast copies (served with "high"). */
  private feedSources(workerType: string): FeedSource[] {
    const stream = topology.streamName(workerType);
    return [
      ...topology.priorities.map((priority, rank) => ({
        rank,
        stream,
        consumer: topology.consumerName(workerType, priority),
      })),
      {
        rank: 0,
        stream: topology.broadcastStream(workerType),
        consumer: topology.endpointConsumerName(workerType, this.id),
      },
    ];
  }

  /** Publishes stored terminal outcomes as TaskResult events, unless the options turned them off. */
  private resultReporter(): (status: TaskStatus, bytes: Uint8Array) => void {
    const { results } = this.options;
    if (results === false) return () => {};
    return resultPublisher(this.nc, results, (error) => this.emit({ type: "error", error: TaskError.from(error) }));
  }

  /** A control message: "paused <RFC 3339 end>" holds the type's slots until then, "resumed" frees them. */
  private control(workerType: string, message: string, slots: PrioritySlots, feeds: readonly TaskFeed[]): void {
    clearTimeout(this.pauseEnds.get(workerType));
    const resume = () => {
      slots.unhold();
      for (const feed of feeds) feed.repull();
    };
    const [what, until] = message.split(" ");
    if (what !== "paused") {
      resume();
      return;
    }
    slots.hold();
    // A little after the server lifts it: a pull made while still paused would wait unserved.
    const ms = Math.min(Date.parse(until ?? "") - Date.now() + 100, 2 ** 31 - 1);
    if (ms > 0) this.pauseEnds.set(workerType, setTimeout(resume, ms).unref());
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private run(env: AttemptEnvironment, msg: JsMsg): Promise<void> {
    const attempt = runAttempt(env, msg)
      .catch((error) => {
        // The record could not be written: the message stays unacked and is redelivered.
        this.emit({ type: "error", error: fromNatsError(error, `running a task on ${msg.subject}`) });
      })
      .finally(() => this.attempts.delete(attempt));
    this.attempts.add(attempt);
    return attempt;
  }

  private cancel(taskId: string): void {
    this.cancelled.add(taskId);
    if (this.cancelled.size > 10_000) {
      const oldest = this.cancelled.values().next().value;
      if (oldest !== undefined) this.cancelled.delete(oldest);
    }
    this.running.get(taskId)?.abort("cancelled");
  }

  private async shutdown(): Promise<void> {
    this.state = "draining";
    // Stage 1: stop pulling; tasks pulled but not started go back to the stream at once.
    await Promise.all(this.housekeeping.map((h) => h.stop()));
    await this.scheduling?.close().catch((error) => this.emit({ type: "error", error: TaskError.from(error) }));
    // No longer live: broadcasts to "every worker" leave it out from now on.
    clearInterval(this.presenceTimer);
    await Promise.all(this.presenceKeys.map((key) => this.presence?.delete(key).catch(() => undefined)));
    for (const timer of this.pauseEnds.values()) clearTimeout(timer);
    await Promise.all(this.feeds.map((feed) => feed.stop()));
    // Stage 2: let running handlers finish within the grace period, then abort them.
    const grace = this.options.shutdownGraceMs;
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, grace);
    });
    await Promise.race([Promise.allSettled([...this.attempts]), graceOver]);
    clearTimeout(timer);
    for (const ctx of this.running.values()) ctx.abort("shutdown");
    await Promise.allSettled([...this.attempts]);
    // Stage 3: release everything, each step on its own.
    this.unfollowMetrics?.();
    await this.tasks?.close().catch((error) => this.emit({ type: "error", error: TaskError.from(error) }));
    this.throughput.close();
    this.bucket.requests.close();
    for (const sub of this.subscriptions) {
      try {
        sub.unsubscribe();
      } catch (error) {
        this.emit({ type: "error", error: TaskError.from(error) });
      }
    }
    if (this.ownsConnection) {
      try {
        await this.nc.drain();
      } catch (error) {
        this.emit({ type: "error", error: fromNatsError(error, "closing the NATS connection") });
      }
    }
    this.state = "closed";
  }
}

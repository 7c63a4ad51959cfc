import { hostname } from "node:os";
import type { DescMessage } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { type JetStreamManager, type JsMsg, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { millis, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import type { TaskServiceDefinition } from "../sdk/core/index.ts";
import { endpointPattern, isTerminal, TaskError, taskIdToken, topology } from "../sdk/core/index.ts";
import {
  checkServerVersion,
  fromNatsError,
  keepProvisioned,
  openConnection,
  openWorkersBucket,
  presenceTtlMs,
  provisionEndpointConsumer,
  provisionStatusBucket,
  provisionWorkerType,
  RequestPipeline,
  type StatusTopologyOptions,
  type WorkerTypeTopologyOptions,
} from "../sdk/nats/index.ts";
import { DuePromoter } from "./due-promoter.ts";
import { giveBack } from "./give-back.ts";
import { Leases } from "./leases.ts";
import { type TaskMiddleware, withMiddleware } from "./middleware.ts";
import { PrioritySlots } from "./priority-slots.ts";
import { type ResultEventOptions, resultPublisher } from "./result-events.ts";
import { type AttemptEnvironment, type BoundMethod, runAttempt } from "./run-attempt.ts";
import type { TaskContextController } from "./task-context-controller.ts";
import { TaskFeed } from "./task-feed.ts";
import type { TaskMethodHandler, TaskServiceImplementation } from "./task-service-implementation.ts";
import type { WorkerEvent } from "./worker-event.ts";

/** Options of {@link createWorker}. */
export interface WorkerOptions {
  /** A server URL (the worker connects and closes it) or an open connection (left open). */
  nats: string | NatsConnection;
  /** The task services to run, from generated `implement<Service>()` functions. */
  services: TaskServiceImplementation[];
  /** Handlers run at once per worker type. @default the service's `(taskwire.v1.worker).concurrency`, else 16 */
  concurrency?: number;
  /** Tasks fetched ahead per priority, waiting for a free handler slot. @default concurrency */
  prefetch?: number;
  /** This worker instance's name, recorded in task statuses. @default "<hostname>-<pid>" */
  workerId?: string;
  /** On close, how long running handlers may take before their signal aborts. @default 30000 */
  shutdownGraceMs?: number;
  /** Coalescing interval of RUNNING and progress status writes. @default 250 */
  statusIntervalMs?: number;
  /** Stream, consumer and bucket options, applied when provisioning. */
  topology?: WorkerTypeTopologyOptions & StatusTopologyOptions;
  /** Background events: finished attempts and faults. @default faults are printed to stderr */
  onEvent?: (event: WorkerEvent) => void;
  /** Runs around every handler call, the first outermost. */
  middleware?: TaskMiddleware[];
  /**
   * Where each terminal outcome is published as a TaskResult event, and a hook
   * that may change it; `false` publishes none (an event costs the worker about
   * 10 µs of CPU per task). @default events on `taskwire.result.<type>`
   */
  results?: ResultEventOptions | false;
}

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
  if (options.services.length === 0)
    throw new TaskError("createWorker needs at least one task service", Code.InvalidArgument);
  const { nc, owned } = await openConnection(options.nats);
  try {
    checkServerVersion(nc);
    const jsm = await jetstreamManager(nc);
    const provision = async () => {
      for (const service of options.services) await provisionWorkerType(jsm, service.definition, options.topology);
      return provisionStatusBucket(nc, options.topology);
    };
    const kv = await provision();
    const worker = new TaskWorker(nc, owned, { kv, requests: new RequestPipeline(nc) }, options);
    await worker.start();
    keepProvisioned(nc, provision, (error) =>
      options.onEvent?.({ type: "error", error: fromNatsError(error, "provisioning after a reconnect") }),
    );
    return worker;
  } catch (error) {
    if (owned) await nc.close();
    throw fromNatsError(error, "starting the worker");
  }
}

class TaskWorker implements Worker {
  readonly id: string;
  state: WorkerState = "running";
  private readonly running = new Map<string, TaskContextController>();
  private readonly cancelled = new Set<string>();
  private readonly feeds: TaskFeed[] = [];
  private readonly promoters: DuePromoter[] = [];
  /** Live worker instances; this one's keys are refreshed while it runs. */
  private presence!: KV;
  private readonly presenceKeys: string[] = [];
  private presenceTimer: NodeJS.Timeout | undefined;
  /** When each paused type's pause ends by itself. */
  private readonly pauseEnds = new Map<string, NodeJS.Timeout>();
  private readonly subscriptions: Subscription[] = [];
  private readonly attempts = new Set<Promise<void>>();
  private closing: Promise<void> | undefined;
  private readonly emit: (event: WorkerEvent) => void;

  private readonly nc: NatsConnection;
  private readonly ownsConnection: boolean;
  private readonly bucket: AttemptEnvironment["bucket"];
  private readonly options: WorkerOptions;
  constructor(
    nc: NatsConnection,
    ownsConnection: boolean,
    bucket: AttemptEnvironment["bucket"],
    options: WorkerOptions,
  ) {
    this.nc = nc;
    this.ownsConnection = ownsConnection;
    this.bucket = bucket;
    this.options = options;
    // The id names this instance in subjects too (broadcast endpoints).
    this.id = options.workerId ?? `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9_-]/g, "_");
    if (!endpointPattern.test(this.id)) {
      throw new TaskError(
        `worker id "${this.id}" must be 1 to 64 letters, digits, '-' or '_' (it names the instance in subjects)`,
        Code.InvalidArgument,
      );
    }
    this.emit =
      options.onEvent ??
      ((event) => {
        if (event.type === "error") console.error(`taskwire worker ${this.id}: ${event.error.message}`);
      });
  }

  get inFlight(): number {
    return this.attempts.size;
  }

  async start(): Promise<void> {
    const js = jetstream(this.nc);
    const jsm = await jetstreamManager(this.nc);
    this.presence = await openWorkersBucket(this.nc);
    this.presenceTimer = setInterval(() => {
      for (const key of this.presenceKeys) this.presence.put(key, this.id).catch(() => undefined);
    }, presenceTtlMs / 3);
    this.presenceTimer.unref();
    for (const service of this.options.services) {
      const { workerType } = service.definition;
      const methods = new Map<string, BoundMethod>();
      for (const [key, method] of Object.entries(service.definition.methods)) {
        const handler = (service.handlers as Record<string, TaskMethodHandler<DescMessage, DescMessage>>)[key];
        if (handler)
          methods.set(method.name, { method, handler: withMiddleware(this.options.middleware ?? [], handler) });
      }
      const concurrency = this.options.concurrency ?? (service.definition.concurrency || 16);
      const slots = new PrioritySlots(concurrency, topology.priorities.length);
      const limits = await this.limitsOf(service.definition, jsm);
      const results = this.options.results;
      const reportResult =
        results === false
          ? () => {}
          : resultPublisher(this.nc, results ?? {}, (error) =>
              this.emit({ type: "error", error: TaskError.from(error) }),
            );
      this.promoters.push(
        await DuePromoter.start(
          js,
          this.bucket,
          workerType,
          (error) =>
            this.emit({ type: "error", error: fromNatsError(error, `moving a due ${workerType} task to its queue`) }),
          (status, bytes, workItem) => {
            // A broadcast ended INCOMPLETE: its copies left unanswered go, and its submitter hears of it.
            for (const e of status.endpoints) {
              if (isTerminal(e.state)) continue;
              const filter = topology.broadcastSubject(workerType, e.endpoint, taskIdToken(status.taskId));
              jsm.streams.purge(topology.broadcastStream(workerType), { filter }).catch(() => undefined);
            }
            if (workItem.notifySubject) this.nc.publish(workItem.notifySubject, bytes);
            reportResult(status, bytes);
          },
        ),
      );
      const feeds: TaskFeed[] = [];
      this.subscriptions.push(
        this.nc.subscribe(topology.cancelSubject(workerType), { callback: (_, msg) => this.cancel(msg.string()) }),
        this.nc.subscribe(topology.controlSubject(workerType), {
          callback: (_, msg) => {
            clearTimeout(this.pauseEnds.get(workerType));
            const resume = () => {
              slots.unhold();
              for (const feed of feeds) feed.repull();
            };
            const [what, until] = msg.string().split(" ");
            if (what !== "paused") return resume();
            slots.hold();
            // A little after the server lifts it: a pull made while still paused would wait unserved.
            const ms = Math.min(Date.parse(until ?? "") - Date.now() + 100, 2 ** 31 - 1);
            if (ms > 0) this.pauseEnds.set(workerType, setTimeout(resume, ms).unref());
          },
        }),
      );
      const stream = topology.streamName(workerType);
      const info = await jsm.consumers.info(stream, topology.consumerName(workerType, "normal"));
      const ackWaitMs = millis(info.config.ack_wait ?? 30_000_000_000);
      const heartbeatMs = Math.max(100, Math.floor(ackWaitMs / 3));
      await provisionEndpointConsumer(jsm, workerType, this.id, ackWaitMs);
      const env: AttemptEnvironment = {
        bucket: this.bucket,
        workerId: this.id,
        statusIntervalMs: this.options.statusIntervalMs ?? 250,
        heartbeatMs,
        ackWaitMs,
        bind: (name) => methods.get(name),
        running: this.running,
        cancelled: this.cancelled,
        draining: () => this.state !== "running",
        paused: () => slots.holding,
        emit: this.emit,
        publish: (subject, data) => this.nc.publish(subject, data),
        reportResult,
        concurrency: limits.concurrency,
        rate: limits.rate,
      };
      // One feed per priority, and one for this instance's broadcast copies (served with "high").
      const sources = [
        ...topology.priorities.map((priority, rank) => ({
          rank,
          stream,
          name: topology.consumerName(workerType, priority),
        })),
        {
          rank: 0,
          stream: topology.broadcastStream(workerType),
          name: topology.endpointConsumerName(workerType, this.id),
        },
      ];
      for (const { rank, stream: source, name } of sources) {
        const feed = new TaskFeed({
          consumer: await js.consumers.get(source, name),
          slots,
          rank,
          prefetch: this.options.prefetch ?? concurrency,
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
      const presence = `${workerType}.${this.id}`;
      await this.presence.put(presence, this.id);
      this.presenceKeys.push(presence);
    }
  }

  /** The type's limits across all its workers, as leases; a lease lives one ack wait unless renewed. */
  private async limitsOf(
    definition: TaskServiceDefinition,
    jsm: JetStreamManager,
  ): Promise<{ concurrency?: Leases; rate?: Leases }> {
    const { workerType, maxConcurrency, maxRate } = definition;
    let concurrency: Leases | undefined;
    if (maxConcurrency) {
      const consumer = await jsm.consumers.info(
        topology.streamName(workerType),
        topology.consumerName(workerType, "normal"),
      );
      const ttlMs = millis(consumer.config.ack_wait ?? 30_000_000_000);
      concurrency = new Leases(this.bucket.requests, jsm, workerType, "run", maxConcurrency, ttlMs);
    }
    const rate = maxRate ? Leases.forRate(this.bucket.requests, jsm, workerType, maxRate) : undefined;
    return { concurrency, rate };
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
    for (const promoter of this.promoters) promoter.stop();
    // No longer live: broadcasts to "every worker" leave it out from now on.
    clearInterval(this.presenceTimer);
    await Promise.all(this.presenceKeys.map((key) => this.presence.delete(key).catch(() => undefined)));
    for (const timer of this.pauseEnds.values()) clearTimeout(timer);
    await Promise.all(this.feeds.map((feed) => feed.stop()));
    // Stage 2: let running handlers finish within the grace period, then abort them.
    const grace = this.options.shutdownGraceMs ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, grace);
    });
    await Promise.race([Promise.allSettled([...this.attempts]), graceOver]);
    clearTimeout(timer);
    for (const ctx of this.running.values()) ctx.abort("shutdown");
    await Promise.allSettled([...this.attempts]);
    // Stage 3: release everything, each step on its own.
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

import type { NatsConnection } from "@nats-io/transport-node";
import { Counter, Gauge, Registry } from "prom-client";
import { Buckets, registerCountedHistogram } from "./counted-histogram.ts";
import type { AttemptOutcome, WorkerEvent } from "./worker-event.ts";

/**
 * The Prometheus registry every worker records its metrics in, unless given
 * another (`createWorker({ metrics })`). Serve it from your own HTTP server
 * where you run `createWorker` yourself:
 *
 * ```ts
 * import { collectDefaultMetrics } from "prom-client";
 * import { workerMetricsRegistry } from "taskwire/worker";
 *
 * collectDefaultMetrics({ register: workerMetricsRegistry }); // the process's CPU, memory, event loop
 * app.get("/metrics", async (_, res) => {
 *   res.type(workerMetricsRegistry.contentType).send(await workerMetricsRegistry.metrics());
 * });
 * ```
 *
 * The supervisor's processes record into it, and the supervisor serves them
 * all at once (`serveSupervisorMetrics`).
 */
export const workerMetricsRegistry = new Registry();

/** Every outcome, so that each count starts at zero (a complete list: the compiler checks it). */
const outcomes = Object.keys({
  succeeded: true,
  failed: true,
  retrying: true,
  cancelled: true,
  expired: true,
  superseded: true,
  requeued: true,
  waiting: true,
  overtaken: true,
} satisfies Record<AttemptOutcome, true>) as AttemptOutcome[];

type MethodLabels = { readonly worker_type: string; readonly method: string };

/** What the workers of a registry counted for one worker type and rpc, in plain numbers, read at each scrape. */
interface MethodCounts {
  readonly labels: MethodLabels;
  started: number;
  retries: number;
  readonly finished: Record<AttemptOutcome, number>;
  readonly duration: Buckets;
  readonly queueWait: Buckets;
}

/** What a running worker shows its metrics: the handlers it runs now, its methods and its connection. */
export interface MetricsSource {
  /** The worker's NATS connection: `taskwire_nats_connected` follows it. */
  readonly nc: NatsConnection;
  /** Handlers running now, by task id. */
  readonly running: ReadonlyMap<string, { readonly workerType: string; readonly method: string }>;
  /** Each worker type and rpc it serves, e.g. `["hasher", "Digest"]`. */
  readonly methods: readonly (readonly [workerType: string, method: string])[];
}

/** A followed source and whether its connection is up now. */
interface Followed {
  readonly source: MetricsSource;
  connected: boolean;
}

const perRegistry = new WeakMap<Registry, WorkerMetrics>();

/**
 * The metrics of the workers of one registry, counted from their events
 * ({@link WorkerEvent}) in plain numbers (an attempt costs a few additions,
 * where prom-client's own counters and histograms take about 1.5 µs), with the
 * handlers in flight and the NATS connection read at each scrape. Labels are
 * the worker type and the rpc (and the outcome), so the number of series is
 * bounded by the protos.
 */
export class WorkerMetrics {
  /** Counts by worker type, then rpc. */
  private readonly counts = new Map<string, Map<string, MethodCounts>>();
  private readonly followed = new Set<Followed>();

  /** The metrics of `registry`, registered in it on first use. */
  static of(registry: Registry): WorkerMetrics {
    let metrics = perRegistry.get(registry);
    if (!metrics) {
      metrics = new WorkerMetrics(registry);
      perRegistry.set(registry, metrics);
    }
    return metrics;
  }

  private constructor(registry: Registry) {
    const registers = [registry];
    const labelNames = ["worker_type", "method"] as const;
    const all = () => this.all();
    new Counter({
      name: "taskwire_tasks_started_total",
      help: "Attempts whose handler started.",
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const counts of all()) this.inc(counts.labels, counts.started);
      },
    });
    new Counter({
      name: "taskwire_tasks_finished_total",
      help: "Attempts that ended, by outcome: succeeded, failed (for good), retrying, cancelled, expired, superseded, requeued or overtaken.",
      labelNames: [...labelNames, "outcome"],
      registers,
      collect() {
        this.reset();
        for (const counts of all()) {
          for (const outcome of outcomes) this.inc({ ...counts.labels, outcome }, counts.finished[outcome]);
        }
      },
    });
    new Counter({
      name: "taskwire_task_retries_total",
      help: "Attempts started after a task's first: retries of a failed attempt, or of one whose worker stopped.",
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const counts of all()) this.inc(counts.labels, counts.retries);
      },
    });
    registerCountedHistogram(
      registry,
      "taskwire_attempt_duration_seconds",
      "How long attempts ran, from their handler's start to their recorded end.",
      () => all().map((counts) => [counts.labels, counts.duration] as const),
    );
    registerCountedHistogram(
      registry,
      "taskwire_queue_wait_seconds",
      "How long tasks waited in their queue for their first attempt, from when they became due: stored by the broker, or their not_before.",
      () => all().map((counts) => [counts.labels, counts.queueWait] as const),
    );
    const followed = this.followed;
    const countsOf = (workerType: string, method: string) => this.countsOf(workerType, method);
    new Gauge({
      name: "taskwire_tasks_in_flight",
      help: "Handlers running now.",
      labelNames,
      registers,
      collect() {
        this.reset();
        const running = new Map<MethodCounts, number>();
        for (const { source } of followed) {
          for (const [workerType, method] of source.methods) running.set(countsOf(workerType, method), 0);
        }
        for (const { source } of followed) {
          for (const { workerType, method } of source.running.values()) {
            const counts = countsOf(workerType, method);
            running.set(counts, (running.get(counts) ?? 0) + 1);
          }
        }
        for (const [counts, n] of running) this.set(counts.labels, n);
      },
    });
    new Gauge({
      name: "taskwire_nats_connected",
      help: "1 while every worker of the process is connected to NATS, else 0.",
      registers,
      // Across the supervisor's processes: 1 only while all of them are connected.
      aggregator: "min",
      collect() {
        this.reset();
        if (followed.size > 0) this.set([...followed].every((f) => f.connected) ? 1 : 0);
      },
    });
  }

  /** Counts what an event says: a start, with its queue wait, or an attempt's end, with its outcome and run time. */
  observe(event: WorkerEvent): void {
    if (event.type === "start") {
      const counts = this.countsOf(event.workerType, event.method);
      counts.started++;
      if (event.attempt > 1) counts.retries++;
      if (event.queueWaitMs !== undefined) counts.queueWait.observe(event.queueWaitMs / 1000);
    } else if (event.type === "attempt") {
      const counts = this.countsOf(event.workerType, event.method);
      counts.finished[event.outcome]++;
      if (event.runMs !== undefined) counts.duration.observe(event.runMs / 1000);
    }
  }

  /**
   * Shows a running worker's handlers in flight and its connection at each
   * scrape, and its methods' counts from zero (so that a rate over them is
   * known from the first task). Returns the function that stops it.
   */
  follow(source: MetricsSource): () => void {
    for (const [workerType, method] of source.methods) this.countsOf(workerType, method);
    const followed: Followed = { source, connected: !source.nc.isClosed() };
    this.followed.add(followed);
    void (async () => {
      for await (const status of source.nc.status()) {
        if (!this.followed.has(followed)) return;
        if (status.type === "disconnect") followed.connected = false;
        else if (status.type === "reconnect") followed.connected = true;
      }
      followed.connected = false; // closed for good
    })();
    return () => {
      this.followed.delete(followed);
    };
  }

  private all(): MethodCounts[] {
    return [...this.counts.values()].flatMap((methods) => [...methods.values()]);
  }

  private countsOf(workerType: string, method: string): MethodCounts {
    let methods = this.counts.get(workerType);
    if (!methods) {
      methods = new Map();
      this.counts.set(workerType, methods);
    }
    let counts = methods.get(method);
    if (!counts) {
      counts = {
        labels: { worker_type: workerType, method },
        started: 0,
        retries: 0,
        finished: Object.fromEntries(outcomes.map((outcome) => [outcome, 0])) as Record<AttemptOutcome, number>,
        duration: new Buckets(),
        queueWait: new Buckets(),
      };
      methods.set(method, counts);
    }
    return counts;
  }
}

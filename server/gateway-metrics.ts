import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { QueueInfo } from "../gen/taskwire/v1/queue_service_pb.ts";
import type { Task } from "../gen/taskwire/v1/task_pb.ts";
import type { QueueBackend, TaskBackend, TaskServiceDefinition } from "../sdk/core/index.ts";

/** How long a scrape waits for one worker type's queue before leaving it out. */
const queueReadTimeoutMs = 3_000;

/** Each per-type queue gauge: its name, its help, and its value in a queue's state. */
const queueGauges: readonly (readonly [name: string, help: string, value: (queue: QueueInfo) => number])[] = [
  ["taskwire_queue_depth", "Tasks waiting for a worker, all priorities together.", (q) => Number(q.queued)],
  ["taskwire_queue_scheduled", "Delayed tasks waiting for their start time.", (q) => Number(q.scheduled)],
  ["taskwire_queue_running", "Tasks delivered to a worker and not finished yet.", (q) => Number(q.running)],
  [
    "taskwire_queue_oldest_age_seconds",
    "How long the oldest task waiting for a worker has waited; 0 when none waits.",
    (q) => (q.oldestQueuedAt ? Math.max(0, (Date.now() - timestampMs(q.oldestQueuedAt)) / 1000) : 0),
  ],
  [
    "taskwire_dead_letters",
    "Tasks in the dead-letter stream: failed for good, kept to inspect or retry.",
    (q) => Number(q.deadLetters),
  ],
  ["taskwire_workers", "Live worker instances serving the type.", (q) => q.workers],
  ["taskwire_queue_paused", "1 while workers may not start tasks of the type, else 0.", (q) => (q.paused ? 1 : 0)],
];

let processRegistry: Registry | undefined;

/** The process's own metrics (CPU, memory, event loop, garbage collection), collected once for every gateway in it. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/**
 * A gateway's Prometheus metrics: the tasks submitted through it, the state of
 * the queue of each worker type it serves (read from the broker at each
 * scrape), its NATS connection, and the process's own metrics.
 */
export class GatewayMetrics {
  private readonly registry = new Registry();
  private readonly submitted: Counter<"worker_type" | "method">;
  private connected = true;
  /** The queue read under way: one per scrape, shared by every queue gauge. */
  private reading: Promise<QueueInfo[]> | undefined;
  private readonly queues: QueueBackend | undefined;
  private readonly workerTypes: readonly string[];

  /** Metrics of the worker types of `services`; their queue gauges need `queues`. */
  constructor(services: readonly TaskServiceDefinition[], queues: QueueBackend | undefined) {
    this.queues = queues;
    this.workerTypes = services.map((definition) => definition.workerType);
    const registers = [this.registry];
    this.submitted = new Counter({
      name: "taskwire_tasks_submitted_total",
      help: "Tasks accepted through this gateway (an idempotency key's repeat is not counted again).",
      labelNames: ["worker_type", "method"],
      registers,
    });
    // Known from the start, so that a rate over them is known from the first task.
    for (const definition of services) {
      for (const method of Object.values(definition.methods)) {
        this.submitted.inc({ worker_type: definition.workerType, method: method.name }, 0);
      }
    }
    const read = () => this.readQueues();
    for (const [name, help, value] of queueGauges) {
      new Gauge({
        name,
        help,
        labelNames: ["worker_type"],
        registers,
        async collect() {
          this.reset();
          for (const queue of await read()) this.set({ worker_type: queue.workerType }, value(queue));
        },
      });
    }
    const isConnected = () => this.connected;
    new Gauge({
      name: "taskwire_nats_connected",
      help: "1 while the gateway is connected to NATS, else 0.",
      registers,
      collect() {
        this.set(isConnected() ? 1 : 0);
      },
    });
  }

  /** The content type of {@link text}: Prometheus' text format. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** Every metric, in Prometheus' text format: the process's, then the gateway's. */
  async text(): Promise<string> {
    const [process, gateway] = await Promise.all([processMetrics().metrics(), this.registry.metrics()]);
    return `${process}\n${gateway}`;
  }

  /** Records whether the gateway reaches NATS now. */
  setConnected(connected: boolean): void {
    this.connected = connected;
  }

  /**
   * `backend` as it is, but counting each task it accepts in
   * `taskwire_tasks_submitted_total`, from Submit, BatchSubmit and the typed routes.
   */
  countingSubmits(backend: TaskBackend): TaskBackend {
    const count = (task: Task | undefined) => {
      if (task) this.submitted.inc({ worker_type: task.workerType, method: task.method });
    };
    const submit: TaskBackend["submit"] = async (task) => {
      const response = await backend.submit(task);
      if (!response.duplicate) count(task);
      return response;
    };
    const batchSubmit: TaskBackend["batchSubmit"] = async (tasks, options) => {
      const results = await backend.batchSubmit(tasks, options);
      results.forEach((result, i) => {
        if (result.outcome.case === "accepted" && !result.outcome.value.duplicate) count(tasks[i]);
      });
      return results;
    };
    return new Proxy(backend, {
      get(target, key) {
        if (key === "submit") return submit;
        if (key === "batchSubmit") return batchSubmit;
        const value: unknown = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }

  /**
   * Every served type's queue, read at once, each within a timeout: a type
   * whose read fails or is late is left out of this scrape, the others stay.
   */
  private readQueues(): Promise<QueueInfo[]> {
    const { queues } = this;
    if (!queues) return Promise.resolve([]);
    this.reading ??= Promise.all(this.workerTypes.map((type) => withinTimeout(queues.getQueue(type)))).then((infos) => {
      this.reading = undefined;
      return infos.filter((info) => info !== undefined);
    });
    return this.reading;
  }
}

/** The promise's value, or undefined when it fails or takes longer than a scrape may wait. */
function withinTimeout<T>(promise: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), queueReadTimeoutMs);
  });
  return Promise.race([promise.catch(() => undefined), late]).finally(() => clearTimeout(timer));
}

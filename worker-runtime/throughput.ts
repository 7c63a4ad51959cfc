import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { type ThroughputPoint, ThroughputPointSchema } from "../gen/taskwire/v1/queue_service_pb.ts";
import { throughputStepMs, topology, workerTypeOf } from "../sdk/core/index.ts";
import type { AttemptOutcome, WorkerEvent } from "./worker-event.ts";

/** The ThroughputPoint counter each outcome adds to; the others (given back, overtaken, superseded) count nowhere. */
const counterOf: Partial<Record<AttemptOutcome, "succeeded" | "failed" | "retried" | "cancelled">> = {
  succeeded: "succeeded",
  failed: "failed",
  retrying: "retried",
  cancelled: "cancelled",
  expired: "cancelled",
};

/**
 * Counts the attempts a worker finishes, per worker type, and publishes each
 * type's counts once per 10-second step (on the step's boundary) to the
 * throughput stream: QueueService.GetThroughput sums every worker's. A step
 * with nothing finished publishes nothing.
 */
export class ThroughputCounter {
  private readonly steps = new Map<string, ThroughputPoint>();
  private readonly publish: (subject: string, data: Uint8Array) => void;
  private timer: NodeJS.Timeout | undefined;

  constructor(publish: (subject: string, data: Uint8Array) => void) {
    this.publish = publish;
    this.schedule();
  }

  /** Counts a finished attempt. */
  count(event: WorkerEvent): void {
    if (event.type !== "attempt") return;
    const counter = counterOf[event.outcome];
    if (!counter) return;
    const workerType = workerTypeOf(event.taskId);
    let step = this.steps.get(workerType);
    if (!step) {
      step = create(ThroughputPointSchema, {
        start: timestampFromMs(Math.floor(Date.now() / throughputStepMs) * throughputStepMs),
      });
      this.steps.set(workerType, step);
    }
    step[counter]++;
  }

  /** Publishes what was counted and stops. */
  close(): void {
    clearTimeout(this.timer);
    this.flush();
  }

  private schedule(): void {
    const untilBoundary = throughputStepMs - (Date.now() % throughputStepMs);
    this.timer = setTimeout(() => {
      this.flush();
      this.schedule();
    }, untilBoundary).unref();
  }

  private flush(): void {
    for (const [workerType, point] of this.steps) {
      this.publish(topology.throughputSubject(workerType), toBinary(ThroughputPointSchema, point));
    }
    this.steps.clear();
  }
}

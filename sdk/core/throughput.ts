import type { QueueSnapshot, ThroughputPoint } from "../../gen/taskwire/v1/queue_service_pb.ts";

/** One step of the workers' throughput counts, ms. */
export const throughputStepMs = 10_000;

/** Adds a point's counts to the point of the same step in `byStart` (keyed by its start, ms). */
export function addPoint(byStart: Map<number, ThroughputPoint>, point: ThroughputPoint): void {
  const start = Number(point.start?.seconds ?? 0) * 1000;
  const sum = byStart.get(start);
  if (!sum) {
    byStart.set(start, { ...point });
    return;
  }
  sum.succeeded += point.succeeded;
  sum.failed += point.failed;
  sum.retried += point.retried;
  sum.cancelled += point.cancelled;
}

/**
 * Two WatchQueues messages as one: the later one's queues, each with the
 * throughput of both (counts of a step added up), the points older than
 * `keepFromMs` left out. What a watcher that missed `earlier` should see.
 */
export function combineSnapshots(
  earlier: readonly QueueSnapshot[],
  later: readonly QueueSnapshot[],
  keepFromMs: number,
): QueueSnapshot[] {
  const before = new Map(earlier.map((s) => [s.queue?.workerType ?? "", s.throughput]));
  return later.map((snapshot) => {
    const byStart = new Map<number, ThroughputPoint>();
    for (const point of [...(before.get(snapshot.queue?.workerType ?? "") ?? []), ...snapshot.throughput]) {
      if (Number(point.start?.seconds ?? 0) * 1000 >= keepFromMs) addPoint(byStart, point);
    }
    return {
      ...snapshot,
      throughput: [...byStart.entries()].sort(([a], [b]) => a - b).map(([, point]) => point),
    };
  });
}

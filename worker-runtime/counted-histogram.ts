import type { Metric, Registry } from "prom-client";

/** Bucket bounds, in seconds, of attempt durations and queue waits: 5 ms to an hour. */
export const durationBuckets: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
];

/**
 * The observations of one histogram series, in plain numbers: an observation
 * is a few additions, where prom-client's `Histogram.observe` validates and
 * hashes its labels each time (about 0.3 µs).
 */
export class Buckets {
  /** Observations per bucket, not cumulative; the last counts those over every bound. */
  readonly counts: number[] = new Array<number>(durationBuckets.length + 1).fill(0);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < durationBuckets.length && seconds > (durationBuckets[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
    this.sum += seconds;
    this.count++;
  }
}

/**
 * Registers in `registry` a histogram whose series are counted in
 * {@link Buckets}, read at each scrape from `series`.
 *
 * prom-client has no public way to set a histogram's counts: this registers an
 * object of the shape its registry reads from its own metrics (`name`, `help`,
 * `type`, `aggregator`, and `get()` resolving `{ values }` with `_bucket`, `_sum`
 * and `_count` samples, as `Histogram.get()` gives them), which its text output,
 * `getMetricsAsJSON()` and `AggregatorRegistry.aggregate` all use.
 * test/integration/metrics.test.ts scrapes the result, summed across processes.
 */
export function registerCountedHistogram<L extends Record<string, string>>(
  registry: Registry,
  name: string,
  help: string,
  series: () => Iterable<readonly [labels: L, buckets: Buckets]>,
): void {
  const shape = { name, help, type: "histogram", aggregator: "sum" } as const;
  const metric = {
    ...shape,
    async get() {
      const values: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
      for (const [labels, buckets] of series()) {
        let cumulative = 0;
        durationBuckets.forEach((le, i) => {
          cumulative += buckets.counts[i] as number;
          values.push({ metricName: `${name}_bucket`, labels: { le, ...labels }, value: cumulative });
        });
        values.push(
          { metricName: `${name}_bucket`, labels: { le: "+Inf", ...labels }, value: buckets.count },
          { metricName: `${name}_sum`, labels, value: buckets.sum },
          { metricName: `${name}_count`, labels, value: buckets.count },
        );
      }
      return { ...shape, values };
    },
    // Counted by the workers, which a registry reset does not undo.
    reset() {},
  };
  registry.registerMetric(metric as unknown as Metric);
}

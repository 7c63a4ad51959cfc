import type { ThroughputPoint } from "../../../gen/taskwire/v1/queue_service_pb.ts";
import { formatRate } from "../format.ts";

/** A point's outcomes, stacked from the bottom in this order. */
const outcomes = ["succeeded", "retried", "failed", "cancelled"] as const;

/** Seconds per point, as the gateway counts them, and points in an hour. */
const stepSeconds = 10;
const steps = 360;
const height = 48;

/**
 * Tasks finished per second over the last hour, by outcome: one stacked bar per
 * 10-second step, scaled to the hour's peak; below it, the last minute's rates.
 * `points` are by their start, in seconds since the epoch.
 */
export function ThroughputChart({
  points,
  now,
}: {
  readonly points: ReadonlyMap<number, ThroughputPoint>;
  readonly now: number;
}) {
  const first = Math.floor(now / 1000 / stepSeconds) * stepSeconds - (steps - 1) * stepSeconds;
  const rates = outcomes.map(() => new Array<number>(steps).fill(0));
  for (const [start, point] of points) {
    const step = (start - first) / stepSeconds;
    if (!Number.isInteger(step) || step < 0 || step >= steps) continue;
    outcomes.forEach((outcome, k) => {
      (rates[k] as number[])[step] = Number(point[outcome]) / stepSeconds;
    });
  }
  const totals = Array.from({ length: steps }, (_, step) => rates.reduce((sum, r) => sum + (r[step] ?? 0), 0));
  const peak = Math.max(0, ...totals);
  const scale = peak > 0 ? height / peak : 0;
  const base = new Array<number>(steps).fill(0);
  const paths = rates.map((series) => {
    let d = "";
    series.forEach((rate, step) => {
      if (rate <= 0) return;
      const bar = rate * scale;
      const bottom = height - (base[step] ?? 0);
      d += `M${step} ${(bottom - bar).toFixed(2)}h1v${bar.toFixed(2)}h-1z`;
      base[step] = (base[step] ?? 0) + bar;
    });
    return d;
  });
  // The last minute: its six steps, the current one included.
  const lastMinute = rates.map((series) => series.slice(-6).reduce((sum, rate) => sum + rate, 0) / 6);
  return (
    <figure class="throughput">
      <svg
        viewBox={`0 0 ${steps} ${height}`}
        preserveAspectRatio="none"
        role="img"
        aria-label={`Tasks finished per second over the last hour; peak ${formatRate(peak)}`}
      >
        <line class="axis" x1="0" y1={height} x2={steps} y2={height} />
        {paths.map((d, k) => (d ? <path key={outcomes[k]} class={`tp-${outcomes[k]}`} d={d} /> : null))}
      </svg>
      <figcaption>
        <span class="muted">last hour, peak {formatRate(peak)} · last minute:</span>
        {outcomes.map((outcome, k) => (
          <span key={outcome} class="legend">
            <i class={`swatch tp-${outcome}`} aria-hidden="true" />
            {outcome} {formatRate(lastMinute[k] ?? 0)}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

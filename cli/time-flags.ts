import { UsageError } from "./usage-error.ts";

const unitMs = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** What the time flags accept, said in their errors. */
const accepted = "a duration (e.g. 90s, 15m, 1h30m, 7d) or an ISO 8601 time (e.g. 2025-06-01T12:00:00Z)";

/**
 * The milliseconds of a duration such as "90s", "15m", "1h30m" or "7d" (units
 * ms, s, m, h, d, largest first or in any order), or undefined when `text` is
 * not one.
 */
export function parseDuration(text: string): number | undefined {
  if (!/^(\d+(ms|s|m|h|d))+$/.test(text)) return undefined;
  let total = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+)(ms|s|m|h|d)/g)) {
    total += Number(amount) * unitMs[unit as keyof typeof unitMs];
  }
  return total;
}

/**
 * The time a flag names: an ISO 8601 time as it is, or a duration counted
 * back from `now` ("past": `--since 1h` is an hour ago) or forward ("future":
 * `--until 30m` is in half an hour). Anything else is a UsageError naming the
 * flag and what it accepts.
 */
export function parseTimeFlag(flag: string, value: string, now: Date, direction: "past" | "future"): Date {
  const ms = parseDuration(value);
  if (ms !== undefined) {
    if (ms === 0) throw new UsageError(`--${flag} "${value}" is no time at all: give ${accepted}`);
    return new Date(now.getTime() + (direction === "past" ? -ms : ms));
  }
  const at = /^\d{4}-\d{2}-\d{2}/.test(value) ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(at)) throw new UsageError(`--${flag} "${value}" is not ${accepted}`);
  return new Date(at);
}

/** The units of {@link formatAge}, largest first, with their seconds. */
const ageUnits: readonly (readonly [string, number])[] = [
  ["d", 86_400],
  ["h", 3_600],
  ["m", 60],
  ["s", 1],
];

/**
 * A span of time in at most two units, for tables: "0s", "45s", "3m5s", "1h",
 * "2d3h". Negative spans (clocks apart) read as "0s".
 */
export function formatAge(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  const index = ageUnits.findIndex(([, size]) => seconds >= size);
  const [unit, size] = ageUnits[index] ?? ["s", 1];
  const first = Math.floor(seconds / size);
  const next = ageUnits[index + 1];
  const second = next ? Math.floor((seconds % size) / next[1]) : 0;
  return next && second > 0 ? `${first}${unit}${second}${next[0]}` : `${first}${unit}`;
}

/**
 * When a schedule fires: parse a cron or interval spec, then list its next times. Pure
 * calculation, no I/O; time zones come from `Intl.DateTimeFormat`.
 *
 * ```ts
 * const schedule = parseScheduleSpec({ cron: "0 9 * * MON-FRI", timeZone: "Europe/Paris" });
 * nextTimes(schedule, new Date(), 5); // the next five weekday 09:00 in Paris, as Dates
 * ```
 *
 * Cron has 5 fields (minute hour day-of-month month day-of-week) or 6 (second first). A field
 * is `*`, a number, a range `a-b`, a step `*\/n`, `a/n` or `a-b/n`, or a list of those
 * separated by commas; months take JAN-DEC and days SUN-SAT in any case, and day-of-week 0
 * and 7 are both Sunday. The macros are @yearly (@annually), @monthly, @weekly, @daily
 * (@midnight) and @hourly. As in Vixie cron, when both day-of-month and day-of-week are
 * restricted (neither starts with `*`), a day matches if either matches; otherwise both must.
 * 5-field expressions fire at second 0.
 *
 * The daylight-saving rule, in the schedule's time zone:
 * 1. A local time that does not exist (the clock jumps forward over it) fires once, at the
 *    first instant after the jump: 02:30 on the spring-forward day in Paris fires at 03:00
 *    local (01:00 UTC). Several matches inside the same gap fire once, at that instant.
 * 2. A local time that happens twice (the clock goes back) fires once, at its first
 *    occurrence. Exception: an expression whose hour field is `*` or has a step (`0 * * * *`,
 *    `*\/10 * * * * *`, `0 *\/2 * * *`) has a period in elapsed time, so it fires in both
 *    occurrences.
 * 3. Intervals (`every`) ignore time zones: they are elapsed time from the anchor (default:
 *    the Unix epoch, so every gateway computes the same times).
 *
 * @module
 */

/** Optional bounds of a schedule: it fires at or after `start` and before `end`. */
export interface ScheduleBounds {
  /** First instant the schedule may fire at (inclusive). */
  start?: Date;
  /** Instant the schedule stops firing (exclusive). */
  end?: Date;
}

/** A calendar schedule: a cron expression read in an IANA time zone. */
export interface CronSpec extends ScheduleBounds {
  /** 5 or 6 cron fields, or a macro such as `@daily`. */
  cron: string;
  /**
   * IANA time zone name, such as "Europe/Paris".
   * @default "UTC"
   */
  timeZone?: string;
}

/** An interval schedule: every `every` milliseconds of elapsed time from `anchor`. */
export interface IntervalSpec extends ScheduleBounds {
  /** Period in milliseconds, a whole number of at least 1000. */
  every: number;
  /**
   * Instant the intervals count from (it is itself a scheduled time, if within bounds).
   * @default the Unix epoch
   */
  anchor?: Date;
}

/** What a user writes to define when a schedule fires. */
export type ScheduleSpec = CronSpec | IntervalSpec;

/** The allowed values of one cron field. */
interface CronField {
  /** Allowed values, ascending and unique. */
  readonly values: readonly number[];
  /** True when the field text starts with `*` (unrestricted for the day-of-month/day-of-week rule). */
  readonly star: boolean;
}

interface CronFields {
  readonly second: CronField;
  readonly minute: CronField;
  readonly hour: CronField;
  readonly dayOfMonth: CronField;
  readonly month: CronField;
  readonly dayOfWeek: CronField;
}

/** A validated cron schedule, made by {@link parseScheduleSpec}. */
export interface CronSchedule {
  readonly kind: "cron";
  /** The expression as written. */
  readonly cron: string;
  /** The canonical IANA time zone name. */
  readonly timeZone: string;
  /** True when the period is in elapsed time (hour field `*` or stepped), see the module rule 2. */
  readonly elapsed: boolean;
  readonly fields: CronFields;
  readonly startMs: number;
  readonly endMs: number;
}

/** A validated interval schedule, made by {@link parseScheduleSpec}. */
export interface IntervalSchedule {
  readonly kind: "interval";
  readonly everyMs: number;
  readonly anchorMs: number;
  readonly startMs: number;
  readonly endMs: number;
}

/** A validated schedule, ready for {@link nextTimes} and {@link timesBetween}. */
export type Schedule = CronSchedule | IntervalSchedule;

const secondMs = 1000;
const dayMs = 86_400_000;
const weekMs = 7 * dayMs;
/**
 * Longest wall-clock search for one match. A valid expression matches at least every 8
 * years (Feb 29), but Feb 29 on a given weekday only every 28 (or 40 around a century).
 */
const searchHorizonMs = 50 * 366 * dayMs;

const macros: Readonly<Record<string, string>> = {
  "@yearly": "0 0 0 1 1 *",
  "@annually": "0 0 0 1 1 *",
  "@monthly": "0 0 0 1 * *",
  "@weekly": "0 0 0 * * 0",
  "@daily": "0 0 0 * * *",
  "@midnight": "0 0 0 * * *",
  "@hourly": "0 0 * * * *",
};

interface FieldRule {
  readonly name: string;
  readonly min: number;
  readonly max: number;
  readonly names?: readonly string[];
}

const fieldRules: readonly FieldRule[] = [
  { name: "second", min: 0, max: 59 },
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day-of-month", min: 1, max: 31 },
  {
    name: "month",
    min: 1,
    max: 12,
    names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
  },
  { name: "day-of-week", min: 0, max: 7, names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"] },
];

/** Longest month lengths, January first (February counts its leap day). */
const longestMonth = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Validates a schedule spec and compiles it for {@link nextTimes}. Throws an Error naming the
 * field, the bad text and what is accepted.
 */
export function parseScheduleSpec(spec: ScheduleSpec): Schedule {
  const startMs = boundMs("start", spec.start, Number.NEGATIVE_INFINITY);
  const endMs = boundMs("end", spec.end, Number.POSITIVE_INFINITY);
  if (endMs <= startMs) {
    throw new Error(`schedule end ${spec.end?.toISOString()} must be after start ${spec.start?.toISOString()}`);
  }
  if ("cron" in spec) {
    const fields = parseCron(spec.cron);
    const elapsed = /^\*|\//.test(hourText(spec.cron));
    return {
      kind: "cron",
      cron: spec.cron,
      timeZone: checkTimeZone(spec.timeZone ?? "UTC"),
      elapsed,
      fields,
      startMs,
      endMs,
    };
  }
  if (!Number.isInteger(spec.every) || spec.every < secondMs) {
    throw new Error(`schedule every "${spec.every}": must be a whole number of milliseconds, at least 1000`);
  }
  const anchorMs = boundMs("anchor", spec.anchor, 0);
  return { kind: "interval", everyMs: spec.every, anchorMs, startMs, endMs };
}

/**
 * The next `count` times the schedule fires strictly after `after`, in order, within its
 * start and end bounds (fewer when the end comes first).
 */
export function nextTimes(schedule: Schedule, after: Date, count: number): Date[] {
  if (!Number.isInteger(count) || count < 0) throw new Error(`count "${count}": must be a whole number, 0 or more`);
  return collect(schedule, boundMs("after", after, 0) + 1, Number.POSITIVE_INFINITY, count);
}

/**
 * The times the schedule fires in (from, to], in order, at most `limit` of them: what a
 * scheduler catches up on after downtime.
 */
export function timesBetween(schedule: Schedule, from: Date, to: Date, limit: number): Date[] {
  if (!Number.isInteger(limit) || limit < 0) throw new Error(`limit "${limit}": must be a whole number, 0 or more`);
  return collect(schedule, boundMs("from", from, 0) + 1, boundMs("to", to, 0), limit);
}

function collect(schedule: Schedule, fromMs: number, toMs: number, limit: number): Date[] {
  const times: Date[] = [];
  let lower = Math.max(fromMs, schedule.startMs);
  while (times.length < limit) {
    const t = schedule.kind === "cron" ? nextCron(schedule, lower) : nextInterval(schedule, lower);
    if (t >= schedule.endMs || t > toMs) break;
    times.push(new Date(t));
    lower = t + 1;
  }
  return times;
}

function boundMs(name: string, date: Date | undefined, fallback: number): number {
  if (date === undefined) return fallback;
  const ms = date instanceof Date ? date.getTime() : Number.NaN;
  if (Number.isNaN(ms)) throw new Error(`schedule ${name} "${String(date)}": must be a valid Date`);
  return ms;
}

function checkTimeZone(timeZone: string): string {
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone }).resolvedOptions().timeZone;
  } catch {
    throw new Error(`time zone "${timeZone}": not an IANA time zone (for example "Europe/Paris" or "UTC")`);
  }
}

function expand(cron: string): string[] {
  const trimmed = cron.trim();
  const macro = macros[trimmed.toLowerCase()];
  if (macro !== undefined) return macro.split(" ");
  const texts = trimmed.split(/\s+/);
  if (texts.length === 5) return ["0", ...texts];
  if (texts.length === 6) return texts;
  throw new Error(
    `cron "${cron}": must have 5 fields (minute hour day-of-month month day-of-week), 6 (second first), ` +
      `or be one of ${Object.keys(macros).join(", ")}`,
  );
}

function hourText(cron: string): string {
  return expand(cron)[2] ?? "";
}

function parseCron(cron: string): CronFields {
  const texts = expand(cron);
  const offset = texts.length === cron.trim().split(/\s+/).length ? 1 : 0;
  const parsed = texts.map((text, i) => parseField(text, fieldRules[i] as FieldRule, i + offset));
  const [second, minute, hour, dayOfMonth, month, rawDayOfWeek] = parsed as [
    CronField,
    CronField,
    CronField,
    CronField,
    CronField,
    CronField,
  ];
  const dayOfWeek = { star: rawDayOfWeek.star, values: unique(rawDayOfWeek.values.map((d) => d % 7)) };
  const fields = { second, minute, hour, dayOfMonth, month, dayOfWeek };
  if (!canMatch(fields))
    throw new Error(`cron "${cron}" never matches: none of its months has any of its days of the month`);
  return fields;
}

/** Whether some date matches; weekdays of any valid (month, day) cycle through all seven over the years. */
function canMatch(fields: CronFields): boolean {
  if (!fields.dayOfMonth.star && !fields.dayOfWeek.star) return true;
  return fields.month.values.some((m) => fields.dayOfMonth.values.some((d) => d <= (longestMonth[m - 1] ?? 0)));
}

function parseField(text: string, rule: FieldRule, position: number): CronField {
  const values: number[] = [];
  for (const part of text.split(",")) {
    const fail = (why: string): Error => new Error(`cron field ${position} (${rule.name}) "${part}": ${why}`);
    const [range = "", stepText, extra] = part.split("/");
    if (extra !== undefined) throw fail("has more than one /");
    const step = stepText === undefined ? 1 : Number(stepText);
    if (stepText !== undefined && (!/^\d+$/.test(stepText) || step < 1))
      throw fail("step must be a whole number of 1 or more");
    const [low, high] = parseRange(range, rule, stepText !== undefined, fail);
    if (low > high) throw fail(`range start ${low} is after its end ${high}`);
    for (let v = low; v <= high; v += step) values.push(v);
  }
  return { star: text.startsWith("*"), values: unique(values) };
}

function parseRange(range: string, rule: FieldRule, stepped: boolean, fail: (why: string) => Error): [number, number] {
  if (range === "*") return [rule.min, rule.max];
  const [lowText = "", highText, extra] = range.split("-");
  if (extra !== undefined) throw fail("has more than one -");
  const low = parseValue(lowText, rule, fail);
  if (highText === undefined) return [low, stepped ? rule.max : low];
  return [low, parseValue(highText, rule, fail)];
}

function parseValue(text: string, rule: FieldRule, fail: (why: string) => Error): number {
  const named = rule.names?.indexOf(text.toUpperCase()) ?? -1;
  if (named >= 0) return named + rule.min;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < rule.min || value > rule.max) {
    const names = rule.names === undefined ? "" : ` or ${rule.names[0]}-${rule.names[rule.names.length - 1]}`;
    throw fail(`must be ${rule.min}-${rule.max}${names}`);
  }
  return value;
}

function unique(values: readonly number[]): number[] {
  return [...new Set(values)].sort((a, b) => a - b);
}

function nextInterval(schedule: IntervalSchedule, lower: number): number {
  const steps = Math.ceil((lower - schedule.anchorMs) / schedule.everyMs);
  return schedule.anchorMs + steps * schedule.everyMs;
}

/** The first firing instant at or after `lower`, applying the daylight-saving rule. */
function nextCron(schedule: CronSchedule, lower: number): number {
  const zone = zoneOffsets(schedule.timeZone);
  let cursor = lower;
  let offset = zone(cursor);
  // A forward jump exactly at the cursor: wall times it skipped fire now (rule 1).
  const before = zone(cursor - 1);
  if (before < offset && nextWall(schedule, cursor + before) < cursor + offset) return cursor;
  if (!schedule.elapsed) cursor = pastRepeatedHour(zone, cursor, offset);
  for (;;) {
    const wall = nextWall(schedule, cursor + offset);
    const candidate = wall - offset;
    const change = firstChange(zone, cursor, candidate, offset);
    if (change === undefined) return candidate;
    const after = zone(change);
    // The first match is at or past the jump: it fires at the jump if the jump skipped it.
    if (after > offset && wall < change + after) return change;
    cursor = after < offset && !schedule.elapsed ? change + offset - after : change;
    offset = after;
  }
}

/** Moves a cursor inside the second occurrence of a repeated hour to its end (rule 2). */
function pastRepeatedHour(zone: (t: number) => number, cursor: number, offset: number): number {
  const earlier = zone(cursor - dayMs);
  if (earlier <= offset) return cursor;
  const change = firstChange(zone, cursor - dayMs, cursor, earlier) ?? cursor;
  return Math.max(cursor, change + earlier - offset);
}

/** The first whole second in (from, to] whose offset differs from `offset`, sampling weekly. */
function firstChange(zone: (t: number) => number, from: number, to: number, offset: number): number | undefined {
  for (let a = from; a < to; a += weekMs) {
    const b = Math.min(a + weekMs, to);
    if (zone(b) === offset) continue;
    let low = Math.floor(a / secondMs);
    let high = Math.floor(b / secondMs);
    while (high - low > 1) {
      const mid = Math.floor((low + high) / 2);
      if (zone(mid * secondMs) === offset) low = mid;
      else high = mid;
    }
    return high * secondMs;
  }
  return undefined;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** A function giving the zone's UTC offset in milliseconds at an instant (to the second). */
function zoneOffsets(timeZone: string): (t: number) => number {
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
      second: "numeric",
    });
    formatters.set(timeZone, formatter);
  }
  const format = formatter;
  return (t) => {
    const instant = Math.floor(t / secondMs) * secondMs;
    const parts: Record<string, number> = {};
    for (const part of format.formatToParts(instant)) parts[part.type] = Number(part.value);
    const wall = Date.UTC(parts.year ?? 0, (parts.month ?? 1) - 1, parts.day, parts.hour, parts.minute, parts.second);
    return wall - instant;
  };
}

/**
 * The first matching wall-clock time at or after `from`, both as milliseconds of a UTC
 * calendar. Jumps field by field, so sparse expressions cost a few steps per month.
 */
function nextWall(schedule: CronSchedule, from: number): number {
  const { second, minute, hour, month } = schedule.fields;
  let t = Math.ceil(from / secondMs) * secondMs;
  while (t <= from + searchHorizonMs) {
    const d = new Date(t);
    const y = d.getUTCFullYear();
    const mo = d.getUTCMonth();
    const day = d.getUTCDate();
    const m = atOrAfter(month, mo + 1);
    if (m !== mo + 1) {
      t = m === undefined ? Date.UTC(y + 1, first(month) - 1, 1) : Date.UTC(y, m - 1, 1);
      continue;
    }
    if (!dayMatches(schedule.fields, d)) {
      t = Date.UTC(y, mo, day + 1);
      continue;
    }
    const h = atOrAfter(hour, d.getUTCHours());
    if (h !== d.getUTCHours()) {
      t = h === undefined ? Date.UTC(y, mo, day + 1) : Date.UTC(y, mo, day, h);
      continue;
    }
    const mi = atOrAfter(minute, d.getUTCMinutes());
    if (mi !== d.getUTCMinutes()) {
      t = mi === undefined ? Date.UTC(y, mo, day, h + 1) : Date.UTC(y, mo, day, h, mi);
      continue;
    }
    const s = atOrAfter(second, d.getUTCSeconds());
    if (s !== d.getUTCSeconds()) {
      t = s === undefined ? Date.UTC(y, mo, day, h, mi + 1) : Date.UTC(y, mo, day, h, mi, s);
      continue;
    }
    return t;
  }
  throw new Error(`cron "${schedule.cron}" never matches within 50 years of ${new Date(from).toISOString()}`);
}

function dayMatches(fields: CronFields, d: Date): boolean {
  const byMonth = fields.dayOfMonth.values.includes(d.getUTCDate());
  const byWeek = fields.dayOfWeek.values.includes(d.getUTCDay());
  return fields.dayOfMonth.star || fields.dayOfWeek.star ? byMonth && byWeek : byMonth || byWeek;
}

function atOrAfter(field: CronField, value: number): number | undefined {
  return field.values.find((v) => v >= value);
}

function first(field: CronField): number {
  return field.values[0] ?? 0;
}

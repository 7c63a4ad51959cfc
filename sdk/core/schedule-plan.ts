import { createHash } from "node:crypto";
import { type Duration, timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { Schedule } from "../../gen/taskwire/v1/schedule_service_pb.ts";
import { OverlapPolicy, type ScheduleSpec } from "../../gen/taskwire/v1/task_pb.ts";
import { parseScheduleSpec, type Schedule as Times, timesBetween } from "./schedule-times.ts";
import { TaskError } from "./task-error.ts";

/**
 * What a schedule does at each of its times, as pure decisions: which time comes
 * next, whether a time fires, is skipped or waits, and by how much it is jittered.
 * The stores and the workers that fire schedules (sdk/nats/schedule-store.ts,
 * worker-runtime/schedule-ticker.ts) act on them; docs/semantics.md#schedules
 * states the rules.
 */

/** A schedule's definition, checked and compiled. */
export interface SchedulePlan {
  readonly times: Times;
  readonly overlap: OverlapPolicy;
  readonly catchupMs: number;
  readonly jitterMs: number;
}

export const defaultCatchupMs = 3_600_000;
export const minCatchupMs = 10_000;
export const maxJitterMs = 3_600_000;
/** How often a time buffered behind an unfinished task looks again. */
export const bufferRecheckMs = 1_000;
const idPattern = /^[A-Za-z0-9_-]{1,64}$/;

/** The KV key of a schedule: `<worker type>.<schedule id>`. */
export function scheduleKey(workerType: string, scheduleId: string): string {
  return `${workerType}.${scheduleId}`;
}

/** The idempotency key of the task a schedule submits for a time: one task per (schedule, time). */
export function scheduledTaskKey(scheduleId: string, time: Date): string {
  return `schedule/${scheduleId}/${time.toISOString()}`;
}

/** Checks a schedule id, naming the problem. */
export function checkScheduleId(scheduleId: string): void {
  if (!idPattern.test(scheduleId))
    throw invalid(
      `schedule_id "${scheduleId.slice(0, 80)}": must be 1 to 64 letters, digits, '-' or '_' (it is part of a NATS subject)`,
    );
}

/**
 * Checks a schedule's definition (not its task's payload: that is the task
 * registry's to check) and compiles it. Every error is INVALID_ARGUMENT naming the field.
 */
export function planOf(schedule: Schedule): SchedulePlan {
  checkScheduleId(schedule.scheduleId);
  if (!schedule.spec) throw invalid("spec: required (a cron expression or an interval)");
  const times = compileSpec(schedule.spec);
  const catchupMs = schedule.catchupWindow ? durationMs(schedule.catchupWindow, "catchup_window") : defaultCatchupMs;
  if (catchupMs < minCatchupMs) throw invalid(`catchup_window ${catchupMs} ms: must be at least 10s`);
  const jitterMs = schedule.spec.jitter ? durationMs(schedule.spec.jitter, "spec.jitter") : 0;
  if (jitterMs > maxJitterMs) throw invalid(`spec.jitter ${jitterMs} ms: must be at most 1h`);
  if (times.kind === "interval" && jitterMs >= times.everyMs)
    throw invalid(`spec.jitter ${jitterMs} ms: must be shorter than the interval (${times.everyMs} ms)`);
  if (!(Object.values(OverlapPolicy) as number[]).includes(schedule.overlap))
    throw invalid(`overlap ${schedule.overlap}: not an OverlapPolicy`);
  return {
    times,
    overlap: schedule.overlap === OverlapPolicy.UNSPECIFIED ? OverlapPolicy.SKIP : schedule.overlap,
    catchupMs,
    jitterMs,
  };
}

/** Compiles a spec (cron or interval, with its bounds); INVALID_ARGUMENT naming the field. */
export function compileSpec(spec: ScheduleSpec): Times {
  const bounds = {
    start: spec.startAt ? timestampDate(spec.startAt) : undefined,
    end: spec.endAt ? timestampDate(spec.endAt) : undefined,
  };
  if (bounds.start && bounds.end && bounds.end <= bounds.start)
    throw invalid("spec.end_at: must be after spec.start_at");
  if (spec.cron !== "" && spec.every) throw invalid("spec: set either cron or every, not both");
  try {
    if (spec.cron !== "") return parseScheduleSpec({ cron: spec.cron, timeZone: spec.timeZone || "UTC", ...bounds });
    if (!spec.every) throw invalid("spec: set cron (with time_zone) or every");
    if (spec.timeZone !== "") throw invalid("spec.time_zone: only a cron expression has a time zone");
    return parseScheduleSpec({ every: durationMs(spec.every, "spec.every"), anchor: bounds.start, ...bounds });
  } catch (error) {
    if (error instanceof TaskError) throw error;
    throw invalid(`spec.${(error as Error).message}`);
  }
}

/**
 * How late a schedule's time fires: a fixed fraction of the jitter per schedule
 * and time, the same wherever it is computed.
 */
export function jitterMsOf(plan: SchedulePlan, workerType: string, scheduleId: string, time: Date): number {
  if (plan.jitterMs === 0) return 0;
  const digest = createHash("sha256").update(`${workerType}.${scheduleId}@${time.toISOString()}`).digest();
  return digest.readUInt32BE(0) % (plan.jitterMs + 1);
}

/** Where the chain of times goes after one: the next time to arm, and the times passed over. */
export interface NextTime {
  /** The next time to arm; undefined when the schedule has ended. */
  readonly next: Date | undefined;
  /** Times skipped on the way (past the catch-up window, or behind a buffered one). */
  readonly skipped: number;
}

/** Times counted one by one when skipping; beyond that the count is a lower bound. */
const countLimit = 100_000;

/**
 * The next time after `afterMs`. Times older than the catch-up window are
 * skipped (counted) and the chain resumes at the first one within it.
 */
export function nextTime(plan: SchedulePlan, afterMs: number, nowMs: number): NextTime {
  const oldest = nowMs - plan.catchupMs;
  let skipped = 0;
  let from = afterMs;
  if (from < oldest - 1) {
    skipped = timesBetween(plan.times, new Date(from), new Date(oldest - 1), countLimit).length;
    from = Math.max(from, oldest - 1);
  }
  const [next] = timesBetween(plan.times, new Date(from), new Date(8.64e15), 1);
  return { next, skipped };
}

/** What to do with a time that has come (its tick). */
export type TickDecision =
  /** Submit the time's task, then arm `next`. */
  | { readonly action: "fire"; readonly next: NextTime }
  /** Submit nothing (counted as skipped), then arm `next`. */
  | { readonly action: "skip"; readonly reason: "overlap" | "late"; readonly next: NextTime }
  /** Look again at `recheckAt`: the previous task is unfinished (BUFFER_ONE). */
  | { readonly action: "buffer"; readonly recheckAt: Date };

/**
 * Decides a tick of time `timeMs`, seen at `nowMs`, with the task of the
 * previous firing unfinished or not.
 * - Later than the catch-up window: skipped.
 * - Previous task unfinished: SKIP skips; BUFFER_ONE waits (rechecking); ALLOW_ALL fires.
 * - After a firing, BUFFER_ONE goes on from now (the times that passed while it
 *   waited are skipped); SKIP and ALLOW_ALL go on from the time itself, so the
 *   times missed in downtime fire one by one, within the catch-up window.
 */
export function decideTick(
  plan: SchedulePlan,
  timeMs: number,
  nowMs: number,
  previousUnfinished: boolean,
): TickDecision {
  if (nowMs - timeMs > plan.catchupMs) return { action: "skip", reason: "late", next: nextTime(plan, timeMs, nowMs) };
  if (previousUnfinished) {
    if (plan.overlap === OverlapPolicy.SKIP)
      return { action: "skip", reason: "overlap", next: nextTime(plan, timeMs, nowMs) };
    if (plan.overlap === OverlapPolicy.BUFFER_ONE)
      return { action: "buffer", recheckAt: new Date(nowMs + bufferRecheckMs) };
  }
  if (plan.overlap === OverlapPolicy.BUFFER_ONE && nowMs > timeMs) {
    const passed = timesBetween(plan.times, new Date(timeMs), new Date(nowMs), countLimit).length;
    const next = nextTime(plan, nowMs, nowMs);
    return { action: "fire", next: { next: next.next, skipped: next.skipped + passed } };
  }
  return { action: "fire", next: nextTime(plan, timeMs, nowMs) };
}

function durationMs(duration: Duration, field: string): number {
  const ms = Number(duration.seconds) * 1000 + duration.nanos / 1e6;
  if (!Number.isFinite(ms) || ms <= 0) throw invalid(`${field}: must be positive`);
  return Math.round(ms);
}

function invalid(message: string): TaskError {
  return new TaskError(message, Code.InvalidArgument);
}

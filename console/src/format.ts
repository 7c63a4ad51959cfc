import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";
import { useEffect, useState } from "preact/hooks";
import { ErrorCodeSchema, TaskState, TaskStateSchema } from "../../gen/taskwire/v1/task_pb.ts";

/** A count, with the reader's digit grouping. */
export function formatCount(count: bigint | number): string {
  return count.toLocaleString();
}

/** A span of time, coarse and short: "42s", "3m 05s", "2h 10m", "3d 4h". */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** A timestamp as the reader's local date and time, or "—" when unset. */
export function formatTime(timestamp: Timestamp | undefined): string {
  return timestamp ? formatMs(timestampMs(timestamp)) : "—";
}

/** Milliseconds since the epoch as the reader's local date and time. */
export function formatMs(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

/** How long ago a timestamp was, e.g. "12s ago"; "—" when unset. */
export function formatAgo(timestamp: Timestamp | undefined, now: number): string {
  return timestamp ? `${formatAge(now - timestampMs(timestamp))} ago` : "—";
}

/** A rate per second, with a precision fit for its size. */
export function formatRate(perSecond: number): string {
  const digits = perSecond >= 100 ? 0 : perSecond >= 10 ? 1 : 2;
  return `${perSecond.toFixed(digits)}/s`;
}

/** A task state's short name, e.g. "RUNNING". */
export function stateName(state: TaskState): string {
  return TaskStateSchema.values.find((v) => v.number === state)?.localName ?? String(state);
}

/** The states a task may be listed in, in lifecycle order. */
export const listedStates: readonly TaskState[] = [
  TaskState.PENDING,
  TaskState.SCHEDULED,
  TaskState.RUNNING,
  TaskState.RETRYING,
  TaskState.WAITING,
  TaskState.SUCCEEDED,
  TaskState.FAILED,
  TaskState.CANCELLED,
  TaskState.EXPIRED,
  TaskState.INCOMPLETE,
];

const terminalStates: ReadonlySet<TaskState> = new Set([
  TaskState.SUCCEEDED,
  TaskState.FAILED,
  TaskState.CANCELLED,
  TaskState.EXPIRED,
  TaskState.INCOMPLETE,
]);

/** Whether a task in this state has ended for good (WAITING, numbered after them, has not). */
export function isTerminal(state: TaskState): boolean {
  return terminalStates.has(state);
}

/** An error code's short name, e.g. "DEADLINE_EXCEEDED". */
export function errorCodeName(code: number): string {
  return ErrorCodeSchema.values.find((v) => v.number === code)?.localName ?? String(code);
}

/** The time now, in milliseconds, renewed every `intervalMs`: ages and heartbeats tick with it. */
export function useNow(intervalMs = 1000): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}

import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { ScheduleSchema } from "../../gen/taskwire/v1/schedule_service_pb.ts";
import { OverlapPolicy } from "../../gen/taskwire/v1/task_pb.ts";
import { decideTick, jitterMsOf, nextTime, planOf } from "./schedule-plan.ts";

const plan = (overlap: OverlapPolicy, everyMs = 60_000, catchupMs = 600_000, jitterMs = 0) =>
  planOf(
    create(ScheduleSchema, {
      workerType: "probe",
      scheduleId: "s",
      spec: { every: durationFromMs(everyMs), ...(jitterMs ? { jitter: durationFromMs(jitterMs) } : {}) },
      overlap,
      catchupWindow: durationFromMs(catchupMs),
    }),
  );
const minute = 60_000;
const t0 = Date.UTC(2026, 11, 5, 12, 0, 0);

describe("decideTick", () => {
  it("fires on time and goes on from the time itself", () => {
    expect(decideTick(plan(OverlapPolicy.SKIP), t0, t0 + 5, false)).toEqual({
      action: "fire",
      next: { next: new Date(t0 + minute), skipped: 0 },
    });
  });

  it("skips a time later than the catch-up window, and resumes at the first time within it", () => {
    const now = t0 + 30 * minute;
    expect(decideTick(plan(OverlapPolicy.ALLOW_ALL), t0, now, false)).toEqual({
      action: "skip",
      reason: "late",
      // Window 10 minutes: times t0+1 .. t0+19 are skipped, t0+20 is the first within it.
      next: { next: new Date(t0 + 20 * minute), skipped: 19 },
    });
  });

  it("applies the overlap policy while the previous task is unfinished", () => {
    expect(decideTick(plan(OverlapPolicy.SKIP), t0, t0, true)).toMatchObject({ action: "skip", reason: "overlap" });
    expect(decideTick(plan(OverlapPolicy.BUFFER_ONE), t0, t0, true)).toEqual({
      action: "buffer",
      recheckAt: new Date(t0 + 1_000),
    });
    expect(decideTick(plan(OverlapPolicy.ALLOW_ALL), t0, t0, true)).toMatchObject({ action: "fire" });
  });

  it("BUFFER_ONE fires a buffered time late and skips the times that passed while it waited", () => {
    expect(decideTick(plan(OverlapPolicy.BUFFER_ONE), t0, t0 + 2.5 * minute, false)).toEqual({
      action: "fire",
      next: { next: new Date(t0 + 3 * minute), skipped: 2 },
    });
  });
});

describe("nextTime and jitter", () => {
  it("ends with the schedule", () => {
    const ending = planOf(
      create(ScheduleSchema, {
        workerType: "probe",
        scheduleId: "s",
        spec: { every: durationFromMs(minute), endAt: { seconds: BigInt((t0 + minute) / 1000) } },
      }),
    );
    expect(nextTime(ending, t0, t0)).toEqual({ next: undefined, skipped: 0 });
  });

  it("is fixed per schedule and time, and within the jitter", () => {
    const jittered = plan(OverlapPolicy.SKIP, minute, 600_000, 30_000);
    const a = jitterMsOf(jittered, "probe", "s", new Date(t0));
    expect(jitterMsOf(jittered, "probe", "s", new Date(t0))).toBe(a);
    const spread = new Set(
      Array.from({ length: 20 }, (_, i) => jitterMsOf(jittered, "probe", "s", new Date(t0 + i * minute))),
    );
    expect(spread.size).toBeGreaterThan(10);
    for (const j of spread) expect(j >= 0 && j <= 30_000).toBe(true);
  });

  it("refuses a jitter as long as the interval, and a catch-up window under 10 s", () => {
    expect(() => plan(OverlapPolicy.SKIP, minute, 600_000, minute)).toThrow(/spec\.jitter .*shorter than the interval/);
    expect(() => plan(OverlapPolicy.SKIP, minute, 5_000)).toThrow(/catchup_window .*at least 10s/);
  });
});

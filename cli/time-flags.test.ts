import { describe, expect, it } from "vitest";
import { formatAge, parseDuration, parseTimeFlag } from "./time-flags.ts";
import { UsageError } from "./usage-error.ts";

const now = new Date("2025-06-01T12:00:00.000Z");

describe("time flags", () => {
  it("reads durations in ms, s, m, h and d, alone or together", () => {
    expect(parseDuration("90s")).toBe(90_000);
    expect(parseDuration("1h")).toBe(3_600_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("7d")).toBe(7 * 86_400_000);
    expect(parseDuration("250ms")).toBe(250);
    for (const text of ["", "1", "h", "1.5h", "-1h", "1 h", "1w", "1h x"]) expect(parseDuration(text)).toBeUndefined();
  });

  it("counts a duration back for --since and forward for --until, and takes ISO times as they are", () => {
    expect(parseTimeFlag("since", "1h", now, "past").toISOString()).toBe("2025-06-01T11:00:00.000Z");
    expect(parseTimeFlag("until", "30m", now, "future").toISOString()).toBe("2025-06-01T12:30:00.000Z");
    expect(parseTimeFlag("since", "2025-05-31T08:00:00Z", now, "past").toISOString()).toBe("2025-05-31T08:00:00.000Z");
    expect(parseTimeFlag("until", "2025-06-02", now, "future").toISOString()).toBe("2025-06-02T00:00:00.000Z");
  });

  it("names the flag and what it accepts when the value is neither", () => {
    const bad = () => parseTimeFlag("since", "yesterday", now, "past");
    expect(bad).toThrow(UsageError);
    expect(bad).toThrow(
      '--since "yesterday" is not a duration (e.g. 90s, 15m, 1h30m, 7d) or an ISO 8601 time (e.g. 2025-06-01T12:00:00Z)',
    );
    expect(() => parseTimeFlag("until", "2025-13-45", now, "future")).toThrow(/--until "2025-13-45" is not/);
    expect(() => parseTimeFlag("until", "0s", now, "future")).toThrow(/--until "0s" is no time at all/);
  });

  it("writes ages in at most two units", () => {
    expect(formatAge(0)).toBe("0s");
    expect(formatAge(999)).toBe("0s");
    expect(formatAge(-5_000)).toBe("0s");
    expect(formatAge(45_000)).toBe("45s");
    expect(formatAge(185_000)).toBe("3m5s");
    expect(formatAge(3_600_000)).toBe("1h");
    expect(formatAge(3_600_000 + 59_000)).toBe("1h");
    expect(formatAge(3_900_000)).toBe("1h5m");
    expect(formatAge(2 * 86_400_000 + 3 * 3_600_000 + 7_000)).toBe("2d3h");
  });
});

import { describe, expect, it } from "vitest";
import { nextTimes, parseScheduleSpec, type ScheduleSpec, timesBetween } from "./schedule-times.ts";

const iso = (dates: readonly Date[]): string[] => dates.map((d) => d.toISOString());
const at = (text: string): Date => new Date(text);

/** The next `count` times of a spec after `after`, as ISO strings. */
function next(spec: ScheduleSpec, after: string, count: number): string[] {
  return iso(nextTimes(parseScheduleSpec(spec), at(after), count));
}

describe("cron field syntax in UTC", () => {
  const newYear = "2025-01-01T00:00:00.000Z"; // a Wednesday
  it.each([
    ["* * * * *", ["2025-01-01T00:01", "2025-01-01T00:02", "2025-01-01T00:03"]],
    ["5 * * * *", ["2025-01-01T00:05", "2025-01-01T01:05", "2025-01-01T02:05"]],
    ["10-12 * * * *", ["2025-01-01T00:10", "2025-01-01T00:11", "2025-01-01T00:12", "2025-01-01T01:10"]],
    ["*/20 * * * *", ["2025-01-01T00:20", "2025-01-01T00:40", "2025-01-01T01:00"]],
    ["10-50/20 * * * *", ["2025-01-01T00:10", "2025-01-01T00:30", "2025-01-01T00:50", "2025-01-01T01:10"]],
    ["5/20 * * * *", ["2025-01-01T00:05", "2025-01-01T00:25", "2025-01-01T00:45", "2025-01-01T01:05"]],
    ["0,30 9,17 * * *", ["2025-01-01T09:00", "2025-01-01T09:30", "2025-01-01T17:00", "2025-01-01T17:30"]],
    ["0 0 1 * *", ["2025-02-01T00:00", "2025-03-01T00:00", "2025-04-01T00:00"]],
    ["0 0 1 jan,Jul *", ["2025-07-01T00:00", "2026-01-01T00:00", "2026-07-01T00:00"]],
    ["0 0 1 FEB-apr *", ["2025-02-01T00:00", "2025-03-01T00:00", "2025-04-01T00:00", "2026-02-01T00:00"]],
    ["0 0 * * MON", ["2025-01-06T00:00", "2025-01-13T00:00", "2025-01-20T00:00"]],
    ["0 0 * * 0", ["2025-01-05T00:00", "2025-01-12T00:00"]],
    ["0 0 * * 7", ["2025-01-05T00:00", "2025-01-12T00:00"]],
    ["0 0 * * sun", ["2025-01-05T00:00", "2025-01-12T00:00"]],
    ["0 0 * * mon-fri", ["2025-01-02T00:00", "2025-01-03T00:00", "2025-01-06T00:00"]],
    ["0 12 * * 5-7", ["2025-01-03T12:00", "2025-01-04T12:00", "2025-01-05T12:00", "2025-01-10T12:00"]],
    ["*/15 * * * * *", ["2025-01-01T00:00:15", "2025-01-01T00:00:30", "2025-01-01T00:00:45", "2025-01-01T00:01:00"]],
    ["30 0 0 * * *", ["2025-01-01T00:00:30", "2025-01-02T00:00:30"]],
    ["  0   9 * * *  ", ["2025-01-01T09:00", "2025-01-02T09:00"]],
  ])("%s", (cron, expected) => {
    expect(next({ cron }, newYear, expected.length)).toEqual(expected.map((t) => at(`${t}Z`).toISOString()));
  });

  it.each([
    ["@yearly", "2026-01-01T00:00"],
    ["@annually", "2026-01-01T00:00"],
    ["@monthly", "2025-02-01T00:00"],
    ["@weekly", "2025-01-05T00:00"],
    ["@daily", "2025-01-02T00:00"],
    ["@midnight", "2025-01-02T00:00"],
    ["@hourly", "2025-01-01T01:00"],
    ["@DAILY", "2025-01-02T00:00"],
  ])("macro %s", (cron, expected) => {
    expect(next({ cron }, newYear, 1)).toEqual([at(`${expected}Z`).toISOString()]);
  });

  it("fires strictly after `after`, to the millisecond", () => {
    expect(next({ cron: "5 * * * *" }, "2025-01-01T00:05:00.000Z", 1)).toEqual(["2025-01-01T01:05:00.000Z"]);
    expect(next({ cron: "5 * * * *" }, "2025-01-01T00:04:59.999Z", 1)).toEqual(["2025-01-01T00:05:00.000Z"]);
    expect(next({ cron: "* * * * * *" }, "2025-01-01T00:00:00.500Z", 1)).toEqual(["2025-01-01T00:00:01.000Z"]);
  });

  it("returns nothing for a count of 0", () => {
    expect(next({ cron: "* * * * *" }, newYear, 0)).toEqual([]);
  });
});

describe("day-of-month and day-of-week", () => {
  it("match either when both are restricted (Vixie cron)", () => {
    expect(next({ cron: "0 0 13 * FRI" }, "2025-01-01T00:00:00Z", 4)).toEqual([
      "2025-01-03T00:00:00.000Z",
      "2025-01-10T00:00:00.000Z",
      "2025-01-13T00:00:00.000Z",
      "2025-01-17T00:00:00.000Z",
    ]);
  });

  it("must both match when one starts with *", () => {
    expect(next({ cron: "0 0 */2 * FRI" }, "2025-01-01T00:00:00Z", 3)).toEqual([
      "2025-01-03T00:00:00.000Z",
      "2025-01-17T00:00:00.000Z",
      "2025-01-31T00:00:00.000Z",
    ]);
  });

  it("fires on Feb 29 only in leap years, skipping 2100", () => {
    expect(next({ cron: "0 0 29 2 *" }, "2025-01-01T00:00:00Z", 3)).toEqual([
      "2028-02-29T00:00:00.000Z",
      "2032-02-29T00:00:00.000Z",
      "2036-02-29T00:00:00.000Z",
    ]);
    expect(next({ cron: "0 0 29 2 *" }, "2097-01-01T00:00:00Z", 1)).toEqual(["2104-02-29T00:00:00.000Z"]);
  });

  it("skips months without the day", () => {
    expect(next({ cron: "0 0 31 * *" }, "2025-01-01T00:00:00Z", 5)).toEqual([
      "2025-01-31T00:00:00.000Z",
      "2025-03-31T00:00:00.000Z",
      "2025-05-31T00:00:00.000Z",
      "2025-07-31T00:00:00.000Z",
      "2025-08-31T00:00:00.000Z",
    ]);
    expect(next({ cron: "0 0 30 * *" }, "2025-01-31T00:00:00Z", 2)).toEqual([
      "2025-03-30T00:00:00.000Z",
      "2025-04-30T00:00:00.000Z",
    ]);
  });
});

describe("rare and bad inputs", () => {
  it("finds Feb 29 on a Sunday, decades apart", () => {
    const schedule = parseScheduleSpec({ cron: "0 0 29 2 */7" });
    expect(nextTimes(schedule, new Date("2026-01-01T00:00:00Z"), 2).map((d) => d.toISOString())).toEqual([
      "2032-02-29T00:00:00.000Z",
      "2060-02-29T00:00:00.000Z",
    ]);
  });

  it("refuses an invalid Date to start from, naming it", () => {
    const schedule = parseScheduleSpec({ every: 60_000 });
    expect(() => nextTimes(schedule, new Date("not a date"), 1)).toThrow(/after "Invalid Date": must be a valid Date/);
    expect(() => timesBetween(schedule, new Date(0), new Date(Number.NaN), 1)).toThrow(/to "Invalid Date"/);
  });
});

describe("bounds and catch-up", () => {
  it("fires at or after start and before end", () => {
    const spec = { cron: "0 0 1 * *", start: at("2025-03-01T00:00:00Z"), end: at("2025-05-01T00:00:00Z") };
    expect(next(spec, "2025-01-01T00:00:00Z", 10)).toEqual(["2025-03-01T00:00:00.000Z", "2025-04-01T00:00:00.000Z"]);
  });

  it("lists the times in (from, to] up to a limit", () => {
    const schedule = parseScheduleSpec({ cron: "0 * * * *" });
    const from = at("2025-01-01T00:00:00Z");
    expect(iso(timesBetween(schedule, from, at("2025-01-01T03:00:00Z"), 10))).toEqual([
      "2025-01-01T01:00:00.000Z",
      "2025-01-01T02:00:00.000Z",
      "2025-01-01T03:00:00.000Z",
    ]);
    expect(timesBetween(schedule, from, at("2025-01-02T00:00:00Z"), 2)).toHaveLength(2);
  });
});

describe("intervals", () => {
  it("count elapsed time from the Unix epoch by default", () => {
    expect(next({ every: 60_000 }, "2025-01-01T00:00:30Z", 2)).toEqual([
      "2025-01-01T00:01:00.000Z",
      "2025-01-01T00:02:00.000Z",
    ]);
  });

  it("count from the anchor, within bounds", () => {
    const spec = { every: 3_600_000, anchor: at("2025-01-01T00:00:10Z"), end: at("2025-01-01T02:00:10Z") };
    expect(next(spec, "2024-12-31T23:30:00Z", 5)).toEqual(["2025-01-01T00:00:10.000Z", "2025-01-01T01:00:10.000Z"]);
  });

  it("ignore daylight saving (rule 3)", () => {
    expect(next({ every: 3_600_000 }, "2025-03-30T00:30:00Z", 3)).toEqual([
      "2025-03-30T01:00:00.000Z",
      "2025-03-30T02:00:00.000Z",
      "2025-03-30T03:00:00.000Z",
    ]);
  });
});

describe("the daylight-saving rule", () => {
  it.each([
    // Rule 1: a nonexistent local time fires once, at the first instant after the jump.
    [
      "Paris spring gap",
      "30 2 * * *",
      "Europe/Paris",
      "2025-03-29T12:00Z",
      ["2025-03-30T01:00", "2025-03-31T00:30", "2025-04-01T00:30"],
    ],
    [
      "Paris several matches in the gap",
      "*/15 2 * * *",
      "Europe/Paris",
      "2025-03-29T23:00Z",
      ["2025-03-30T01:00", "2025-03-31T00:00"],
    ],
    [
      "Paris search starting at the jump",
      "30 2 * * *",
      "Europe/Paris",
      "2025-03-30T00:59:59.999Z",
      ["2025-03-30T01:00"],
    ],
    [
      "Paris hourly over the gap",
      "30 * * * *",
      "Europe/Paris",
      "2025-03-30T00:00Z",
      ["2025-03-30T00:30", "2025-03-30T01:00", "2025-03-30T01:30"],
    ],
    [
      "New York spring gap",
      "30 2 * * *",
      "America/New_York",
      "2025-03-08T12:00Z",
      ["2025-03-09T07:00", "2025-03-10T06:30"],
    ],
    [
      "Lord Howe 30-minute gap",
      "15 2 * * *",
      "Australia/Lord_Howe",
      "2025-10-04T00:00Z",
      ["2025-10-04T15:30", "2025-10-05T15:15"],
    ],
    // Rule 2: a repeated local time fires once, at its first occurrence.
    ["Paris fall back", "30 2 * * *", "Europe/Paris", "2025-10-25T12:00Z", ["2025-10-26T00:30", "2025-10-27T01:30"]],
    ["Paris search starting in the repeat", "45 2 * * *", "Europe/Paris", "2025-10-26T01:10Z", ["2025-10-27T01:45"]],
    [
      "New York fall back",
      "30 1 * * *",
      "America/New_York",
      "2025-11-01T12:00Z",
      ["2025-11-02T05:30", "2025-11-03T06:30"],
    ],
    [
      "Lord Howe 30-minute repeat",
      "30 1 * * *",
      "Australia/Lord_Howe",
      "2025-04-05T00:00Z",
      ["2025-04-05T14:30", "2025-04-06T15:00"],
    ],
    // Rule 2's exception: hourly or finer fires in both occurrences.
    [
      "Paris hourly in the repeat",
      "0 * * * *",
      "Europe/Paris",
      "2025-10-25T23:30Z",
      ["2025-10-26T00:00", "2025-10-26T01:00", "2025-10-26T02:00"],
    ],
    [
      "Paris every 10 s in the repeat",
      "*/10 * * * * *",
      "Europe/Paris",
      "2025-10-26T00:59:40Z",
      ["2025-10-26T00:59:50", "2025-10-26T01:00:00", "2025-10-26T01:00:10"],
    ],
    [
      "Paris stepped hours in the repeat",
      "30 */1 * * *",
      "Europe/Paris",
      "2025-10-26T00:00Z",
      ["2025-10-26T00:30", "2025-10-26T01:30", "2025-10-26T02:30"],
    ],
    [
      "New York hourly in the repeat",
      "30 * * * *",
      "America/New_York",
      "2025-11-02T05:00Z",
      ["2025-11-02T05:30", "2025-11-02T06:30", "2025-11-02T07:30"],
    ],
    [
      "Lord Howe every 30 min in the repeat",
      "*/30 * * * *",
      "Australia/Lord_Howe",
      "2025-04-05T14:00Z",
      ["2025-04-05T14:30", "2025-04-05T15:00", "2025-04-05T15:30"],
    ],
  ])("%s: %s in %s", (_name, cron, timeZone, after, expected) => {
    expect(next({ cron, timeZone }, after, expected.length)).toEqual(expected.map((t) => at(`${t}Z`).toISOString()));
  });

  it("keeps local wall time across transitions", () => {
    expect(next({ cron: "0 9 * * *", timeZone: "Europe/Paris" }, "2025-03-29T12:00Z", 2)).toEqual([
      "2025-03-30T07:00:00.000Z",
      "2025-03-31T07:00:00.000Z",
    ]);
  });
});

describe("refusals", () => {
  it.each([
    [{ cron: "0 25 * * *" }, 'cron field 2 (hour) "25": must be 0-23'],
    [{ cron: "60 * * * * *" }, 'cron field 1 (second) "60": must be 0-59'],
    [{ cron: "0 0 0 * *" }, 'cron field 3 (day-of-month) "0": must be 1-31'],
    [{ cron: "0 0 1 13 *" }, 'cron field 4 (month) "13": must be 1-12 or JAN-DEC'],
    [{ cron: "0 0 * * 8" }, 'cron field 5 (day-of-week) "8": must be 0-7 or SUN-SAT'],
    [{ cron: "0 0 * * FOO" }, 'cron field 5 (day-of-week) "FOO": must be 0-7 or SUN-SAT'],
    [{ cron: "0 1,x * * *" }, 'cron field 2 (hour) "x": must be 0-23'],
    [{ cron: "5-1 * * * *" }, 'cron field 1 (minute) "5-1": range start 5 is after its end 1'],
    [{ cron: "*/0 * * * *" }, 'cron field 1 (minute) "*/0": step must be a whole number of 1 or more'],
    [{ cron: "* * * *" }, 'cron "* * * *": must have 5 fields'],
    [{ cron: "@often" }, 'cron "@often": must have 5 fields'],
    [{ cron: "0 0 30 2 *" }, 'cron "0 0 30 2 *" never matches'],
    [{ cron: "0 0 31 4,6,9,11 *" }, 'cron "0 0 31 4,6,9,11 *" never matches'],
    [{ cron: "0 9 * * *", timeZone: "Mars/Base" }, 'time zone "Mars/Base": not an IANA time zone'],
    [{ every: 999 }, 'schedule every "999": must be a whole number of milliseconds, at least 1000'],
    [{ every: 1500.5 }, 'schedule every "1500.5"'],
    [{ every: 1000, anchor: new Date(Number.NaN) }, 'schedule anchor "Invalid Date": must be a valid Date'],
    [{ cron: "@daily", start: at("2025-02-01Z"), end: at("2025-01-01Z") }, "must be after start"],
  ] as [ScheduleSpec, string][])("%j", (spec, message) => {
    expect(() => parseScheduleSpec(spec)).toThrow(message);
  });

  it("accepts a restricted day-of-week that rescues an impossible day-of-month", () => {
    expect(next({ cron: "0 0 30 2 MON" }, "2025-01-01T00:00:00Z", 1)).toEqual(["2025-02-03T00:00:00.000Z"]);
  });

  it("refuses a bad count", () => {
    expect(() => nextTimes(parseScheduleSpec({ cron: "@daily" }), new Date(), -1)).toThrow('count "-1"');
  });
});

describe("sparse expressions", () => {
  it.each([
    ["@yearly", "UTC"],
    ["0 30 12 15 6 *", "Europe/Paris"],
    ["0 0 29 2 *", "UTC"],
  ])("computes 1,000 times of %s in %s by jumping, not scanning", (cron, timeZone) => {
    const times = nextTimes(parseScheduleSpec({ cron, timeZone }), at("2025-01-01T00:00:00Z"), 1000);
    expect(times).toHaveLength(1000);
    expect(times.every((t, i) => i === 0 || t > (times[i - 1] as Date))).toBe(true);
  });
});

describe("against a minute-by-minute reference", () => {
  /** A small seeded generator, so a failure can be replayed. */
  function random(seed: number): () => number {
    let state = seed;
    return () => {
      state = (state + 0x6d2b79f5) | 0;
      let t = Math.imul(state ^ (state >>> 15), 1 | state);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
    };
  }

  interface RefField {
    text: string;
    values: Set<number>;
  }

  /** A random field text in [min, max] with the set it stands for, built without the parser. */
  function randomField(next: () => number, min: number, max: number): RefField {
    const pick = (): number => min + Math.floor(next() * (max - min + 1));
    const all = (step: number, from: number, to: number): Set<number> => {
      const values = new Set<number>();
      for (let v = from; v <= to; v += step) values.add(v);
      return values;
    };
    const kind = Math.floor(next() * 5);
    if (kind === 0) return { text: "*", values: all(1, min, max) };
    if (kind === 1) {
      const v = pick();
      return { text: `${v}`, values: new Set([v]) };
    }
    const a = pick();
    const b = pick();
    const [low, high] = a <= b ? [a, b] : [b, a];
    if (kind === 2) return { text: `${low}-${high}`, values: all(1, low, high) };
    const step = 1 + Math.floor(next() * 4);
    if (kind === 3) return { text: `*/${step}`, values: all(step, min, max) };
    return { text: `${low},${high}`, values: new Set([low, high]) };
  }

  const wallFields = (timeZone: string) => {
    const format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      weekday: "short",
      month: "numeric",
      day: "numeric",
      hour: "numeric",
      minute: "numeric",
    });
    const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    return (t: number) => {
      const parts = Object.fromEntries(format.formatToParts(t).map((p) => [p.type, p.value]));
      return {
        minute: Number(parts.minute),
        hour: Number(parts.hour),
        day: Number(parts.day),
        month: Number(parts.month),
        weekday: days.indexOf(parts.weekday ?? ""),
      };
    };
  };

  it.each(["UTC", "Europe/Paris"])("agrees in %s over four days without a transition", (timeZone) => {
    const next = random(timeZone.length);
    const from = Date.parse("2025-06-01T00:00:00Z");
    const to = Date.parse("2025-06-05T00:00:00Z");
    const walls = wallFields(timeZone);
    const minutes: ReturnType<typeof walls>[] = [];
    for (let t = from + 60_000; t <= to; t += 60_000) minutes.push(walls(t));
    for (let round = 0; round < 40; round++) {
      const minute = randomField(next, 0, 59);
      const hour = randomField(next, 0, 23);
      const dom = randomField(next, 1, 7);
      const month = next() < 0.5 ? randomField(next, 5, 6) : { text: "*", values: new Set([6]) };
      const dow = randomField(next, 0, 6);
      const cron = [minute, hour, dom, month, dow].map((f) => f.text).join(" ");
      const eitherDay = !dom.text.startsWith("*") && !dow.text.startsWith("*");
      const expected = minutes.flatMap((w, i) => {
        const byMonth = dom.values.has(w.day);
        const byWeek = dow.values.has(w.weekday);
        const dayOk = eitherDay ? byMonth || byWeek : byMonth && byWeek;
        const ok = dayOk && month.values.has(w.month) && hour.values.has(w.hour) && minute.values.has(w.minute);
        return ok ? [new Date(from + (i + 1) * 60_000).toISOString()] : [];
      });
      const actual = iso(timesBetween(parseScheduleSpec({ cron, timeZone }), new Date(from), new Date(to), 10_000));
      expect(actual, cron).toEqual(expected);
    }
  });
});

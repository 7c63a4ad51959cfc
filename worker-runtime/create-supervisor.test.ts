import { describe, expect, it } from "vitest";
import { afterCrash } from "./create-supervisor.ts";

describe("the supervisor's restart rule", () => {
  const options = { crashLoopWindowMs: 60_000, crashLoopLimit: 3, restartBackoffMs: 500, maxRestartBackoffMs: 1_500 };

  it("doubles the restart delay per crash within the window, up to the bound", () => {
    expect(afterCrash([], 1_000, options)).toEqual({ recent: [1_000], windowMs: 60_000, delayMs: 500 });
    expect(afterCrash([1_000], 2_000, options).delayMs).toBe(1_000);
    expect(afterCrash([1_000, 2_000], 3_000, options).delayMs).toBe(1_500);
  });

  it("forgets crashes older than the window", () => {
    expect(afterCrash([1_000, 2_000, 3_000], 70_000, options)).toEqual({
      recent: [70_000],
      windowMs: 60_000,
      delayMs: 500,
    });
  });

  it("gives up past the crash-loop limit", () => {
    expect(afterCrash([1_000, 2_000, 3_000], 4_000, options).delayMs).toBeUndefined();
  });
});

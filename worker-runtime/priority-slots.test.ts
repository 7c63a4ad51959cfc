import { describe, expect, it } from "vitest";
import { PrioritySlots } from "./priority-slots.ts";

describe("PrioritySlots", () => {
  const tick = () => new Promise((resolve) => setImmediate(resolve));

  it("serves the highest rank first, FIFO within a rank", async () => {
    const slots = new PrioritySlots(1, 3, 5_000, () => 0);
    await slots.acquire(0);
    const served: string[] = [];
    for (const [rank, name] of [
      [2, "low-1"],
      [1, "normal-1"],
      [0, "high-1"],
      [2, "low-2"],
      [0, "high-2"],
    ] as const) {
      void slots.acquire(rank).then(() => served.push(name));
    }
    for (let i = 0; i < 5; i++) {
      slots.release();
      await tick();
    }
    expect(served).toEqual(["high-1", "high-2", "normal-1", "low-1", "low-2"]);
  });

  it("serves a waiter that has waited agingMs before younger ones of higher rank", async () => {
    let now = 0;
    const slots = new PrioritySlots(1, 3, 1_000, () => now);
    await slots.acquire(0);
    const served: string[] = [];
    void slots.acquire(2).then(() => served.push("low"));
    // A steady stream of high-priority work: without aging, "low" would wait forever.
    for (let i = 0; i < 10; i++) {
      void slots.acquire(0).then(() => served.push(`high-${i}`));
      now += 200;
      slots.release();
      await tick();
    }
    expect(served.indexOf("low")).toBe(4); // the release at 1000 ms, not before
    expect(served.filter((s) => s.startsWith("high"))).toHaveLength(9);
  });
});

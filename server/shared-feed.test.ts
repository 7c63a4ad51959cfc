import { describe, expect, it } from "vitest";
import { SharedFeed } from "./shared-feed.ts";

describe("SharedFeed", () => {
  it("runs one upstream for all followers, and stops it when the last leaves", async () => {
    let started = 0;
    let stopped = 0;
    const push: ((value: number) => void)[] = [];
    const feed = new SharedFeed<number>(
      async function* (signal) {
        started++;
        try {
          while (!signal.aborted) {
            yield await new Promise<number>((resolve) => {
              push.push(resolve);
              signal.addEventListener("abort", () => resolve(-1), { once: true });
            });
          }
        } finally {
          stopped++;
        }
      },
      (a, b) => a + b,
    );
    const [one, two] = [new AbortController(), new AbortController()];
    const a = feed.follow(one.signal);
    const b = feed.follow(two.signal);
    const firstA = a.next();
    const firstB = b.next();
    await Promise.resolve();
    push.shift()?.(5);
    expect((await firstA).value).toBe(5);
    expect((await firstB).value).toBe(5);
    expect(started).toBe(1);
    one.abort();
    expect((await a.next()).done).toBe(true);
    two.abort();
    expect((await b.next()).done).toBe(true);
    await expect.poll(() => stopped).toBe(1);
  });

  it("drops what a stopped upstream yields after a new one started", async () => {
    const runs: { push: (value: number) => void; signal: AbortSignal }[] = [];
    const feed = new SharedFeed<number>(
      async function* (signal) {
        // Yields the read under way even after its abort, as a broker watch would.
        for (;;) {
          const value = await new Promise<number>((resolve) => runs.push({ push: resolve, signal }));
          yield value;
          if (signal.aborted) return;
        }
      },
      (a, b) => a + b,
    );
    const first = new AbortController();
    const follower = feed.follow(first.signal);
    const pending = follower.next();
    await expect.poll(() => runs.length).toBe(1);
    first.abort();
    await pending;
    // A newcomer starts a fresh run; the old one then finishes its read.
    const second = new AbortController();
    const newcomer = feed.follow(second.signal);
    const next = newcomer.next();
    await expect.poll(() => runs.length).toBe(2);
    runs[0]?.push(100);
    runs[1]?.push(7);
    expect((await next).value).toBe(7);
    second.abort();
  });
});

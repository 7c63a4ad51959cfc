import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { TaskError } from "../../sdk/core/task-error.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import {
  implementKeyedService,
  implementRatedService,
  keyedService,
  ratedService,
} from "../gen/keyed/v1/keyed_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";

/** Limits per fairness key, across workers: `(taskwire.v1.worker).key_limits`. */
describe("per-key limits", () => {
  let nats: NatsServer;
  let client: TaskwireClient;
  const workers: Worker[] = [];
  /** Tasks running now, and the most at once, per tenant and in all. */
  const running = new Map<string, number>();
  const most = new Map<string, number>();
  /** When each rated task started, per tenant. */
  const starts = new Map<string, number[]>();

  beforeAll(async () => {
    nats = await startNatsServer();
    client = await createClient({ nats: nats.url, services: [keyedService, ratedService] });
    const work = async ({ tenant, label, sleepMs }: { tenant: string; label: string; sleepMs: number }) => {
      for (const key of [tenant, "*"]) {
        running.set(key, (running.get(key) ?? 0) + 1);
        most.set(key, Math.max(most.get(key) ?? 0, running.get(key) ?? 0));
      }
      await new Promise((resolve) => setTimeout(resolve, sleepMs));
      for (const key of [tenant, "*"]) running.set(key, (running.get(key) ?? 0) - 1);
      return { label };
    };
    // Two workers of eight slots each: the limit holds across them.
    for (let i = 0; i < 2; i++) {
      workers.push(
        await createWorker({
          nats: nats.url,
          services: [
            implementKeyedService({ work, debounced: work, single: work }),
            implementRatedService({
              async work({ tenant, label }) {
                starts.set(tenant, [...(starts.get(tenant) ?? []), Date.now()]);
                return { label };
              },
            }),
          ],
        }),
      );
    }
  }, 30_000);

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await client?.close();
    await nats?.stop();
  });

  it("runs at most two tasks of a tenant at once across two workers, while other tenants run", async () => {
    const handles = [];
    for (const tenant of ["a", "b", "c"]) {
      for (const handle of await client.submitBatch(
        keyedService.methods.work,
        Array.from({ length: 12 }, (_, i) => ({ request: { tenant, label: `${tenant}${i}`, sleepMs: 60 } })),
      )) {
        if (handle instanceof TaskError) throw handle;
        handles.push(handle);
      }
    }
    const results = await Promise.all(handles.map((handle) => handle.result()));
    expect(results).toHaveLength(36);
    for (const tenant of ["a", "b", "c"]) expect(most.get(tenant)).toBe(2);
    // Tenants ran side by side: more than one tenant's two at once.
    expect(most.get("*")).toBeGreaterThan(2);
  }, 60_000);

  it("starts at most five tasks of a tenant in any second, across workers; other tenants meanwhile", async () => {
    const handles = [];
    for (const tenant of ["x", "y"]) {
      for (const handle of await client.submitBatch(
        ratedService.methods.work,
        Array.from({ length: 12 }, (_, i) => ({ request: { tenant, label: `${tenant}${i}` } })),
      )) {
        if (handle instanceof TaskError) throw handle;
        handles.push(handle);
      }
    }
    await Promise.all(handles.map((handle) => handle.result()));
    for (const tenant of ["x", "y"]) {
      const times = (starts.get(tenant) ?? []).sort((a, b) => a - b);
      expect(times).toHaveLength(12);
      // The 6th start after any start waits for one of the 5 tokens to lapse (1 s), less a little slack.
      for (let i = 0; i + 5 < times.length; i++)
        expect((times[i + 5] ?? 0) - (times[i] ?? 0)).toBeGreaterThanOrEqual(950);
    }
    // Each tenant's first five started before the other's sixth: neither waited for the other's window.
    for (const [a, b] of [
      ["x", "y"],
      ["y", "x"],
    ] as const)
      expect((starts.get(a) ?? [])[0]).toBeLessThan((starts.get(b) ?? [])[5] ?? 0);
  }, 60_000);

  it("debounce: of a tenant's tasks within the window, the last runs and the others end CANCELLED", async () => {
    const method = keyedService.methods.debounced;
    const burst = [];
    for (let i = 0; i < 5; i++) burst.push(await client.submitTask(method, { tenant: "d", label: `d${i}` }));
    const other = await client.submitTask(method, { tenant: "e", label: "e0" });
    const last = burst[4];
    expect((await last?.result())?.label).toBe("d4");
    expect((await other.result()).label).toBe("e0");
    for (const handle of burst.slice(0, 4)) {
      await expect(handle.result()).rejects.toThrow(new RegExp(`debounced: ${last?.id}, a later task of its key`));
    }
    await expect(client.submitTask(method, { label: "no key" })).rejects.toThrow(
      /keyed\/Debounced is debounced per fairness key: the task needs one/,
    );
  }, 30_000);

  it("singleton: while a tenant's task waits or runs, a submit returns it; afterwards, a new one", async () => {
    const method = keyedService.methods.single;
    const first = await client.submitTask(method, { tenant: "s", label: "s0", sleepMs: 400 });
    const again = await Promise.all([1, 2].map((i) => client.submitTask(method, { tenant: "s", label: `s${i}` })));
    expect(again.map((handle) => handle.id)).toEqual([first.id, first.id]);
    expect(again.every((handle) => handle.duplicate)).toBe(true);
    const other = await client.submitTask(method, { tenant: "t", label: "t0" });
    expect(other.id).not.toBe(first.id);
    expect((await first.result()).label).toBe("s0");
    const later = await client.submitTask(method, { tenant: "s", label: "s3" });
    expect(later.id).not.toBe(first.id);
    expect((await later.result()).label).toBe("s3");
  }, 30_000);
});

import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { topology } from "../../sdk/core/names.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import type { AttemptOutcome } from "../../worker-runtime/worker-event.ts";
import { implementLimitedProbeService, limitedProbeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

const run = limitedProbeService.methods.run;

/**
 * The "limited" worker type: max_concurrency 2, max_rate 10 and max_queued 30
 * across all its workers (test/proto/probe/v1/probe.proto), while each of two
 * workers may run 4.
 */
describe("limits across all workers of a type", () => {
  let nats: NatsServer;
  let client: TaskwireClient;
  let nc: NatsConnection;
  const workers: Worker[] = [];
  let running = 0;
  let mostRunning = 0;
  const starts: number[] = [];
  const labels: string[] = [];
  const outcomes = new Map<string, AttemptOutcome>();

  beforeAll(async () => {
    nats = await startNatsServer();
    client = await createClient({ nats: nats.url, services: [limitedProbeService] });
    nc = await connect({ servers: nats.url });
    for (let i = 0; i < 2; i++) {
      workers.push(
        await createWorker({
          nats: nats.url,
          workerId: `limited-${i}`,
          onEvent: (event) => {
            if (event.type === "attempt") outcomes.set(event.taskId, event.outcome);
          },
          services: [
            implementLimitedProbeService({
              async run({ label, sleepMs }, ctx) {
                starts.push(Date.now());
                labels.push(label);
                running++;
                mostRunning = Math.max(mostRunning, running);
                await new Promise((resolve) => setTimeout(resolve, sleepMs));
                running--;
                return { label, attempt: ctx.attempt, workerId: ctx.workerId };
              },
            }),
          ],
        }),
      );
    }
  }, 30_000);

  /** Tasks pulled and not settled, over both workers. */
  const pending = async () => {
    const jsm = await jetstreamManager(nc);
    return (await jsm.consumers.info(topology.streamName("limited"), topology.consumerName("limited", "normal")))
      .num_ack_pending;
  };

  afterEach(() => {
    mostRunning = 0;
    starts.length = 0;
    labels.length = 0;
  });

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await client?.close();
    await nc?.close();
    await nats?.stop();
  });

  it("runs at most max_concurrency handlers at once, over both workers", async () => {
    const tasks = await Promise.all(
      Array.from({ length: 8 }, (_, i) => client.submitTask(run, { label: `c-${i}`, sleepMs: 150 })),
    );
    const results = await Promise.all(tasks.map((t) => t.result()));
    expect(new Set(results.map((r) => r.workerId)).size).toBe(2); // both workers took part
    expect(mostRunning).toBe(2);
  });

  it("a task cancelled while it waits for a lease never starts", async () => {
    const holders = await Promise.all(
      [0, 1].map((i) => client.submitTask(run, { label: `holder-${i}`, sleepMs: 1500 })),
    );
    await poll(async () => (running === 2 ? true : undefined));
    const waiting = await client.submitTask(run, { label: "waiting", sleepMs: 10 });
    // Pulled by a worker with a free slot: its attempt waits for one of the two leases.
    await poll(async () => ((await pending()) === 3 ? true : undefined));
    expect((await client.cancelTask(waiting.id)).state).toBe(TaskState.CANCELLED);
    await Promise.all(holders.map((h) => h.result()));
    // Ended without running once a lease was free.
    expect(await poll(async () => outcomes.get(waiting.id))).toBe("cancelled");
    expect(labels.toSorted()).toEqual(["holder-0", "holder-1"]);
  });

  it("a task waiting for a lease when its queue is paused takes none until the resume", async () => {
    const holders = await Promise.all(
      [0, 1].map((i) => client.submitTask(run, { label: `pause-holder-${i}`, sleepMs: 1000 })),
    );
    await poll(async () => (running === 2 ? true : undefined));
    const waiting = await client.submitTask(run, { label: "pause-waiting", sleepMs: 10 });
    // Pulled by a worker with a free slot: its attempt waits for one of the two leases.
    await poll(async () => ((await pending()) === 3 ? true : undefined));
    await client.queues.pauseQueue("limited");
    try {
      await Promise.all(holders.map((h) => h.result()));
      // The leases are free, and the queue is paused: it does not start.
      await expect(poll(async () => (labels.includes("pause-waiting") ? true : undefined), 1000)).rejects.toThrow(
        /not met/,
      );
    } finally {
      await client.queues.resumeQueue("limited");
    }
    expect((await waiting.result()).attempt).toBe(1);
    // Reported once its PubAck comes, maybe after the client heard of its record.
    expect(await poll(async () => outcomes.get(waiting.id))).toBe("succeeded");
  });

  it("bounds the queue at max_queued, from the same option", async () => {
    expect((await client.queues.getQueue("limited")).maxQueued).toBe(30n);
  });

  it("starts at most max_rate attempts in any second", async () => {
    const tasks = await Promise.all(Array.from({ length: 25 }, (_, i) => client.submitTask(run, { label: `r-${i}` })));
    await Promise.all(tasks.map((t) => t.result()));
    starts.sort((a, b) => a - b);
    // The 11th start after any start waits for one of the 10 tokens to lapse (1 s);
    // a few ms of slack for the gap between a token's publish and its handler's start.
    for (let i = 0; i + 10 < starts.length; i++) {
      expect((starts[i + 10] ?? 0) - (starts[i] ?? 0)).toBeGreaterThanOrEqual(950);
    }
  });
});

import { create } from "@bufbuild/protobuf";
import { anyPack, durationFromMs } from "@bufbuild/protobuf/wkt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ScheduleSchema } from "../../gen/taskwire/v1/schedule_service_pb.ts";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { TaskError } from "../../sdk/core/task-error.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { fairQueueDepth } from "../../worker-runtime/fair-dispatcher.ts";
import { RunRequestSchema } from "../gen/probe/v1/probe_pb.ts";
import { implementProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

const run = probeService.methods.run;

/** Fairness keys: one key's flood does not hold the other keys' tasks back. */
describe("fairness keys", () => {
  let nats: NatsServer;
  let client: TaskwireClient;
  let worker: Worker;
  /** Labels in the order their first attempt started. */
  const started: string[] = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    client = await createClient({ nats: nats.url, services: [probeService] });
    worker = await createWorker({
      nats: nats.url,
      concurrency: 2,
      services: [
        implementProbeService({
          async run({ label, sleepMs }, ctx) {
            if (ctx.attempt === 1) started.push(label);
            await new Promise((resolve) => setTimeout(resolve, sleepMs));
            return { label, attempt: ctx.attempt, workerId: ctx.workerId };
          },
        }),
      ],
    });
  }, 30_000);

  afterAll(async () => {
    await worker?.close();
    await client?.close();
    await nats?.stop();
  });

  const submitMany = async (count: number, label: (i: number) => string, fairnessKey: string) => {
    const handles = [];
    for (let at = 0; at < count; at += 500) {
      const batch = Array.from({ length: Math.min(500, count - at) }, (_, i) => ({
        request: { label: label(at + i), sleepMs: 2 },
        options: { fairnessKey },
      }));
      for (const handle of await client.submitBatch(run, batch)) {
        if (handle instanceof TaskError) throw handle;
        handles.push(handle);
      }
    }
    return handles;
  };

  it("starts ten quiet keys' tasks within a bound while one key floods the queue", async () => {
    const noisy = await submitMany(3_000, (i) => `noisy-${i}`, "noisy");
    await poll(async () => (started.length >= 10 ? true : undefined));
    const quiet = (
      await Promise.all(Array.from({ length: 10 }, (_, k) => submitMany(5, (i) => `quiet-${k}-${i}`, `tenant-${k}`)))
    ).flat();
    // From the moment every quiet task is accepted: how many of the flood's start before the last of them.
    const accepted = started.length;
    await Promise.all(quiet.map((handle) => handle.result()));
    const after = started.slice(accepted);
    const lastQuiet = Math.max(...after.map((label, i) => (label.startsWith("quiet") ? i : -1)));
    const noisyBefore = after.slice(0, lastQuiet).filter((label) => label.startsWith("noisy")).length;
    // At most the queue's depth and what the worker holds: pulled ahead (2 per priority, and a
    // pull of each renewed early), running (2), and 8 of slack; without keys, the whole flood left.
    expect(noisyBefore).toBeLessThanOrEqual(fairQueueDepth + 16);
    expect(3_000 - accepted).toBeGreaterThan(fairQueueDepth * 4);
    await Promise.all(noisy.map((handle) => handle.result()));
    expect(new Set(started).size).toBe(started.length);
  }, 120_000);

  it("reads, and cancels, a task while it waits for its turn; takes the key from the marked field", async () => {
    const blockers = await submitMany(200, (i) => `blocker-${i}`, "busy");
    const waiting = await client.submitTask(run, { label: "waiting", tenant: "busy" });
    const status = await client.getTask(waiting.id);
    expect(status).toMatchObject({ state: TaskState.PENDING, fairnessKey: "busy" });
    // Waiting for its turn, it counts as queued.
    expect((await client.queues.getQueue("probe")).queued).toBeGreaterThan(0n);
    await client.cancelTask(waiting.id, "not needed");
    await Promise.all(blockers.map((handle) => handle.result()));
    expect((await client.getTask(waiting.id)).state).toBe(TaskState.CANCELLED);
    expect(started).not.toContain("waiting");
    await expect(client.submitTask(run, { label: "long" }, { fairnessKey: "k".repeat(257) })).rejects.toThrow(
      /fairness key of 257 bytes: at most 256/,
    );
  }, 60_000);

  it("a purge cancels the tasks waiting for their turn too, and leaves a schedule's armed time", async () => {
    await client.queues.pauseQueue("probe");
    try {
      await client.schedules.createSchedule(
        create(ScheduleSchema, {
          workerType: "probe",
          scheduleId: "hourly",
          spec: { every: durationFromMs(3_600_000) },
          task: { method: "Run", payload: anyPack(RunRequestSchema, create(RunRequestSchema, { label: "tick" })) },
        }),
      );
      const waiting = await submitMany(300, (i) => `purged-${i}`, "purged");
      // Some in the queue (256 at most), the rest held by key.
      await poll(async () => ((await client.queues.getQueue("probe")).queued === 300n ? true : undefined));
      expect(await client.queues.purgeQueue("probe", "emptied")).toBe(300);
      for (const handle of waiting.slice(-3)) expect((await handle.status()).state).toBe(TaskState.CANCELLED);
      expect((await client.schedules.getSchedule("probe", "hourly")).nextTime).toBeDefined();
    } finally {
      await client.schedules.deleteSchedule("probe", "hourly").catch(() => undefined);
      await client.queues.resumeQueue("probe");
    }
  }, 60_000);
});

import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { connect } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import type { TaskError } from "../../sdk/core/task-error.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { keepHouse } from "../../worker-runtime/housekeeping.ts";
import { implementProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

const run = probeService.methods.run;

/** Delayed tasks: they wait in the scheduler stream, not in the queue or in a worker. */
describe("delayed and scheduled tasks", () => {
  let nats: NatsServer;
  let client: TaskwireClient;
  const workers: Worker[] = [];
  /** When each label's first attempt started, in ms since the epoch. */
  const startedAt = new Map<string, number>();

  beforeAll(async () => {
    nats = await startNatsServer();
    client = await createClient({ nats: nats.url, services: [probeService] });
  }, 30_000);

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close()));
  });

  afterAll(async () => {
    await client?.close();
    await nats?.stop();
  });

  const startWorker = async (concurrency = 4) => {
    const worker = await createWorker({
      nats: nats.url,
      concurrency,
      services: [
        implementProbeService({
          async run({ label, sleepMs }, ctx) {
            if (!startedAt.has(label)) startedAt.set(label, Date.now());
            await new Promise((resolve) => setTimeout(resolve, sleepMs));
            return { label, attempt: ctx.attempt, workerId: ctx.workerId };
          },
        }),
      ],
    });
    workers.push(worker);
  };

  it("a delayed task is SCHEDULED, is not queued, and starts no earlier than its time", async () => {
    await startWorker();
    // Seconds of room: the checks below must come before it is due, however slow the machine.
    const task = await client.submitTask(run, { label: "later" }, { delayMs: 3_000 });
    const status = await task.status();
    expect(status.state).toBe(TaskState.SCHEDULED);
    const notBefore = status.notBefore ? timestampMs(status.notBefore) : 0;
    expect(notBefore).toBeGreaterThan(Date.now());
    expect(await client.queues.getQueue("probe")).toMatchObject({ queued: 0n, scheduled: 1n });
    expect((await task.result()).label).toBe("later");
    expect(startedAt.get("later")).toBeGreaterThanOrEqual(notBefore);
    expect((await client.queues.getQueue("probe")).scheduled).toBe(0n);
  });

  it("waiting tasks take no worker capacity: an immediate task runs while many wait", async () => {
    await startWorker(1);
    const at = new Date(Date.now() + 4_000);
    const waiting = await client.submitBatch(
      run,
      Array.from({ length: 50 }, (_, i) => ({ request: { label: `waiting-${i}` }, options: { notBefore: at } })),
    );
    const now = await client.submitTask(run, { label: "now" });
    expect((await now.result()).label).toBe("now");
    for (const handle of waiting) {
      if (!("id" in handle)) throw handle;
      expect((await handle.status()).state).toBe(TaskState.SCHEDULED);
    }
    await Promise.all(waiting.map((h) => ("id" in h ? h.result() : Promise.reject(h))));
    for (let i = 0; i < 50; i++) expect(startedAt.get(`waiting-${i}`)).toBeGreaterThanOrEqual(at.getTime());
  });

  it("a cancelled scheduled task never runs", async () => {
    // No worker until the victim is cancelled: only workers move due tasks to the queue, so
    // it is still SCHEDULED when cancelled, however slow the machine and even if already due.
    const victim = await client.submitTask(run, { label: "cancelled-later" }, { delayMs: 500 });
    const witness = await client.submitTask(run, { label: "witness" }, { delayMs: 1_000 });
    expect((await victim.status()).state).toBe(TaskState.SCHEDULED);
    expect((await victim.cancel("not wanted")).state).toBe(TaskState.CANCELLED);
    await startWorker();
    // Due after the victim: a worker moves due tasks in order, so the victim was dropped first.
    await witness.result();
    expect(startedAt.has("cancelled-later")).toBe(false);
    expect((await victim.status()).state).toBe(TaskState.CANCELLED);
    expect((await client.queues.getQueue("probe")).scheduled).toBe(0n);
  });

  it("a keyed delayed task submitted twice is one task", async () => {
    const later = { delayMs: 3_000, idempotencyKey: "k-later" }; // still SCHEDULED when read below
    const first = await client.submitTask(run, { label: "keyed-later" }, later);
    const second = await client.submitTask(run, { label: "keyed-later" }, later);
    expect(second.id).toBe(first.id);
    expect(second.duplicate).toBe(true);
    expect((await second.status()).state).toBe(TaskState.SCHEDULED);
    await startWorker();
    expect((await first.result()).label).toBe("keyed-later");
  });

  it("a start time already past runs at once; impossible schedules are refused", async () => {
    await startWorker();
    const past = await client.submitTask(run, { label: "past" }, { notBefore: new Date(Date.now() - 60_000) });
    expect((await past.status()).state).not.toBe(TaskState.SCHEDULED);
    expect((await past.result()).label).toBe("past");
    const refused = (options: Parameters<typeof client.submitTask>[2]) =>
      client.submitTask(run, { label: "refused" }, options).then(
        () => undefined,
        (e: TaskError) => e,
      );
    const negative = await refused({ delayMs: -5 });
    expect(negative).toMatchObject({ code: Code.InvalidArgument });
    expect(negative?.message).toMatch(/task.delay must not be negative/);
    const never = await refused({ delayMs: 60_000, expiresAt: new Date(Date.now() + 30_000) });
    expect(never).toMatchObject({ code: Code.InvalidArgument });
    expect(never?.message).toMatch(/could never run/);
    await poll(async () => (startedAt.has("past") ? true : undefined));
  });

  it("a gateway with no TypeScript worker moves due tasks and queues keyed ones (its housekeeping)", async () => {
    // As a gateway does (cli/commands.ts) for the workers in other languages, which only run tasks.
    const nc = await connect({ servers: nats.url });
    const house = await keepHouse(nc, [probeService], { holder: "gateway-test", onError: () => {} });
    try {
      const delayed = await client.submitTask(run, { label: "moved" }, { delayMs: 300 });
      const keyed = await client.submitTask(run, { label: "dispatched", tenant: "acme" });
      // Queued by the gateway alone: in TASKS_probe (a direct get finds it there), PENDING.
      for (const id of [delayed.id, keyed.id]) {
        const subject = `taskwire.task.probe.normal.${id.split(".")[1]}`;
        await poll(async () => {
          const found = await nc.request("$JS.API.DIRECT.GET.TASKS_probe", JSON.stringify({ last_by_subj: subject }));
          return found.headers?.get("Nats-Subject") === subject ? true : undefined;
        }, 20_000);
        expect((await client.getTask(id)).state).toBe(TaskState.PENDING);
      }
      await startWorker();
      expect((await delayed.result()).label).toBe("moved");
      expect((await keyed.result()).label).toBe("dispatched");
    } finally {
      await house.stop();
      await nc.close();
    }
  });
});

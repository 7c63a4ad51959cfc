import { Code } from "@connectrpc/connect";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { NonRetryableError, type TaskError } from "../../sdk/core/task-error.ts";
import { createTaskRegistry, registryOf } from "../../sdk/core/task-registry.ts";
import { createNatsQueueBackend } from "../../sdk/nats/nats-queue-backend.ts";
import { createNatsTaskBackend } from "../../sdk/nats/nats-task-backend.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { implementProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

const services = [probeService];
const run = probeService.methods.run;

/** QueueService through the gateway: dead letters, pause and resume, purge. */
describe("queues: dead letters, pause, resume and purge", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let gateway: Gateway;
  let client: TaskwireClient;
  const workers: Worker[] = [];
  /** Labels whose attempts succeed from now on, whatever their request says. */
  const healed = new Set<string>();
  /** Attempts started, by label. */
  const started = new Map<string, number>();

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    const backend = await createNatsTaskBackend({ nc, registry: createTaskRegistry(services) });
    const queues = await createNatsQueueBackend({ nc, tasks: backend });
    gateway = await createGateway({ backend, queues, typeRegistry: registryOf(services) });
    client = await createClient({ gateway: gateway.url });
  }, 30_000);

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close()));
    await client.queues.resumeQueue("probe");
  });

  afterAll(async () => {
    await client?.close();
    await gateway?.close();
    await nc?.close();
    await nats?.stop();
  });

  const startWorker = async (options: { concurrency?: number; prefetch?: number } = {}) => {
    const worker = await createWorker({
      nats: nats.url,
      ...options,
      services: [
        implementProbeService({
          async run({ label, failAttempts, nonRetryable, sleepMs }, ctx) {
            started.set(label, (started.get(label) ?? 0) + 1);
            await new Promise((resolve) => setTimeout(resolve, sleepMs));
            if (!healed.has(label)) {
              if (nonRetryable) throw new NonRetryableError(`${label} cannot work`);
              if (ctx.attempt <= failAttempts) throw new Error(`${label} failed attempt ${ctx.attempt}`);
            }
            return { label, attempt: ctx.attempt, workerId: ctx.workerId };
          },
        }),
      ],
    });
    workers.push(worker);
    return worker;
  };

  it("dead-letters a task that failed for good, lists it with its history, and retries it", async () => {
    await startWorker();
    const doomed = await client.submitTask(run, { label: "doomed", failAttempts: 10 });
    const refused = await client.submitTask(run, { label: "refused", nonRetryable: true });
    await expect(doomed.result()).rejects.toThrow(/doomed failed attempt 3/);
    await expect(refused.result()).rejects.toThrow(/refused cannot work/);

    const letter = await poll(() => client.queues.getDeadLetter(doomed.id).catch(() => undefined));
    expect(letter.status?.state).toBe(TaskState.FAILED);
    expect(letter.status?.errorHistory.map((e) => e.attempt)).toEqual([1, 2]);
    expect(letter.status?.error?.message).toBe("doomed failed attempt 3");
    expect(letter.workItem?.taskId).toBe(doomed.id);
    expect(letter.deadAt).toBeDefined();

    const listed = await poll(async () => {
      const page = await client.queues.listDeadLetters("probe");
      return page.deadLetters.length === 2 ? page : undefined;
    });
    expect(listed.deadLetters.map((l) => l.status?.taskId).sort()).toEqual([doomed.id, refused.id].sort());
    const firstPage = await client.queues.listDeadLetters("probe", { pageSize: 1 });
    const secondPage = await client.queues.listDeadLetters("probe", {
      pageSize: 1,
      pageToken: firstPage.nextPageToken,
    });
    expect([...firstPage.deadLetters, ...secondPage.deadLetters].map((l) => l.status?.taskId)).toEqual(
      listed.deadLetters.map((l) => l.status?.taskId),
    );
    expect((await client.queues.getQueue("probe")).deadLetters).toBe(2n);

    // Fixed, then retried: same id, a fresh attempt count, the letter gone.
    healed.add("doomed");
    const retried = await client.queues.retryDeadLetter(doomed.id);
    expect(retried.state).toBe(TaskState.PENDING);
    expect(retried.errorHistory.map((e) => e.attempt)).toEqual([1, 2, 3]);
    const result = await client.task(doomed.id, run.output).result();
    expect(result).toMatchObject({ label: "doomed", attempt: 1 });
    // The errors of the runs before the retry stay in its history.
    expect((await client.getTask(doomed.id)).errorHistory.map((e) => e.message)).toEqual([
      "doomed failed attempt 1",
      "doomed failed attempt 2",
      "doomed failed attempt 3",
    ]);
    await expect(client.queues.getDeadLetter(doomed.id)).rejects.toMatchObject({ code: Code.NotFound });
    await expect(client.queues.retryDeadLetter(doomed.id)).rejects.toMatchObject({ code: Code.NotFound });

    expect(await client.queues.purgeDeadLetters("probe", [refused.id])).toBe(1);
    expect((await client.queues.getQueue("probe")).deadLetters).toBe(0n);
    expect((await client.getTask(refused.id)).state).toBe(TaskState.FAILED);
  });

  it("a paused queue starts nothing until resumed, and stays paused when a worker starts", async () => {
    const paused = await client.queues.pauseQueue("probe");
    expect(paused.paused).toBe(true);
    expect(paused.pausedUntil).toBeUndefined();
    await startWorker(); // provisions the consumers again: the pause must survive it
    const task = await client.submitTask(run, { label: "paused" });
    // Observed for a while: nothing starts.
    await expect(poll(async () => (started.has("paused") ? true : undefined), 700)).rejects.toThrow(/not met/);
    const info = await client.queues.getQueue("probe");
    expect(info).toMatchObject({ paused: true, queued: 1n, running: 0n });

    await client.queues.resumeQueue("probe");
    expect((await task.result()).label).toBe("paused");
    expect((await client.queues.getQueue("probe")).paused).toBe(false);

    const until = new Date(Date.now() + 60_000);
    const timed = await client.queues.pauseQueue("probe", until);
    expect(timed.pausedUntil && Number(timed.pausedUntil.seconds)).toBe(Math.floor(until.getTime() / 1000));
    await expect(client.queues.pauseQueue("probe", new Date(Date.now() - 1000))).rejects.toMatchObject({
      code: Code.InvalidArgument,
    });
  });

  it("a pause also holds the tasks workers pulled already, until resumed or the pause ends", async () => {
    await startWorker({ concurrency: 1, prefetch: 4 });
    const busy = await client.submitTask(run, { label: "busy", sleepMs: 400 });
    await poll(async () => (started.has("busy") ? true : undefined));
    const held = await Promise.all(
      [0, 1, 2].map((i) => client.submitTask(run, { label: `held-${i}` }, { priority: "high" })),
    );
    await client.queues.pauseQueue("probe");
    await busy.result();
    await expect(poll(async () => (started.has("held-0") ? true : undefined), 700)).rejects.toThrow(/not met/);
    await client.queues.resumeQueue("probe");
    const results = await Promise.all(held.map((task) => task.result()));
    expect(results.map((r) => r.attempt)).toEqual([1, 1, 1]); // kept alive while held: never redelivered

    // A pause with an end lifts by itself.
    await client.queues.pauseQueue("probe", new Date(Date.now() + 600));
    const later = await client.submitTask(run, { label: "after-timed-pause" });
    expect((await later.result()).label).toBe("after-timed-pause");
    expect((await client.queues.getQueue("probe")).paused).toBe(false);
  });

  it("a task queued while paused runs on its first delivery after resume, with two workers pulling", async () => {
    await Promise.all([startWorker(), startWorker()]);
    for (let round = 0; round < 8; round++) {
      await client.queues.pauseQueue("probe");
      const task = await client.submitTask(run, { label: `resumed-${round}` });
      await client.queues.resumeQueue("probe");
      // Well within ack_wait (30 s): a delivery lost to a request the worker dropped would wait that long.
      const status = await poll(async () => {
        const current = await client.getTask(task.id);
        return current.state === TaskState.SUCCEEDED ? current : undefined;
      }, 10_000);
      expect(status.deliveryCount).toBe(1);
    }
  });

  it("purge cancels every unfinished task of the type, delayed ones too; later submits are kept", async () => {
    const queued = await Promise.all(
      Array.from({ length: 5 }, (_, i) => client.submitTask(run, { label: `purged-${i}` })),
    );
    const delayed = await client.submitTask(run, { label: "purged-delayed" }, { delayMs: 600_000 });
    expect((await delayed.status()).state).toBe(TaskState.SCHEDULED);
    expect((await client.queues.getQueue("probe")).queued).toBe(5n);
    expect(await client.queues.purgeQueue("probe", "clearing the backlog")).toBe(6);
    for (const task of [...queued, delayed]) {
      const status = await task.status();
      expect(status.state).toBe(TaskState.CANCELLED);
      expect(status.error?.message).toBe("clearing the backlog");
    }
    expect((await client.queues.getQueue("probe")).queued).toBe(0n);
    await startWorker();
    const after = await client.submitTask(run, { label: "after-purge" });
    expect((await after.result()).label).toBe("after-purge");
    for (let i = 0; i < 5; i++) expect(started.has(`purged-${i}`)).toBe(false);
  });

  it("with a backlog, higher priorities are taken first", async () => {
    const submitted = [];
    for (const priority of ["low", "normal", "high"] as const) {
      for (let i = 0; i < 8; i++) {
        submitted.push(await client.submitTask(run, { label: `${priority}-${i}`, sleepMs: 40 }, { priority }));
      }
    }
    await startWorker({ concurrency: 1, prefetch: 8 });
    await Promise.all(submitted.map((task) => task.result()));
    const rank = { high: 0, normal: 1, low: 2 } as Record<string, number>;
    // The first task takes the free slot before the other priorities' pulls arrive.
    const order = [...started.keys()].filter((label) => /^(high|normal|low)-/.test(label)).slice(1);
    const ranks = order.map((label) => rank[label.split("-")[0] ?? ""]);
    expect(ranks).toEqual(ranks.toSorted());
  });

  it("names an unknown worker type (NOT_FOUND), a missing one and a malformed task id (INVALID_ARGUMENT), and a missing dead letter (NOT_FOUND)", async () => {
    const failure = (p: Promise<unknown>) =>
      p.then(
        () => undefined,
        (e: TaskError) => e,
      );
    const unknown = await failure(client.queues.getQueue("nosuch"));
    expect(unknown).toMatchObject({ code: Code.NotFound });
    expect(unknown?.message).toMatch(/unknown worker type "nosuch"/);
    expect(await failure(client.queues.listDeadLetters("nosuch"))).toMatchObject({ code: Code.NotFound });
    expect(await failure(client.queues.pauseQueue(""))).toMatchObject({ code: Code.InvalidArgument });
    const malformed = await failure(client.queues.getDeadLetter("probe.nonsense"));
    expect(malformed).toMatchObject({ code: Code.InvalidArgument });
    expect(malformed?.message).toMatch(/task id "probe\.nonsense" is malformed/);
    const none = await failure(client.queues.getDeadLetter("probe.01M81KRJQKXX1XB86P9GKYNA2Y"));
    expect(none).toMatchObject({ code: Code.NotFound });
    expect(none?.message).toMatch(/probe\.01M81KRJQKXX1XB86P9GKYNA2Y has no dead letter/);
  });
});

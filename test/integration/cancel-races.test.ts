import { Code, ConnectError } from "@connectrpc/connect";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { topology } from "../../sdk/core/names.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import type { AttemptOutcome } from "../../worker-runtime/worker-event.ts";
import {
  implementLimitedProbeService,
  implementProbeService,
  limitedProbeService,
  probeService,
} from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";
import { startTcpProxy } from "../support/tcp-proxy.ts";

const run = probeService.methods.run;

/** A worker of `services` that records which tasks' handlers ran and each attempt's outcome. */
async function observedWorker(
  nats: string | NatsConnection,
  workerId: string,
  limited = false,
  topology?: { statusTtlMs: number; duplicateWindowMs: number },
) {
  const ran: string[] = [];
  const outcomes = new Map<string, AttemptOutcome>();
  const handler = {
    async run({ label, sleepMs }: { label: string; sleepMs: number }) {
      ran.push(label);
      await new Promise((resolve) => setTimeout(resolve, sleepMs));
      return { label };
    },
  };
  const worker = await createWorker({
    nats,
    workerId,
    topology,
    services: [limited ? implementLimitedProbeService(handler) : implementProbeService(handler)],
    onEvent: (event) => {
      if (event.type === "attempt") outcomes.set(event.taskId, event.outcome);
    },
  });
  return { worker, ran, outcomes };
}

describe("cancels and expiries that come while an attempt starts", () => {
  let nats: NatsServer;
  let client: TaskwireClient;
  const workers: Worker[] = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    client = await createClient({ nats: nats.url, services: [probeService, limitedProbeService] });
  }, 30_000);

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await client?.close();
    await nats?.stop();
  });

  it("a cancel heard while the start record is written ends the attempt before its handler runs", async () => {
    const proxy = await startTcpProxy(nats.port);
    try {
      const { worker, ran, outcomes } = await observedWorker(proxy.url, "held");
      workers.push(worker);
      // Everything the server sends the worker once its start write leaves (the PubAck
      // first) is held: the cancel reaches it before it learns the start is stored.
      proxy.holdAfter("$KV.taskwire_status.probe.");
      const task = await client.submitTask(run, { label: "held", sleepMs: 0 }, { retry: { maxAttempts: 1 } });
      await poll(async () => ((await client.getTask(task.id)).state === TaskState.RUNNING ? true : undefined));
      expect((await task.cancel()).state).toBe(TaskState.CANCELLED);
      await poll(async () => (proxy.holds(`taskwire.cancel.probe`) ? true : undefined));
      proxy.release();
      expect(await poll(async () => outcomes.get(task.id))).toBe("cancelled");
      expect(ran).toEqual([]);
      expect((await client.getTask(task.id)).state).toBe(TaskState.CANCELLED);
    } finally {
      await proxy.close();
    }
  });

  it("a task whose expiry passes while it waits for a lease ends EXPIRED without running", async () => {
    const { worker, ran } = await observedWorker(nats.url, "leases", true);
    workers.push(worker);
    // max_concurrency 2: two holders take both leases; the third is pulled at once and waits.
    const limitedRun = limitedProbeService.methods.run;
    const holders = await Promise.all(
      [0, 1].map((i) => client.submitTask(limitedRun, { label: `holder-${i}`, sleepMs: 2000 })),
    );
    await poll(async () => (ran.length === 2 ? true : undefined));
    const late = await client.submitTask(
      limitedRun,
      { label: "late", sleepMs: 0 },
      { expiresAt: new Date(Date.now() + 500) },
    );
    const outcome = await late.result().catch((error: unknown) => ConnectError.from(error));
    expect(outcome).toBeInstanceOf(ConnectError);
    expect((outcome as ConnectError).code).toBe(Code.DeadlineExceeded);
    expect((await client.getTask(late.id)).state).toBe(TaskState.EXPIRED);
    await Promise.all(holders.map((h) => h.result()));
    expect(ran.toSorted()).toEqual(["holder-0", "holder-1"]);
  });
});

describe("a cancelled key submitted again once its record expired", () => {
  let nats: NatsServer;
  let client: TaskwireClient;
  let worker: Worker | undefined;
  const topology = { statusTtlMs: 2000, duplicateWindowMs: 1000 };

  beforeAll(async () => {
    nats = await startNatsServer();
  }, 30_000);

  afterAll(async () => {
    await worker?.close();
    await client?.close();
    await nats?.stop();
  });

  it("runs: the worker that heard the old task's cancel does not drop the new one", async () => {
    // The worker provisions the status bucket, with the short TTL.
    const observed = await observedWorker(nats.url, "remembers", false, topology);
    worker = observed.worker;
    client = await createClient({ nats: nats.url, services: [probeService] });
    const first = await client.submitTask(
      run,
      { label: "old", sleepMs: 0 },
      { idempotencyKey: "order-42", delayMs: 60_000 },
    );
    expect((await first.cancel()).state).toBe(TaskState.CANCELLED);
    // The record expires: the key is new again.
    await poll(async () =>
      client.getTask(first.id).then(
        () => undefined,
        (error: unknown) => (ConnectError.from(error).code === Code.NotFound ? true : undefined),
      ),
    );
    const second = await client.submitTask(run, { label: "new", sleepMs: 0 }, { idempotencyKey: "order-42" });
    expect(second.id).toBe(first.id);
    expect((await second.result()).label).toBe("new");
    expect(observed.ran).toEqual(["new"]);
  });
});

describe("a cancel whose queued message cannot be removed", () => {
  let nats: NatsServer;
  const connections: NatsConnection[] = [];
  const clients: TaskwireClient[] = [];
  let worker: Worker | undefined;

  beforeAll(async () => {
    // The canceller may do everything but delete stream messages: its delete fails.
    nats = await startNatsServer({
      config: `authorization {
  users = [
    { user: canceller, password: c, permissions: { publish: { deny: ["$JS.API.STREAM.MSG.DELETE.>"] } } }
    { user: operator, password: o }
  ]
}`,
    });
  }, 30_000);

  afterAll(async () => {
    await worker?.close();
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(connections.map((nc) => nc.close()));
    await nats?.stop();
  });

  const clientAs = async (user: string, pass: string) => {
    const nc = await connect({ servers: nats.url, user, pass });
    connections.push(nc);
    const client = await createClient({ nats: nc, services: [probeService] });
    clients.push(client);
    return client;
  };

  it("fails UNAVAILABLE, and a cancel made again removes the message: the task never runs", async () => {
    const canceller = await clientAs("canceller", "c");
    const operator = await clientAs("operator", "o");
    const task = await canceller.submitTask(run, { label: "cancelled", sleepMs: 0 });
    const refused = await task.cancel().catch((error: unknown) => ConnectError.from(error));
    expect(refused).toBeInstanceOf(ConnectError);
    expect((refused as ConnectError).code).toBe(Code.Unavailable);
    expect((refused as ConnectError).rawMessage).toMatch(
      new RegExp(`^${task.id} is CANCELLED, but its queued message could not be removed: .*call CancelTask again`),
    );
    expect((await operator.getTask(task.id)).state).toBe(TaskState.CANCELLED);
    // Made again where the delete works, the cancel removes the message it left.
    expect((await operator.cancelTask(task.id)).state).toBe(TaskState.CANCELLED);
    const nc = await connect({ servers: nats.url, user: "operator", pass: "o" });
    connections.push(nc);
    const info = await (await jetstreamManager(nc)).streams.info(topology.streamName(probeService.workerType));
    expect(info.state.messages).toBe(0);
    // A worker that starts now, and never heard the cancel, finds nothing to run.
    const observed = await observedWorker(nc, "late", false);
    worker = observed.worker;
    const other = await operator.submitTask(run, { label: "other", sleepMs: 0 });
    expect((await other.result()).label).toBe("other");
    expect(observed.ran).toEqual(["other"]);
  });
});

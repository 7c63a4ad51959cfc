import { hostname } from "node:os";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { timestampFromMs, timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient as createConnectClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { GatewayService } from "../../gen/taskwire/v1/gateway_service_pb.ts";
import { QueueService, type QueueSnapshot } from "../../gen/taskwire/v1/queue_service_pb.ts";
import { TaskService } from "../../gen/taskwire/v1/task_service_pb.ts";
import { WorkerService } from "../../gen/taskwire/v1/worker_service_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { NonRetryableError } from "../../sdk/core/task-error.ts";
import { createTaskRegistry, registryOf } from "../../sdk/core/task-registry.ts";
import { createNatsQueueBackend } from "../../sdk/nats/nats-queue-backend.ts";
import { createNatsTaskBackend } from "../../sdk/nats/nats-task-backend.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import { apiKeyHash } from "../../server/gateway-auth.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import type { TaskContext } from "../../worker-runtime/task-context.ts";
import { type RunRequest, RunRequestSchema } from "../gen/probe/v1/probe_pb.ts";
import {
  implementProbeService,
  implementVolatileProbeService,
  probeService,
  volatileProbeService,
} from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

const services = [probeService, volatileProbeService, hashService];
const run = probeService.methods.run;
const keys = {
  probeReader: "tw_probe_0123456789abcdefghijklmnopqrstuv",
  hashReader: "tw_hashr_0123456789abcdefghijklmnopqrstuv",
};

/**
 * What an operator's screen needs and no other service gave: the live workers,
 * each queue's oldest waiting task and workers, throughput over time, and who
 * the caller is. Served by a real gateway over a real nats-server, watched by
 * many callers through one watch of the broker's, and filtered by permissions.
 */
describe("workers, queues over time, and the caller", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let gateway: Gateway;
  let secured: Gateway;
  let client: TaskwireClient;
  const workers: Worker[] = [];
  /** Labels whose handler waits until released. */
  const held = new Map<string, () => void>();

  beforeAll(async () => {
    nats = await startNatsServer({ monitoring: true });
    nc = await connect({ servers: nats.url });
    const backend = await createNatsTaskBackend({ nc, registry: createTaskRegistry(services) });
    const queues = await createNatsQueueBackend({ nc, tasks: backend });
    const options = { backend, queues, services, typeRegistry: registryOf(services) };
    gateway = await createGateway(options);
    secured = await createGateway({
      ...options,
      auth: {
        apiKeys: [
          { name: "probe-reader", sha256: apiKeyHash(keys.probeReader), permissions: ["read:probe"] },
          { name: "hash-reader", sha256: apiKeyHash(keys.hashReader), permissions: ["read:hasher", "submit:hasher"] },
        ],
      },
      auditLog: () => {},
    });
    client = await createClient({ gateway: gateway.url });
  }, 30_000);

  afterEach(async () => {
    for (const release of held.values()) release();
    held.clear();
    await Promise.all(workers.splice(0).map((w) => w.close()));
  });

  afterAll(async () => {
    await client?.close();
    await Promise.all([gateway?.close(), secured?.close()]);
    await nc?.close();
    await nats?.stop();
  });

  /** A worker of the probe type, or of the volatile one (whose counts no other test touches). */
  const startWorker = async (type: "probe" | "volatile" = "probe") => {
    const handler = {
      async run({ label, failAttempts, nonRetryable }: RunRequest, ctx: TaskContext) {
        if (label.startsWith("hold")) await new Promise<void>((resolve) => held.set(label, resolve));
        if (nonRetryable) throw new NonRetryableError(`${label} cannot work`);
        if (ctx.attempt <= failAttempts) throw new Error(`${label} failed attempt ${ctx.attempt}`);
        return { label, attempt: ctx.attempt, workerId: ctx.workerId };
      },
    };
    const worker = await createWorker({
      nats: nats.url,
      concurrency: 4,
      services: [type === "probe" ? implementProbeService(handler) : implementVolatileProbeService(handler)],
    });
    workers.push(worker);
    return worker;
  };
  const consumersOf = async (stream: string) => {
    const jsz = (await (await fetch(`${nats.monitorUrl}/jsz?consumers=true`)).json()) as {
      account_details?: { stream_detail?: { name: string; consumer_detail?: unknown[] }[] }[];
    };
    const detail = jsz.account_details?.flatMap((a) => a.stream_detail ?? []).find((s) => s.name === stream);
    return detail?.consumer_detail?.length ?? 0;
  };
  const bearer =
    (key: string): Interceptor =>
    (next) =>
    (request) => {
      request.header.set("authorization", `Bearer ${key}`);
      return next(request);
    };
  const securedClient = <S extends Parameters<typeof createConnectClient>[0]>(service: S, key: string) =>
    createConnectClient(
      service,
      createConnectTransport({ baseUrl: secured.url, httpVersion: "1.1", interceptors: [bearer(key)] }),
    );

  it("lists each live instance with its host, pid, types and running tasks, until it closes", async () => {
    const worker = await startWorker();
    const handle = await client.submitTask(run, { label: "hold-list" });
    const [instance] = await poll(async () => {
      const listed = await client.queues.listWorkers("probe");
      return listed[0]?.types[0]?.running === 1 ? listed : undefined;
    });
    expect(instance).toMatchObject({
      workerId: worker.id,
      host: hostname(),
      pid: process.pid,
      types: [{ workerType: "probe", running: 1, concurrency: 4 }],
      runtime: `node ${process.versions.node}`,
    });
    expect(Date.now() - timestampMs(instance?.heartbeatAt ?? timestampFromMs(0))).toBeLessThan(10_000);
    expect(await client.queues.listWorkers("hasher")).toEqual([]);
    held.get("hold-list")?.();
    await handle.result();
    await worker.close();
    expect(await client.queues.listWorkers()).toEqual([]);
  });

  it("gives a queue's oldest waiting task and its live workers", async () => {
    await client.queues.pauseQueue("probe");
    try {
      const before = Date.now();
      await client.submitTask(run, { label: "waits" });
      let queue = await client.queues.getQueue("probe");
      const oldest = timestampMs(queue.oldestQueuedAt ?? timestampFromMs(0));
      expect(oldest).toBeGreaterThanOrEqual(before - 1_000);
      expect(oldest).toBeLessThanOrEqual(Date.now());
      expect(queue.workers).toBe(0);
      await startWorker();
      queue = await client.queues.getQueue("probe");
      expect(queue.workers).toBe(1);
      // A listing counts every type's workers from one read: the same counts.
      const listed = await client.queues.listQueues();
      expect(listed.map((q) => [q.workerType, q.workers])).toEqual([
        ["hasher", 0],
        ["probe", 1],
        ["volatile", 0],
      ]);
    } finally {
      await client.queues.resumeQueue("probe");
    }
    const drained = await poll(async () => {
      const queue = await client.queues.getQueue("probe");
      return queue.queued === 0n && queue.running === 0n ? queue : undefined;
    });
    expect(drained.oldestQueuedAt).toBeUndefined();
  });

  it("gives a task's payload while the broker keeps it: queued, running or dead-lettered", async () => {
    const tasks = createConnectClient(
      TaskService,
      createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    );
    const payloadOf = async (taskId: string) => {
      const { payload } = await tasks.getTask({ taskId, includePayload: true });
      return payload && fromBinary(RunRequestSchema, payload.value).label;
    };
    await client.queues.pauseQueue("probe");
    const queued = await client.submitTask(run, { label: "hold-payload" });
    const doomed = await client.submitTask(run, { label: "doomed-payload", nonRetryable: true });
    expect(await payloadOf(queued.id)).toBe("hold-payload");
    expect((await tasks.getTask({ taskId: queued.id })).payload).toBeUndefined();
    await client.queues.resumeQueue("probe");
    await startWorker();
    await poll(async () => (held.has("hold-payload") ? true : undefined));
    expect(await payloadOf(queued.id)).toBe("hold-payload");
    held.get("hold-payload")?.();
    await queued.result();
    // Finished and acked: the broker no longer keeps it.
    expect(await payloadOf(queued.id)).toBeUndefined();
    await expect(doomed.result()).rejects.toThrow(/cannot work/);
    expect(await payloadOf(doomed.id)).toBe("doomed-payload");
  });

  it("counts finished attempts by outcome, per 10-second step", async () => {
    const since = new Date();
    const worker = await startWorker("volatile");
    const runVolatile = volatileProbeService.methods.run;
    const handles = await Promise.all([
      client.submitTask(runVolatile, { label: "ok-1" }),
      client.submitTask(runVolatile, { label: "ok-2" }),
      client.submitTask(runVolatile, { label: "retried", failAttempts: 1 }),
      client.submitTask(runVolatile, { label: "doomed", nonRetryable: true }),
    ]);
    await Promise.allSettled(handles.map((h) => h.result()));
    // Closing publishes what the worker counted in the step not yet over.
    await worker.close();
    const points = await poll(async () => {
      const read = await client.queues.getThroughput("volatile", since);
      const sum = (key: "succeeded" | "failed" | "retried") => read.reduce((n, p) => n + p[key], 0n);
      return sum("succeeded") === 3n ? { succeeded: 3n, failed: sum("failed"), retried: sum("retried") } : undefined;
    });
    expect(points).toEqual({ succeeded: 3n, failed: 1n, retried: 1n });
    await expect(client.queues.getThroughput("volatile", new Date(Date.now() - 25 * 3_600_000))).rejects.toThrow(
      /more than a day ago/,
    );
  });

  it("streams the queues to many watchers through one watch of the broker", async () => {
    const watchers = [new AbortController(), new AbortController()];
    const seen: QueueSnapshot[][][] = [[], []];
    const follow = watchers.map(async (watcher, i) => {
      for await (const snapshots of client.queues.watchQueues(watcher.signal)) seen[i]?.push(snapshots);
    });
    const probeOf = (snapshots: QueueSnapshot[] | undefined) => snapshots?.find((s) => s.queue?.workerType === "probe");
    await poll(async () => (seen.every((s) => s.length > 0) ? true : undefined));
    expect(seen[0]?.[0]?.map((s) => s.queue?.workerType)).toEqual(["hasher", "probe", "volatile"]);
    await client.queues.pauseQueue("probe");
    try {
      await client.submitTask(run, { label: "watched" });
      // Every watcher sees the queue grow.
      for (const watcher of seen) {
        await poll(async () => ((probeOf(watcher.at(-1))?.queue?.queued ?? 0n) > 0n ? true : undefined));
      }
      // The watch reads the broker on a timer shared by both: no consumer per watcher.
      expect(await consumersOf("TASKWIRE_THROUGHPUT")).toBe(0);
    } finally {
      for (const watcher of watchers) watcher.abort();
      await Promise.allSettled(follow);
      await client.queues.resumeQueue("probe");
    }
  });

  it("streams the live workers to many watchers from one read of the broker a second", async () => {
    const watchers = [new AbortController(), new AbortController(), new AbortController()];
    const latest: string[][] = [[], [], []];
    const follow = watchers.map(async (watcher, i) => {
      for await (const instances of client.queues.watchWorkers(undefined, watcher.signal)) {
        latest[i] = instances.map((w) => w.workerId);
      }
    });
    const worker = await startWorker();
    await poll(async () => (latest.every((ids) => ids.includes(worker.id)) ? true : undefined));
    // One batched read a second for them all: no consumer, nothing left behind.
    expect(await consumersOf("KV_taskwire_workers")).toBe(0);
    await worker.close();
    await poll(async () => (latest.every((ids) => ids.length === 0) ? true : undefined));
    for (const watcher of watchers) watcher.abort();
    await Promise.allSettled(follow);
  });

  it("shows a caller only what it may read, and tells it who it is", async () => {
    await startWorker();
    const queues = securedClient(QueueService, keys.hashReader);
    expect((await queues.listQueues({})).queues.map((q) => q.workerType)).toEqual(["hasher"]);
    await expect(queues.getThroughput({ workerType: "probe" })).rejects.toMatchObject({
      code: Code.PermissionDenied,
    });
    const workerService = securedClient(WorkerService, keys.hashReader);
    expect((await workerService.listWorkers({})).workers).toEqual([]);
    const probeWorkers = securedClient(WorkerService, keys.probeReader);
    expect((await probeWorkers.listWorkers({})).workers.map((w) => w.types.map((t) => t.workerType))).toEqual([
      ["probe"],
    ]);

    const gatewayService = securedClient(GatewayService, keys.hashReader);
    expect(await gatewayService.whoAmI({})).toMatchObject({
      name: "hash-reader",
      via: "api-key",
      permissions: ["read:hasher", "submit:hasher"],
    });
    const anonymous = createConnectClient(
      GatewayService,
      createConnectTransport({ baseUrl: secured.url, httpVersion: "1.1" }),
    );
    await expect(anonymous.whoAmI({})).rejects.toSatisfy((e) => ConnectError.from(e).code === Code.Unauthenticated);
    expect(
      await createConnectClient(
        GatewayService,
        createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
      ).whoAmI({}),
    ).toMatchObject({ name: "anonymous", via: "open", permissions: ["admin:*"] });

    // The types a caller may use, with the schemas to build and read their messages.
    const { types, files } = await gatewayService.listTaskTypes({});
    expect(types.map((t) => [t.workerType, t.service, t.methods.map((m) => m.name)])).toEqual([
      ["hasher", hashService.service.typeName, hashService.service.methods.map((m) => m.name)],
    ]);
    if (!files) throw new Error("ListTaskTypes gave no files");
    const registry = createFileRegistry(files);
    const request = registry.getMessage(types[0]?.methods[0]?.requestType ?? "");
    expect(request?.fields.length).toBeGreaterThan(0);
  });
});

import { Code, createClient as createConnectClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { hashService, implementHashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { implementReportService, reportService } from "../../examples/gen/example/v1/report_taskwire.ts";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { TaskService } from "../../gen/taskwire/v1/task_service_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { topology as sdkTopology } from "../../sdk/core/names.ts";
import { stateName } from "../../sdk/core/status.ts";
import { TaskError } from "../../sdk/core/task-error.ts";
import { taskFromOptions } from "../../sdk/core/task-from-options.ts";
import { taskIdToken } from "../../sdk/core/task-id.ts";
import { createTaskRegistry, registryOf } from "../../sdk/core/task-registry.ts";
import { createNatsTaskBackend } from "../../sdk/nats/nats-task-backend.ts";
import { RequestPipeline } from "../../sdk/nats/request-pipeline.ts";
import { readStatus, writeStatus } from "../../sdk/nats/status-store.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import { HealthService, ServingStatus } from "../../server/health-service.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import type { WorkerEvent } from "../../worker-runtime/worker-event.ts";
import { callTaskServiceJson } from "../support/connect-json.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";
import { startTcpProxy } from "../support/tcp-proxy.ts";

const services = [hashService, reportService];
// A short ack wait: a task held without heartbeats is redelivered within a second.
const topology = { ackWaitMs: 1000 };

/** TaskService against a real nats-server, with workers started only where a test needs them. */
describe("TaskService over JetStream", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let gateway: Gateway;
  let client: TaskwireClient;
  const workers: Worker[] = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const backend = await createNatsTaskBackend({ nc, registry: createTaskRegistry(services), topology });
    gateway = await createGateway({ backend, typeRegistry: registryOf(services) });
    client = await createClient({ gateway: gateway.url });
  }, 30_000);

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close()));
  });

  afterAll(async () => {
    await client?.close();
    await gateway?.close();
    await nc?.close();
    await nats?.stop();
  });

  const aborted = new Set<string>();
  const startWorker = async (
    options: { onEvent?: (event: WorkerEvent) => void; concurrency?: number; prefetch?: number } = {},
  ) => {
    const worker = await createWorker({
      nats: nats.url,
      ...options,
      topology,
      services: [
        implementHashService({ digest: async ({ text }) => ({ hex: text.toUpperCase(), rounds: 1 }) }),
        implementReportService({
          generate: async ({ title, sections, sectionMs }, ctx) => {
            ctx.signal.addEventListener("abort", () => aborted.add(ctx.taskId));
            for (let i = 0; i < sections; i++) {
              ctx.signal.throwIfAborted();
              await new Promise((r) => setTimeout(r, sectionMs));
            }
            return { body: title, sections };
          },
        }),
      ],
    });
    workers.push(worker);
    return worker;
  };

  it("BatchSubmit accepts or refuses each task on its own, in order", async () => {
    const hashes = hashService.methods.digest;
    const results = await client.submitBatch(hashes, [
      { request: { text: "a" } },
      { request: { text: "" } }, // missing required field
      { request: { text: "c" }, options: { idempotencyKey: "batch-c" } },
      { request: { text: "c again" }, options: { idempotencyKey: "batch-c" } },
    ]);
    expect(results).toHaveLength(4);
    const [a, missing, c, again] = results;
    expect(missing).toBeInstanceOf(TaskError);
    expect((missing as TaskError).code).toBe(Code.InvalidArgument);
    expect((missing as TaskError).message).toMatch(/missing required field: text/);
    if (!a || !c || !again || a instanceof TaskError || c instanceof TaskError || again instanceof TaskError)
      throw new Error("a valid task was refused");
    expect(again.id).toBe(c.id);
    expect(again.duplicate).toBe(true);
    expect((await a.status()).state).toBe(TaskState.PENDING);

    await startWorker();
    expect((await a.result()).hex).toBe("A");
    expect((await c.result()).hex).toBe("C");
  });

  it.each(["gateway", "direct"] as const)(
    "every result() resolves when tasks finish as fast as they are submitted (%s)",
    async (mode) => {
      // Direct mode takes both paths: the first results read the status, later
      // ones (submitted once the type's writes are followed) need no read.
      const submitting = mode === "gateway" ? client : await createClient({ nats: nats.url, services });
      await startWorker({ concurrency: 64 });
      const digest = hashService.methods.digest;
      let next = 0;
      const hexes: string[] = [];
      const submitter = async () => {
        while (next < 2000) {
          const text = `r${next++}`;
          const handle = await submitting.submitTask(digest, { text });
          hexes.push((await handle.result()).hex);
        }
      };
      try {
        await Promise.all(Array.from({ length: 50 }, submitter));
      } finally {
        if (submitting !== client) await submitting.close();
      }
      expect(hexes).toHaveLength(2000);
    },
    60_000,
  );

  it("refuses, naming the problem, a misspelt JSON field or enum name, a malformed worker type, a page token it never gave and a long cancel reason", async () => {
    const call = (method: string, body: unknown) => callTaskServiceJson(gateway.url, method, body);
    const submit = {
      task: {
        workerType: "hasher",
        method: "Digest",
        payload: { "@type": "type.googleapis.com/example.v1.DigestRequest", text: "strict" },
      },
    };
    const typo = await call("Submit", { task: { ...submit.task, notBefor: "2030-01-01T00:00:00Z" } });
    expect(typo).toMatchObject({ status: 400, body: { code: "invalid_argument" } });
    expect(typo.body.message).toMatch(/notBefor/);
    const badEnum = await call("ListTasks", { states: ["TASK_STATE_NOPE"] });
    expect(badEnum).toMatchObject({ status: 400, body: { code: "invalid_argument" } });
    expect(badEnum.body.message).toMatch(/TASK_STATE_NOPE/);
    const badType = await call("ListTasks", { workerType: "a b" });
    expect(badType).toMatchObject({ status: 400, body: { code: "invalid_argument" } });
    expect(badType.body.message).toMatch(/worker_type "a b" is not a worker type name/);
    const badToken = await call("ListTasks", { workerType: "hasher", pageToken: "garbage" });
    expect(badToken).toMatchObject({ status: 400, body: { code: "invalid_argument" } });
    expect(badToken.body.message).toMatch(/page_token "garbage" is not one a ListTasks answer gave/);
    const longReason = await call("CancelTask", {
      taskId: "hasher.01M81KRJQKXX1XB86P9GKYNA2Y",
      reason: "x".repeat(5000),
    });
    expect(longReason).toMatchObject({ status: 400, body: { code: "invalid_argument" } });
    expect(longReason.body.message).toMatch(/reason must be at most 4096 characters, got 5000/);
    // The well-spelt request is accepted.
    expect((await call("Submit", submit)).status).toBe(200);
  });

  it("WaitTask returns the terminal status, or DEADLINE_EXCEEDED when the call's deadline passes first", async () => {
    const task = await client.submitTask(hashService.methods.digest, { text: "wait" });
    const wait = (timeoutMs: number) =>
      callTaskServiceJson(gateway.url, "WaitTask", { taskId: task.id }, { "connect-timeout-ms": String(timeoutMs) });
    const early = await wait(300); // no worker yet
    expect(early.body).toMatchObject({ code: "deadline_exceeded" });
    await startWorker();
    const done = await wait(20_000);
    expect(done.status).toBe(200);
    expect(done.body).toMatchObject({ status: { taskId: task.id, state: "TASK_STATE_SUCCEEDED" } });
  });

  it("WaitTasks streams each task's outcome as it ends, once per id, and NOT_FOUND for an unknown one", async () => {
    await startWorker();
    const slow = await client.submitTask(reportService.methods.generate, {
      title: "slow",
      sections: 4,
      sectionMs: 100,
    });
    const fast = await client.submitTask(reportService.methods.generate, { title: "fast", sections: 1 });
    const unknown = "reports.01M81KRJQKXX1XB86P9GKYNA2Y";
    const tasks = createConnectClient(TaskService, createGrpcTransport({ baseUrl: gateway.url }));
    const outcomes: { taskId: string; ended: string }[] = [];
    for await (const { taskId, outcome } of tasks.waitTasks({ taskIds: [slow.id, fast.id, unknown, slow.id] })) {
      const ended =
        outcome.case === "status" ? stateName(outcome.value.state) : TaskError.fromMessage(outcome.value as never).code;
      outcomes.push({ taskId, ended: String(ended) });
    }
    // The slow one ends last; the others in whichever order they were answered.
    expect(outcomes).toHaveLength(3);
    expect(outcomes[2]).toEqual({ taskId: slow.id, ended: "SUCCEEDED" });
    expect(outcomes.slice(0, 2)).toEqual(
      expect.arrayContaining([
        { taskId: fast.id, ended: "SUCCEEDED" },
        { taskId: unknown, ended: String(Code.NotFound) },
      ]),
    );
    const tooMany = Array.from({ length: 1001 }, (_, i) => `reports.${String(i).padStart(26, "0")}`);
    await expect(async () => {
      for await (const _ of tasks.waitTasks({ taskIds: tooMany })) break;
    }).rejects.toMatchObject({
      code: Code.InvalidArgument,
      rawMessage: "WaitTasks waits for at most 1000 tasks, got 1001",
    });
  });

  it("WaitTasks gives no listener warning, for a full batch or one running task: every wait listens to the call's signal", async () => {
    await startWorker();
    const tasks = createConnectClient(TaskService, createGrpcTransport({ baseUrl: gateway.url }));
    const waitFor = async (requests: { title: string; sections: number; sectionMs?: number }[]) => {
      const handles = await client.submitBatch(
        reportService.methods.generate,
        requests.map((request) => ({ request })),
      );
      const taskIds = handles.map((handle) => {
        if (handle instanceof TaskError) throw handle;
        return handle.id;
      });
      let ended = 0;
      for await (const { outcome } of tasks.waitTasks({ taskIds })) {
        if (outcome.case === "status" && outcome.value.state === TaskState.SUCCEEDED) ended++;
      }
      return ended;
    };
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      expect(await waitFor(Array.from({ length: 30 }, (_, i) => ({ title: `w${i}`, sections: 1 })))).toBe(30);
      // Still running when the wait starts: its wait listens to the signal.
      expect(await waitFor([{ title: "one", sections: 3, sectionMs: 100 }])).toBe(1);
      // Warnings are emitted on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off("warning", onWarning);
    }
    expect(warnings.map((w) => w.name)).not.toContain("MaxListenersExceededWarning");
  });

  it("result() waits of one turn share a WaitTasks stream; an aborted wait leaves it, the others still end", async () => {
    const handles = await client.submitBatch(
      reportService.methods.generate,
      Array.from({ length: 3 }, (_, i) => ({ request: { title: `r${i}`, sections: 1 } })),
    );
    const [kept, dropped, alsoKept] = handles.map((h) => {
      if (h instanceof TaskError) throw h;
      return h;
    });
    const abandon = new AbortController();
    const results = [kept?.result(), dropped?.result({ signal: abandon.signal }), alsoKept?.result()];
    abandon.abort();
    await expect(results[1]).rejects.toMatchObject({ code: Code.Canceled });
    await startWorker();
    expect((await Promise.all([results[0], results[2]])).map((r) => r?.body)).toEqual(["r0", "r2"]);
  });

  it("refuses a batch over 1000 tasks with INVALID_ARGUMENT", async () => {
    const tasks = Array.from({ length: 1001 }, (_, i) => ({ request: { text: `t${i}` } }));
    await expect(client.submitBatch(hashService.methods.digest, tasks)).rejects.toThrow(
      /a batch holds at most 1000 tasks, got 1001/,
    );
  });

  it("ListTasks filters by worker type and state, newest first, in pages", async () => {
    const submitted: string[] = [];
    for (let i = 0; i < 5; i++)
      submitted.push((await client.submitTask(reportService.methods.generate, { title: `l${i}`, sections: 1 })).id);
    const seen: string[] = [];
    let pageToken = "";
    let pages = 0;
    do {
      const page = await client.listTasks({
        workerType: "reports",
        states: [TaskState.PENDING],
        pageSize: 2,
        pageToken,
      });
      expect(page.tasks.length).toBeLessThanOrEqual(2);
      seen.push(...page.tasks.map((t) => t.taskId));
      pageToken = page.nextPageToken;
      pages++;
    } while (pageToken);
    expect(pages).toBeGreaterThanOrEqual(3);
    expect(seen).toEqual([...submitted].reverse());

    await startWorker();
    await Promise.all(submitted.map((id) => client.task(id, reportService.methods.generate.output).result()));
    // A state's entries are written just after the record: a list may lag a result by that write.
    await poll(async () => {
      const done = await client.listTasks({ workerType: "reports", states: [TaskState.SUCCEEDED] });
      const ids = new Set(done.tasks.map((t) => t.taskId));
      return submitted.every((id) => ids.has(id)) ? true : undefined;
    });
    const pending = await client.listTasks({ workerType: "reports", states: [TaskState.PENDING] });
    expect(pending.tasks.map((t) => t.taskId)).not.toEqual(expect.arrayContaining([submitted[0]]));
    await expect(client.listTasks({ workerType: "nope" })).rejects.toThrow(/\[not_found\] unknown worker type "nope"/);
  });

  it("a task cancelled while queued never runs", async () => {
    const generate = reportService.methods.generate;
    const victim = await client.submitTask(generate, { title: "victim", sections: 1 });
    const cancelled = await victim.cancel("no longer needed");
    expect(cancelled.state).toBe(TaskState.CANCELLED);
    expect(cancelled.error?.message).toBe("no longer needed");
    const after = await client.submitTask(generate, { title: "after", sections: 1 });

    const attempts: string[] = [];
    await startWorker({
      onEvent: (event) => {
        if (event.type === "attempt") attempts.push(event.taskId);
      },
    });
    await after.result();
    const final = await victim.status();
    expect(final.state).toBe(TaskState.CANCELLED);
    expect(final.workerId).toBe("");
    expect(final.startedAt).toBeUndefined();
    expect(attempts).not.toContain(victim.id);
    await expect(victim.result()).rejects.toThrow(/\[canceled\] no longer needed/);
  });

  it("a running task's handler sees its signal abort on cancel; the task ends CANCELLED", async () => {
    await startWorker();
    const task = await client.submitTask(reportService.methods.generate, {
      title: "long",
      sections: 50,
      sectionMs: 100,
    });
    await poll(async () => ((await task.status()).state === TaskState.RUNNING ? true : undefined));
    await task.cancel();
    await expect(task.result()).rejects.toThrow(/\[canceled\]/);
    expect((await task.status()).state).toBe(TaskState.CANCELLED);
    await poll(async () => (aborted.has(task.id) ? true : undefined));
  });

  it("a handler whose worker missed the cancel message is aborted at its RUNNING write, after a recorded start too", async () => {
    await startWorker();
    // One attempt: its start is recorded before the handler runs.
    const task = await client.submitTask(
      reportService.methods.generate,
      { title: "missed cancel", sections: 600, sectionMs: 100 },
      { retry: { maxAttempts: 1 } },
    );
    const bucket = { kv: await new Kvm(nc).open(sdkTopology.statusBucket), requests: new RequestPipeline(nc) };
    try {
      const started = await poll(async () => {
        const record = await readStatus(bucket, task.id);
        return record?.status.state === TaskState.RUNNING ? record : undefined;
      });
      // Cancelled as cancelTask does, but with no message on the cancel subject.
      started.status.state = TaskState.CANCELLED;
      expect(await writeStatus(bucket, started.status, started.revision)).toBeDefined();
      await poll(async () => (aborted.has(task.id) ? true : undefined));
      expect((await task.status()).state).toBe(TaskState.CANCELLED);
    } finally {
      bucket.requests.close();
    }
  });

  // Direct clients hear of outcomes through the server's status events (routed by the
  // id); keyed ids carry no route, and a cancel made elsewhere notifies nobody of them.
  const cancelledElsewhere = async (options: { resultGraceMs: number; idempotencyKey?: string }) => {
    await startWorker();
    const direct = await createClient({ nats: nats.url, services, resultGraceMs: options.resultGraceMs });
    try {
      const task = await direct.submitTask(
        reportService.methods.generate,
        { title: "cancelled elsewhere", sections: 50, sectionMs: 100 },
        { idempotencyKey: options.idempotencyKey },
      );
      // Settled here at once: it may reject while the cancel below is still being answered.
      const result = task.result().then(
        () => undefined,
        (error: TaskError) => error,
      );
      await poll(async () => ((await task.status()).state === TaskState.RUNNING ? true : undefined));
      await client.cancelTask(task.id, "from the gateway");
      expect((await result)?.message).toMatch(/\[canceled\] from the gateway/);
    } finally {
      await direct.close();
    }
  };

  it("result() hears of a cancel made through another client from the server's status event", async () => {
    // A grace longer than the test's timeout: only the event can end the wait in time.
    await cancelledElsewhere({ resultGraceMs: 600_000 });
  });

  it("result() still ends when no notification comes: a keyed task cancelled through another client", async () => {
    await cancelledElsewhere({ resultGraceMs: 200, idempotencyKey: `cancelled-elsewhere-${Date.now()}` });
  });

  /** Sees a copy of every batched read of a stream (core NATS: the stream still answers). */
  const spyOnReads = async (stream: string = sdkTopology.statusStream) => {
    const reads: string[][] = [];
    const subscription = nc.subscribe(`$JS.API.DIRECT.GET.${stream}`, {
      callback: (_, msg) => {
        reads.push(msg.json<{ multi_last?: string[] }>().multi_last ?? []);
      },
    });
    await nc.flush();
    return {
      /** Reads that named a subject ending in `taskId`'s token (its status record, its WorkItem). */
      of: (taskId: string) =>
        reads.filter((subjects) => subjects.some((subject) => subject.endsWith(`.${taskIdToken(taskId)}`))).length,
      stop: () => subscription.unsubscribe(),
    };
  };

  it("result() of a task queued past its grace waits without a watch: its record is read now and then", async () => {
    const direct = await createClient({ nats: nats.url, services, resultGraceMs: 10 });
    const jsm = await jetstreamManager(nc);
    const statusConsumers = async () =>
      (await jsm.consumers.list(sdkTopology.statusStream).next()).map((consumer) => consumer.name);
    // The gateway's own watches of earlier tests may still have theirs.
    const before = await statusConsumers();
    const reads = await spyOnReads();
    const lookups = await spyOnReads(sdkTopology.streamName("hasher"));
    try {
      const task = await direct.submitTask(hashService.methods.digest, { text: "queued long", rounds: 1 });
      const result = task.result();
      // No worker yet: its record is read at about 10, 20, 40 ... ms, and after 8 reads
      // that found none it is looked for in the queue, found, and read on. result() used
      // to start watching the bucket at once, with a consumer of every write of the type.
      await poll(async () => (lookups.of(task.id) >= 1 && reads.of(task.id) >= 9 ? true : undefined), 20_000, 20);
      expect((await statusConsumers()).filter((name) => !before.includes(name))).toEqual([]);
      await startWorker();
      expect((await result).hex).toBe("QUEUED LONG");
      expect((await statusConsumers()).filter((name) => !before.includes(name))).toEqual([]);
    } finally {
      reads.stop();
      lookups.stop();
      await direct.close();
    }
  });

  it("a watch whose signal aborts while it starts ends CANCELED, without a status", async () => {
    const backend = await createNatsTaskBackend({ nc, registry: createTaskRegistry(services), topology });
    try {
      const { taskId } = await backend.submit(taskFromOptions(hashService.methods.digest, { text: "unwatched" }));
      const aborted = new AbortController();
      const watch = backend.watchTask(taskId, aborted.signal)[Symbol.asyncIterator]();
      const first = watch.next(); // follows the bucket first: a consumer, a round trip away
      aborted.abort();
      await expect(first).rejects.toMatchObject({ code: Code.Canceled });
    } finally {
      await backend.close();
    }
  });

  it("a keyed task submitted again while its result() is awaited past the grace keeps that wait", async () => {
    const direct = await createClient({ nats: nats.url, services, resultGraceMs: 100 });
    const reads = await spyOnReads();
    try {
      const idempotencyKey = `resubmitted-${Date.now()}`;
      const task = await direct.submitTask(
        hashService.methods.digest,
        { text: "twice", rounds: 1 },
        { idempotencyKey },
      );
      const result = task.result();
      await poll(async () => (reads.of(task.id) >= 1 ? true : undefined), 10_000, 20);
      const again = await direct.submitTask(
        hashService.methods.digest,
        { text: "twice", rounds: 1 },
        { idempotencyKey },
      );
      expect(again.id).toBe(task.id);
      await startWorker();
      expect((await result).hex).toBe("TWICE");
    } finally {
      reads.stop();
      await direct.close();
    }
  });

  it("result() of a task that left the queue without a record ends NOT_FOUND, after its reads found none", async () => {
    const direct = await createClient({ nats: nats.url, services, resultGraceMs: 20 });
    try {
      const task = await direct.submitTask(hashService.methods.digest, { text: "purged", rounds: 1 });
      const result = task.result().then(
        () => undefined,
        (error: TaskError) => error,
      );
      const jsm = await jetstreamManager(nc);
      await jsm.streams.purge(sdkTopology.streamName("hasher"), {
        filter: sdkTopology.taskSubjectAnyPriority("hasher", taskIdToken(task.id)),
      });
      expect((await result)?.code).toBe(Code.NotFound);
    } finally {
      await direct.close();
    }
  });

  it("result() ends after a reconnect, from the task's record, when its outcome came while the client was away", async () => {
    await startWorker();
    const proxy = await startTcpProxy(Number(new URL(nats.url).port));
    const away = await connect({ servers: proxy.url, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
    // A grace longer than the test's timeout: only the reconnect's read can end the wait in time.
    const direct = await createClient({ nats: away, services, resultGraceMs: 600_000 });
    const jsm = await jetstreamManager(nc);
    const statusConsumers = async () =>
      (await jsm.consumers.list(sdkTopology.statusStream).next()).map((consumer) => consumer.name);
    const before = await statusConsumers();
    try {
      const task = await direct.submitTask(reportService.methods.generate, {
        title: "while away",
        sections: 3,
        sectionMs: 100,
      });
      const result = task.result();
      proxy.cut();
      // Its status event went to nobody: the client was disconnected.
      await poll(async () => ((await client.getTask(task.id)).state === TaskState.SUCCEEDED ? true : undefined));
      proxy.restore();
      expect((await result).body).toBe("while away");
      // Read, not watched.
      expect((await statusConsumers()).filter((name) => !before.includes(name))).toEqual([]);
    } finally {
      await direct.close();
      await away.close();
      await proxy.close();
    }
  });

  it("a busy worker's pulled backlog is kept alive: no task is redelivered while it waits", async () => {
    // ack_wait is 1 s; each task takes 0.6 s on the only slot, and all four are pulled at once: the last waits ~1.8 s.
    const attempts: number[] = [];
    await startWorker({
      concurrency: 1,
      prefetch: 4,
      onEvent: (event) => {
        if (event.type === "attempt") attempts.push(event.attempt);
      },
    });
    const ids = [];
    for (let i = 0; i < 4; i++) {
      ids.push(
        (await client.submitTask(reportService.methods.generate, { title: `b${i}`, sections: 3, sectionMs: 200 })).id,
      );
    }
    const statuses = await Promise.all(
      ids.map(async (id) => {
        await client.task(id, reportService.methods.generate.output).result();
        return client.getTask(id);
      }),
    );
    expect(statuses.map((s) => s.attempt)).toEqual([1, 1, 1, 1]);
    // Each attempt is reported once its PubAck comes, maybe after the client heard of its record.
    await poll(async () => (attempts.length === 4 ? true : undefined));
    expect(attempts).toEqual([1, 1, 1, 1]);
  });

  it("while NATS is down: UNAVAILABLE at once, health NOT_SERVING; after it returns a retry succeeds", async () => {
    const health = createConnectClient(HealthService, createGrpcTransport({ baseUrl: gateway.url }));
    const check = async () => (await health.check({ service: "" })).status;
    expect(await check()).toBe(ServingStatus.SERVING);
    const queued = await client.submitTask(hashService.methods.digest, { text: "before" });
    // A watch open across the outage: it must still see the task end.
    const watch = queued.watch()[Symbol.asyncIterator]();
    expect((await watch.next()).value?.state).toBe(TaskState.PENDING);

    await nats.kill("SIGKILL");
    await poll(async () => ((await check()) === ServingStatus.NOT_SERVING ? true : undefined));
    const refused = await client
      .submitTask(hashService.methods.digest, { text: "during" }, { idempotencyKey: "outage" })
      .then(
        () => undefined,
        (error: TaskError) => error,
      );
    expect(refused?.code).toBe(Code.Unavailable);
    expect(refused?.message).toMatch(/not connected to NATS \(reconnecting\); nothing was done, retry later/);
    await expect(client.getTask(queued.id)).rejects.toThrow(/\[unavailable\]/);

    await nats.restart();
    await poll(async () => ((await check()) === ServingStatus.SERVING ? true : undefined));
    const retried = await poll(() =>
      client.submitTask(hashService.methods.digest, { text: "during" }, { idempotencyKey: "outage" }),
    );
    expect(retried.duplicate).toBe(false);
    const again = await client.submitTask(hashService.methods.digest, { text: "during" }, { idempotencyKey: "outage" });
    expect(again.id).toBe(retried.id);
    expect(again.duplicate).toBe(true);
    expect((await queued.status()).state).toBe(TaskState.PENDING);
    await startWorker();
    expect((await retried.result()).hex).toBe("DURING");
    expect((await queued.result()).hex).toBe("BEFORE");
    const seen: TaskState[] = [];
    for (let next = await watch.next(); !next.done; next = await watch.next()) seen.push(next.value.state);
    expect(seen.at(-1)).toBe(TaskState.SUCCEEDED);
  });
});

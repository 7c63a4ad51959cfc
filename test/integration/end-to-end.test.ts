import { createHash } from "node:crypto";
import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHashServiceClient, hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { createReportServiceClient, reportService } from "../../examples/gen/example/v1/report_taskwire.ts";
import { type Task, TaskSchema, TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { SubmitRequestSchema } from "../../gen/taskwire/v1/task_service_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { createTaskRegistry, registryOf } from "../../sdk/core/task-registry.ts";
import { createNatsTaskBackend } from "../../sdk/nats/nats-task-backend.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import { createSupervisor, type Supervisor, type SupervisorEvent } from "../../worker-runtime/create-supervisor.ts";
import { callTaskServiceJson } from "../support/connect-json.ts";
import { exampleDigest } from "../support/deployment.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

const services = [hashService, reportService];
const sha256 = (text: string) => exampleDigest(text, 1);

describe("end to end: gateway, supervised workers and JetStream", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let gateway: Gateway;
  let supervisor: Supervisor;
  const events: SupervisorEvent[] = [];
  let viaGateway: TaskwireClient;
  let viaGrpc: TaskwireClient;
  let direct: TaskwireClient;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    const backend = await createNatsTaskBackend({
      nc,
      registry: createTaskRegistry(services),
      topology: { ackWaitMs: 2000 },
    });
    gateway = await createGateway({ backend, typeRegistry: registryOf(services) });
    supervisor = createSupervisor({
      nats: nats.url,
      ackWaitMs: 2000,
      shutdownGraceMs: 5000,
      restartBackoffMs: 100,
      pools: [
        { name: "hasher", module: "examples/hash/hash-worker.ts", processes: 3 },
        { name: "reports", module: "examples/report/report-worker.ts", processes: 1 },
      ],
      onEvent: (event) => events.push(event),
    });
    await supervisor.ready;
    viaGateway = await createClient({ gateway: gateway.url });
    viaGrpc = await createClient({ gateway: gateway.url, protocol: "grpc" });
    direct = await createClient({ nats: nats.url, services });
  }, 60_000);

  afterAll(async () => {
    await viaGateway?.close();
    await viaGrpc?.close();
    await direct?.close();
    await supervisor?.stop();
    await gateway?.close();
    await nc?.close();
    await nats?.stop();
  });

  it("returns the typed result through the gateway (Connect and gRPC) and in direct mode", async () => {
    for (const client of [viaGateway, viaGrpc, direct]) {
      const task = await createHashServiceClient(client).digest({ text: "hello" });
      const result = await task.result();
      expect(result.$typeName).toBe("example.v1.DigestResponse");
      expect(result).toMatchObject({ hex: sha256("hello"), rounds: 1 });
    }
  });

  it("accepts a plain HTTP JSON Connect call (curl-style) and answers GetTask in JSON", async () => {
    const submitted = await callTaskServiceJson<{ taskId: string }>(gateway.url, "Submit", {
      task: {
        workerType: "hasher",
        method: "Digest",
        payload: { "@type": "type.googleapis.com/example.v1.DigestRequest", text: "curl", rounds: 2 },
      },
    });
    expect(submitted.status).toBe(200);
    const { taskId } = submitted.body;
    const status = await poll(async () => {
      const { body } = await callTaskServiceJson<{ status: { state: string; result?: { hex: string } } }>(
        gateway.url,
        "GetTask",
        { taskId },
      );
      return body.status.state === "TASK_STATE_SUCCEEDED" ? body.status : undefined;
    });
    const once = createHash("sha256").update("curl").digest();
    expect(status.result?.hex).toBe(createHash("sha256").update(once).digest("hex"));
  });

  it("watch sees PENDING, RUNNING and SUCCEEDED in order, with progress", async () => {
    // The queue is paused until the watch has seen the task PENDING: however slow the
    // machine, no worker starts it first.
    await direct.queues.pauseQueue("reports");
    const task = await createReportServiceClient(viaGateway).generate({ title: "Q3", sections: 3, sectionMs: 300 });
    const seen: TaskState[] = [];
    let progress = 0;
    try {
      for await (const status of task.watch()) {
        if (seen.at(-1) !== status.state) seen.push(status.state);
        if (status.state === TaskState.PENDING && seen.length === 1) await direct.queues.resumeQueue("reports");
        progress = Math.max(progress, status.progress?.fraction ?? 0);
      }
    } finally {
      await direct.queues.resumeQueue("reports");
    }
    expect(seen).toEqual([TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCEEDED]);
    expect(progress).toBe(1);
    expect((await task.result()).sections).toBe(3);
  });

  it("balances 300 tasks over 3 worker processes, each succeeding exactly once", async () => {
    const hashes = createHashServiceClient(direct);
    const handles = await Promise.all(
      Array.from({ length: 300 }, (_, i) => hashes.digest({ text: `t${i}`, rounds: 200 })),
    );
    const done = await Promise.all(
      handles.map(async (handle) => ({ result: await handle.result(), status: await handle.status() })),
    );
    // Each one's own digest (200 rounds of its own text), on its first and only attempt.
    expect(done.map(({ result }) => ({ hex: result.hex, rounds: result.rounds }))).toEqual(
      done.map((_, i) => ({ hex: exampleDigest(`t${i}`, 200), rounds: 200 })),
    );
    const statuses = done.map(({ status }) => status);
    expect(statuses.filter((s) => s.state !== TaskState.SUCCEEDED || s.attempt !== 1)).toEqual([]);
    const perWorker = new Map<string, number>();
    for (const s of statuses) perWorker.set(s.workerId, (perWorker.get(s.workerId) ?? 0) + 1);
    // Every process ran some of them (a key exists only for a worker that ran a task).
    expect([...perWorker.keys()].sort()).toEqual(["hasher-0", "hasher-1", "hasher-2"]);
  });

  it("redelivers a long task after kill -9 of its worker; the supervisor restarts the process", async () => {
    const task = await createReportServiceClient(direct).generate({ title: "crash", sections: 10, sectionMs: 200 });
    const running = await poll(async () => {
      const s = await task.status();
      return s.state === TaskState.RUNNING ? s : undefined;
    });
    const child = supervisor.processes.get(running.workerId);
    expect(child?.pid).toBeDefined();
    const killedPid = child?.pid;
    child?.kill("SIGKILL");
    const result = await task.result();
    expect(result.sections).toBe(10);
    const final = await task.status();
    expect(final.state).toBe(TaskState.SUCCEEDED);
    expect(final.attempt).toBe(2);
    expect(events).toContainEqual(
      expect.objectContaining({ type: "exited", workerId: running.workerId, signal: "SIGKILL" }),
    );
    await poll(async () => {
      const restarted = supervisor.processes.get(running.workerId);
      return restarted && restarted.pid !== killedPid ? restarted : undefined;
    });
  });

  it("a task whose every attempt dies with its worker ends FAILED after max_attempts, and is dead-lettered", async () => {
    const task = await createReportServiceClient(direct).generate(
      { title: "doomed", sections: 50, sectionMs: 200 },
      { retry: { maxAttempts: 2 } },
    );
    for (const attempt of [1, 2]) {
      const running = await poll(async () => {
        const s = await task.status();
        return s.state === TaskState.RUNNING && s.attempt === attempt ? s : undefined;
      });
      const child = supervisor.processes.get(running.workerId);
      expect(child?.kill("SIGKILL")).toBe(true);
    }
    await expect(task.result()).rejects.toThrow(
      /\[aborted\] gave up after 2 attempt\(s\): the last ones were lost \(worker crashed or stopped heartbeating\)/,
    );
    const final = await task.status();
    expect({ state: final.state, maxAttempts: final.maxAttempts }).toEqual({ state: TaskState.FAILED, maxAttempts: 2 });
    const letters = await poll(async () => {
      const page = await direct.queues.listDeadLetters("reports");
      return page.deadLetters.some((l) => l.status?.taskId === task.id) ? page : undefined;
    });
    expect(letters.deadLetters.find((l) => l.status?.taskId === task.id)?.status?.state).toBe(TaskState.FAILED);
  });

  describe("bad input", () => {
    it("rejects an unknown worker type or method with NOT_FOUND naming it", async () => {
      const task = (workerType: string, method: string) =>
        create(TaskSchema, {
          workerType,
          method,
          payload: anyPack(hashService.methods.digest.input, create(hashService.methods.digest.input, { text: "x" })),
        });
      await expect(submitRaw(task("nope", "Digest"))).rejects.toThrow(/\[not_found\] unknown worker type "nope"/);
      await expect(submitRaw(task("hasher", "Nope"))).rejects.toThrow(
        /\[not_found\] unknown method "Nope" of worker type "hasher"/,
      );
    });

    it("rejects a payload of the wrong message type, undecodable bytes and missing required fields with INVALID_ARGUMENT", async () => {
      const wrong = create(TaskSchema, {
        workerType: "hasher",
        method: "Digest",
        payload: anyPack(
          reportService.methods.generate.input,
          create(reportService.methods.generate.input, { title: "x", sections: 1 }),
        ),
      });
      await expect(submitRaw(wrong)).rejects.toThrow(
        /\[invalid_argument\] hasher\/Digest takes a payload of type example\.v1\.DigestRequest, got one of type example\.v1\.GenerateRequest/,
      );
      const garbage = create(TaskSchema, {
        workerType: "hasher",
        method: "Digest",
        payload: { typeUrl: "type.googleapis.com/example.v1.DigestRequest", value: new Uint8Array([0x0a, 0xff, 0xff]) },
      });
      await expect(submitRaw(garbage)).rejects.toThrow(
        /\[invalid_argument\] payload is not a valid example.v1.DigestRequest/,
      );
      await expect(createHashServiceClient(viaGateway).digest({ text: "" })).rejects.toThrow(
        /\[invalid_argument\] example.v1.DigestRequest is missing required field: text/,
      );
    });

    it("rejects a payload over the size limit with RESOURCE_EXHAUSTED before NATS sees it", async () => {
      await expect(createHashServiceClient(direct).digest({ text: "x".repeat(1_100_000) })).rejects.toThrow(
        /\[resource_exhausted\] task of hasher\/Digest is \d+ bytes serialized, over the limit of 1000000 bytes/,
      );
    });

    it("answers NOT_FOUND for an unknown task id and INVALID_ARGUMENT for a malformed one", async () => {
      await expect(viaGateway.getTask("hasher.01M00000000000000000000000")).rejects.toThrow(
        /\[not_found\] task hasher.01M0+ not found/,
      );
      await expect(viaGateway.getTask("nonsense")).rejects.toThrow(
        /\[invalid_argument\] task id "nonsense" is malformed/,
      );
    });
  });

  async function submitRaw(task: Task) {
    const response = await fetch(`${gateway.url}/taskwire.v1.TaskService/Submit`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: toBinary(SubmitRequestSchema, create(SubmitRequestSchema, { task })),
    });
    if (response.status !== 200) {
      const error = (await response.json()) as { code: string; message: string };
      throw new Error(`[${error.code}] ${error.message}`);
    }
  }
});

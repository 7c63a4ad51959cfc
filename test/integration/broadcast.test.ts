import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import type { TaskError } from "../../sdk/core/task-error.ts";
import { createSupervisor } from "../../worker-runtime/create-supervisor.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { type AttemptRecord, probeHandler } from "../fixtures/probe-worker.ts";
import { RunResponseSchema } from "../gen/probe/v1/probe_pb.ts";
import { implementProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";

const run = probeService.methods.run;
const failure = (promise: Promise<unknown>) =>
  promise.then(
    () => undefined,
    (error: TaskError) => error,
  );

/** Broadcast delivery (tasker): "run a maintenance step on every server". */
describe("broadcast tasks", () => {
  let nats: NatsServer;
  let client: TaskwireClient;
  const workers = new Map<string, Worker>();
  /** Labels each endpoint ran. */
  const ran = new Map<string, string[]>();

  const startWorker = async (workerId: string) => {
    const record = (a: AttemptRecord) => ran.set(workerId, [...(ran.get(workerId) ?? []), a.label]);
    workers.set(
      workerId,
      await createWorker({
        nats: nats.url,
        workerId,
        services: [implementProbeService({ run: probeHandler(record) })],
      }),
    );
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    client = await createClient({ nats: nats.url, services: [probeService] });
    for (const id of ["server-a", "server-b", "server-c"]) await startWorker(id);
  }, 30_000);

  afterAll(async () => {
    await Promise.all([...workers.values()].map((w) => w.close()));
    await client?.close();
    await nats?.stop();
  });

  it("runs once on every live worker instance, each recording its own result", async () => {
    const task = await client.submitTask(run, { label: "maintenance" }, { delivery: "broadcast" });
    await task.result();
    const status = await task.status();
    expect(status.state).toBe(TaskState.SUCCEEDED);
    expect(status.endpoints.map((e) => [e.endpoint, e.state])).toEqual([
      ["server-a", TaskState.SUCCEEDED],
      ["server-b", TaskState.SUCCEEDED],
      ["server-c", TaskState.SUCCEEDED],
    ]);
    for (const e of status.endpoints) {
      expect(e.result && anyUnpack(e.result, RunResponseSchema)?.workerId).toBe(e.endpoint);
      expect(ran.get(e.endpoint)?.filter((l) => l === "maintenance")).toHaveLength(1);
    }
  });

  it("a worker that joins later gets no earlier broadcast; a named one that starts in time does", async () => {
    await startWorker("server-d");
    const later = await client.submitTask(run, { label: "after-d" }, { delivery: "broadcast" });
    await later.result();
    expect((await later.status()).endpoints.map((e) => e.endpoint)).toContain("server-d");
    expect(ran.get("server-d")).toEqual(["after-d"]); // not "maintenance"

    const named = await client.submitTask(
      run,
      { label: "named" },
      { delivery: "broadcast", endpoints: ["server-a", "server-late"], expiresAt: new Date(Date.now() + 10_000) },
    );
    await startWorker("server-late");
    await named.result();
    expect((await named.status()).endpoints.map((e) => e.endpoint)).toEqual(["server-a", "server-late"]);
    expect(ran.get("server-late")).toEqual(["named"]);
    expect(ran.get("server-b")).not.toContain("named");
  });

  it("ends INCOMPLETE, naming the endpoints that did not answer in time", async () => {
    const task = await client.submitTask(
      run,
      { label: "partial" },
      // server-a must answer before the expiry, however slow the machine: seconds of room.
      { delivery: "broadcast", endpoints: ["server-a", "server-gone"], expiresAt: new Date(Date.now() + 4_000) },
    );
    const error = await failure(task.result());
    expect(error?.message).toMatch(/no answer in time from: server-gone/);
    const status = await task.status();
    expect(status.state).toBe(TaskState.INCOMPLETE);
    expect(status.endpoints.find((e) => e.endpoint === "server-a")?.state).toBe(TaskState.SUCCEEDED);
    expect(status.endpoints.find((e) => e.endpoint === "server-gone")?.state).toBe(TaskState.PENDING);
  });

  it("reaches supervised worker processes, each by its pool name", async () => {
    const supervisor = createSupervisor({
      nats: nats.url,
      pools: [{ name: "fleet", module: "test/fixtures/probe-worker.ts", processes: 2 }],
      onEvent: () => {},
    });
    try {
      await supervisor.ready;
      const task = await client.submitTask(
        run,
        { label: "fleet-wide" },
        { delivery: "broadcast", endpoints: ["fleet-0", "fleet-1"] },
      );
      await task.result();
      const status = await task.status();
      expect(status.endpoints.map((e) => [e.endpoint, e.state])).toEqual([
        ["fleet-0", TaskState.SUCCEEDED],
        ["fleet-1", TaskState.SUCCEEDED],
      ]);
      expect(status.endpoints.map((e) => e.result && anyUnpack(e.result, RunResponseSchema)?.workerId)).toEqual([
        "fleet-0",
        "fleet-1",
      ]);
    } finally {
      await supervisor.stop();
    }
  });

  it("refuses endpoints without broadcast, and a broadcast with nobody to receive it", async () => {
    const queued = await failure(client.submitTask(run, { label: "x" }, { endpoints: ["server-a"] }));
    expect(queued?.code).toBe(Code.InvalidArgument);
    expect(queued?.message).toMatch(/task.endpoints names workers for broadcast delivery only/);
    await Promise.all([...workers.values()].map((w) => w.close()));
    workers.clear();
    const nobody = await failure(client.submitTask(run, { label: "y" }, { delivery: "broadcast" }));
    expect(nobody?.code).toBe(Code.FailedPrecondition);
    expect(nobody?.message).toMatch(/no worker of type "probe" is running/);
  });
});

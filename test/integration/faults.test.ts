import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { createSupervisor, type Supervisor } from "../../worker-runtime/create-supervisor.ts";
import { noShortfalls, shortfalls } from "../support/fault-accounting.ts";
import { runFaultSuite } from "../support/fault-suite.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";

const tasks = 3000;
const workerProcesses = 3;

/**
 * The fault suite: thousands of tasks with unique ids while worker processes
 * are killed with SIGKILL and nats-server (the durable profile: fsync on every
 * write) is killed with SIGKILL and restarted. Every acknowledged submit must
 * end SUCCEEDED; duplicated executions are allowed (at-least-once) and counted.
 */
describe("fault suite: kill -9 of workers and of nats-server", () => {
  let nats: NatsServer;
  let supervisor: Supervisor;
  let client: TaskwireClient;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-faults-"));
    nats = await startNatsServer({ syncAlways: true });
    supervisor = createSupervisor({
      nats: nats.url,
      ackWaitMs: 1000,
      shutdownGraceMs: 2000,
      restartBackoffMs: 50,
      maxRestartBackoffMs: 200,
      crashLoopLimit: 1_000_000,
      pools: [{ name: "fault", module: "test/fixtures/fault-worker.ts", processes: workerProcesses, concurrency: 32 }],
      env: { FAULT_LOG: join(dir, "executions.log") },
      onEvent: () => {},
    });
    await supervisor.ready;
    client = await createClient({ nats: nats.url, services: [hashService] });
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    await supervisor?.stop();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("loses no acknowledged task, runs no unexpected one, and counts duplicated executions", async () => {
    const run = await runFaultSuite({ nats, supervisor, client, tasks, logs: [join(dir, "executions.log")] });
    console.log(`fault suite: ${run.summary}`);
    expect(run.acknowledged).toBe(tasks);
    expect(run.natsRestarts).toBeGreaterThan(0);
    expect(run.workerKills).toBeGreaterThan(0);
    expect(shortfalls(run.account)).toEqual(noShortfalls);
  }, 240_000);
});

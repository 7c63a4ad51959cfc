import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { TaskError } from "../../sdk/core/task-error.ts";
import { createSupervisor, type Supervisor } from "../../worker-runtime/create-supervisor.ts";
import {
  accountFaults,
  describeAccount,
  noShortfalls,
  shortfalls,
  submitUntilAcknowledged,
} from "../support/fault-accounting.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

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
    let faulting = true;
    let workerKills = 0;
    let natsRestarts = 0;
    const killWorkers = (async () => {
      while (faulting) {
        await sleep(250 + Math.random() * 250);
        const live = [...supervisor.processes.values()].filter((p) => p.exitCode === null && p.signalCode === null);
        const victim = live[Math.floor(Math.random() * live.length)];
        if (victim?.kill("SIGKILL")) workerKills++;
      }
    })();
    const restartNats = (async () => {
      while (faulting) {
        await sleep(1500 + Math.random() * 1000);
        if (!faulting) break;
        await nats.kill("SIGKILL");
        await sleep(200);
        await nats.restart();
        natsRestarts++;
      }
    })();

    // Each task has a unique key, so a submit that failed in an unknown state is
    // retried safely until it is acknowledged (accepted, or reported a duplicate).
    const acknowledged = new Map<string, string>(); // task id -> key
    let submitRetries = 0;
    const submitOne = async (i: number) => {
      const key = `fault-${i}`;
      const { id, retries } = await submitUntilAcknowledged(
        client,
        key,
        (error) => error instanceof TaskError && error.code === Code.Unavailable,
        50,
      );
      acknowledged.set(id, key);
      submitRetries += retries;
    };
    // The faults must strike while tasks are still being submitted, however fast the
    // first ones go: the second half waits until each kind has struck once.
    const faultsStruck = poll(async () => (natsRestarts > 0 && workerKills > 0 ? true : undefined), 30_000);
    let next = 0;
    const lanes = Array.from({ length: 50 }, async () => {
      while (next < tasks) {
        const i = next++;
        if (i >= tasks / 2) await faultsStruck;
        await submitOne(i);
      }
    });
    await Promise.all(lanes);
    faulting = false;
    await Promise.all([killWorkers, restartNats]);

    const account = await accountFaults(
      new Set(acknowledged.keys()),
      (id) => client.getTask(id),
      join(dir, "executions.log"),
    );
    console.log(
      `fault suite: ${tasks} tasks, ${acknowledged.size} acknowledged (${submitRetries} submit retries), ` +
        `${workerKills} worker kills, ${natsRestarts} nats-server kills; ${describeAccount(account)}`,
    );
    expect(acknowledged.size).toBe(tasks);
    expect(natsRestarts).toBeGreaterThan(0);
    expect(workerKills).toBeGreaterThan(0);
    expect(shortfalls(account)).toEqual(noShortfalls);
  }, 240_000);
});

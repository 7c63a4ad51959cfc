import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { isTerminal, stateName } from "../../sdk/core/status.ts";
import { TaskError } from "../../sdk/core/task-error.ts";
import { createSupervisor, type Supervisor } from "../../worker-runtime/create-supervisor.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

const tasks = 3000;
const workerProcesses = 3;
/**
 * This suite checks that no task is lost, so its retry budget is one no kill
 * rate can spend. (A kill spends an attempt of each task its process had
 * started; with the example's 3 attempts and four busy loops beside it, three
 * runs had no task FAILED and none above attempt 2. Counted by deliveries, as
 * attempts were before, 17 of 3000 tasks that never ran ended FAILED.)
 */
const maxAttempts = 1000;

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
      for (;;) {
        try {
          const handle = await client.submitTask(
            hashService.methods.digest,
            { text: key },
            { idempotencyKey: key, retry: { maxAttempts } },
          );
          acknowledged.set(handle.id, key);
          return;
        } catch (error) {
          if (!(error instanceof TaskError) || error.code !== Code.Unavailable) throw error;
          submitRetries++;
          await sleep(50);
        }
      }
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

    // Every acknowledged task must reach a terminal state.
    const final = new Map<string, TaskState>();
    let highestAttempt = 0;
    const deadline = Date.now() + 90_000;
    while (final.size < acknowledged.size && Date.now() < deadline) {
      for (const id of acknowledged.keys()) {
        if (final.has(id)) continue;
        const status = await client.getTask(id).catch(() => undefined);
        if (status && isTerminal(status.state)) {
          final.set(id, status.state);
          highestAttempt = Math.max(highestAttempt, status.attempt);
        }
      }
      if (final.size < acknowledged.size) await sleep(250);
    }

    const executions = new Map<string, number>();
    for (const line of (await readFile(join(dir, "executions.log"), "utf8")).split("\n")) {
      if (line) executions.set(line, (executions.get(line) ?? 0) + 1);
    }
    const lost = [...acknowledged.keys()].filter((id) => final.get(id) === undefined);
    const failed: string[] = [];
    for (const [id, state] of final) {
      if (state === TaskState.SUCCEEDED) continue;
      const status = await client.getTask(id);
      failed.push(`${id}: ${stateName(state)} at attempt ${status.attempt}: ${status.error?.message}`);
    }
    const neverAcknowledged = [...executions.keys()].filter((id) => !acknowledged.has(id));
    const neverRan = [...final].filter(([id, state]) => state === TaskState.SUCCEEDED && !executions.has(id));
    const duplicated = [...executions.values()].filter((n) => n > 1).length;
    const extraRuns = [...executions.values()].reduce((sum, n) => sum + n - 1, 0);
    const unexpected = failed.length + neverAcknowledged.length + neverRan.length;
    console.log(
      `fault suite: ${tasks} tasks, ${acknowledged.size} acknowledged (${submitRetries} submit retries), ` +
        `${workerKills} worker kills, ${natsRestarts} nats-server kills; ` +
        `lost ${lost.length}, unexpected ${unexpected}, duplicated executions ${duplicated} (${extraRuns} extra runs), ` +
        `highest attempt ${highestAttempt}`,
    );
    expect(acknowledged.size).toBe(tasks);
    expect(natsRestarts).toBeGreaterThan(0);
    expect(workerKills).toBeGreaterThan(0);
    expect({ lost: lost.slice(0, 5), failed: failed.slice(0, 5), neverAcknowledged, neverRan }).toEqual({
      lost: [],
      failed: [],
      neverAcknowledged: [],
      neverRan: [],
    });
  }, 240_000);
});

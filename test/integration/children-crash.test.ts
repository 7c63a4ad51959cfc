import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { createSupervisor, type Supervisor } from "../../worker-runtime/create-supervisor.ts";
import { familyService } from "../gen/family/v1/family_taskwire.ts";
import { probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";

/** A parent whose worker process dies mid-spawn (kill -9), redelivered to a restarted one. */
describe("a parent's worker killed while it spawns", () => {
  let nats: NatsServer;
  let supervisor: Supervisor;
  let client: TaskwireClient;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-family-"));
    nats = await startNatsServer();
    supervisor = createSupervisor({
      nats: nats.url,
      ackWaitMs: 1000,
      shutdownGraceMs: 2000,
      restartBackoffMs: 50,
      pools: [{ name: "family", module: "test/fixtures/family-worker.ts", processes: 2, concurrency: 8 }],
      env: { FAMILY_DIR: dir },
      onEvent: () => {},
    });
    await supervisor.ready;
    client = await createClient({ nats: nats.url, services: [familyService, probeService] });
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    await supervisor?.stop();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("spawns each child once: the redelivered parent finds the ones spawned before the kill", async () => {
    const parent = await client.submitTask(familyService.methods.fan, { children: 40, crashMidway: true, sleepMs: 20 });
    expect(await parent.result()).toMatchObject({ spawned: 40n, ended: 40n, failed: 0n });
    expect(existsSync(join(dir, `crashed-${parent.id}`))).toBe(true);
    const children = (await client.listTasks({ workerType: "probe", pageSize: 1000 })).tasks.filter(
      (t) => t.parentTaskId === parent.id,
    );
    expect(children).toHaveLength(40);
    expect(new Set(children.map((t) => t.taskId)).size).toBe(40);
    expect(children.every((t) => t.state === TaskState.SUCCEEDED)).toBe(true);
    // The kill cost the parent an attempt: the run that died had started it.
    expect((await client.getTask(parent.id)).attempt).toBe(2);
  }, 60_000);
});

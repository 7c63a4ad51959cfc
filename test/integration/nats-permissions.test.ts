import { readFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { anyPack, durationFromMs } from "@bufbuild/protobuf/wkt";
import type { NatsConnection, Status } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DigestRequestSchema } from "../../examples/gen/example/v1/hash_pb.ts";
import { createHashServiceClient, hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { hasher } from "../../examples/hash/hash-worker.ts";
import { ScheduleSchema } from "../../gen/taskwire/v1/schedule_service_pb.ts";
import { OverlapPolicy, TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { createTaskRegistry } from "../../sdk/core/index.ts";
import { createNatsQueueBackend, createNatsTaskBackend } from "../../sdk/nats/index.ts";
import { openConnection } from "../../sdk/nats/open-connection.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { probe } from "../fixtures/probe-worker.ts";
import { probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";
import { repoRoot } from "../support/tools.ts";

/** The `# role: <name>` permission blocks of docs/security.md, as written there (for type "hasher"). */
function documentedPermissions(): Record<string, string> {
  const doc = readFileSync(join(repoRoot, "docs/security.md"), "utf8");
  const blocks: Record<string, string> = {};
  for (const [, role, block] of doc.matchAll(/```conf\n# role: (\w+)\n([\s\S]*?)```/g))
    blocks[role as string] = block as string;
  return blocks;
}

/** Connects as `user`, recording every permission violation the server reports. */
async function connectAs(nats: NatsServer, user: string, inboxPrefix?: string) {
  const { nc } = await openConnection({
    servers: nats.url,
    user,
    password: "pw",
    ...(inboxPrefix ? { inboxPrefix } : {}),
  });
  const violations: string[] = [];
  void (async () => {
    for await (const status of nc.status() as AsyncIterable<Status>)
      if (status.type === "error") violations.push((status.error as Error).message);
  })();
  return { nc, violations };
}

describe.each([
  { acks: "classic ack subjects", flags: "" },
  { acks: "the newer ack subjects (js_ack_fc_v2)", flags: "feature_flags { js_ack_fc_v2: true }" },
])("the documented NATS permissions, with $acks", ({ flags }) => {
  const roles = documentedPermissions();
  let nats: NatsServer;
  const open: NatsConnection[] = [];
  const closers: { close(): Promise<void> }[] = [];
  let admin: TaskwireClient;

  beforeAll(async () => {
    expect(Object.keys(roles).sort()).toEqual(["gateway", "operator", "submitter", "worker"]);
    const user = (name: string, block: string) => `{ user: ${name}, password: pw, ${block} }`;
    nats = await startNatsServer({
      config: `${flags}
authorization { users = [
  ${user("operator", roles.operator as string)}
  ${user("worker_hasher", roles.worker as string)}
  ${user("worker_probe", (roles.worker as string).replaceAll("hasher", "probe"))}
  ${user("submitter", roles.submitter as string)}
  ${user("gateway", roles.gateway as string)}
] }`,
    });
    // The operator sets up both types and queues a probe task nobody runs.
    const operator = await connectAs(nats, "operator");
    open.push(operator.nc);
    admin = await createClient({ nats: operator.nc, services: [hashService, probeService] });
    closers.push(admin);
  }, 30_000);

  afterAll(async () => {
    for (const c of closers.reverse()) await c.close().catch(() => undefined);
    for (const nc of open) await nc.close().catch(() => undefined);
    await nats?.stop();
  });

  const worker = async (
    user: string,
    inboxPrefix: string,
    services: Parameters<typeof createWorker>[0]["services"],
  ) => {
    const conn = await connectAs(nats, user, inboxPrefix);
    open.push(conn.nc);
    const w: Worker = await createWorker({ nats: conn.nc, services });
    closers.push(w);
    return { ...conn, worker: w };
  };

  it("lets a worker run its type's tasks for a submitter who waits, with no violation", async () => {
    const w = await worker("worker_hasher", "_INBOX_hasher", [hasher]);
    const s = await connectAs(nats, "submitter", "_INBOX_submitter");
    open.push(s.nc);
    const client = await createClient({ nats: s.nc, services: [hashService] });
    closers.push(client);
    const digest = createHashServiceClient(client).digest;
    const plain = await digest({ text: "least" });
    const keyed = await digest({ text: "keyed" }, { idempotencyKey: `perm-${flags.length}` });
    expect((await plain.result()).hex).toMatch(/^[0-9a-f]{64}$/);
    expect((await keyed.result()).hex).toMatch(/^[0-9a-f]{64}$/);
    expect((await client.getTask(plain.id)).state).toBe(TaskState.SUCCEEDED);
    const listed = await client.listTasks({ workerType: "hasher" });
    expect(listed.tasks.map((t) => t.taskId)).toEqual(expect.arrayContaining([plain.id, keyed.id]));
    expect(w.violations).toEqual([]);
    expect(s.violations).toEqual([]);
  });

  it("lets a worker fire its type's schedules, with no violation", async () => {
    const w = await worker("worker_hasher", "_INBOX_hasher", [hasher]);
    const scheduleId = `perm-${flags.length}`;
    await admin.schedules.createSchedule(
      create(ScheduleSchema, {
        workerType: "hasher",
        scheduleId,
        spec: { every: durationFromMs(1_000) },
        task: {
          method: "Digest",
          payload: anyPack(DigestRequestSchema, create(DigestRequestSchema, { text: "tick" })),
        },
        overlap: OverlapPolicy.ALLOW_ALL,
      }),
    );
    await poll(async () => ((await admin.schedules.getSchedule("hasher", scheduleId)).fired >= 2n ? true : undefined));
    await admin.schedules.deleteSchedule("hasher", scheduleId);
    expect(w.violations).toEqual([]);
  });

  it("refuses a worker of one type the other type's tasks", async () => {
    const queued = await admin.submitTask(probeService.methods.run, { label: "not for hasher" });
    const w = await connectAs(nats, "worker_hasher", "_INBOX_hasher");
    open.push(w.nc);
    const refused = (promise: Promise<unknown>) =>
      promise.then(
        () => "allowed",
        (e: Error) => e.message,
      );
    // Fetch from probe's consumer, read its stream directly, take its consumer's messages, run it.
    expect(
      await refused(
        w.nc.request("$JS.API.CONSUMER.MSG.NEXT.TASKS_probe.probe_normal", '{"batch":1}', { timeout: 2_000 }),
      ),
    ).toMatch(/permissions violation/i);
    expect(
      await refused(
        w.nc.request("$JS.API.DIRECT.GET.TASKS_probe", JSON.stringify({ next_by_subj: "taskwire.task.probe.>" }), {
          timeout: 2_000,
        }),
      ),
    ).toMatch(/permissions violation/i);
    const sub = w.nc.subscribe("taskwire.task.probe.>");
    // nats.js resolves `closed` with the server's refusal.
    expect(String(await sub.closed)).toMatch(/permissions violation/i);
    expect(await refused(createWorker({ nats: w.nc, services: [probe] }))).toMatch(/permissions violation|not answer/i);
    // The probe task is still queued, untouched.
    expect((await admin.getTask(queued.id)).state).toBe(TaskState.PENDING);
    // The probe worker, with its own permissions, runs it.
    const p = await worker("worker_probe", "_INBOX_probe", [probe]);
    expect((await queued.result()).label).toBe("not for hasher");
    expect(p.violations).toEqual([]);
  });

  it("lets the gateway's backends submit, read, list, cancel and pause every type", async () => {
    const g = await connectAs(nats, "gateway", "_INBOX_gateway");
    open.push(g.nc);
    const registry = createTaskRegistry([hashService, probeService]);
    const tasks = await createNatsTaskBackend({ nc: g.nc, registry });
    const queue = await createNatsQueueBackend({ nc: g.nc, tasks });
    const paused = await queue.pauseQueue("probe");
    expect(paused.paused).toBe(true);
    const client = await createClient({ nats: g.nc, services: [hashService, probeService] });
    closers.push(client);
    const task = await client.submitTask(probeService.methods.run, { label: "to cancel" });
    await client.cancelTask(task.id);
    await poll(async () => ((await client.getTask(task.id)).state === TaskState.CANCELLED ? true : undefined), 10_000);
    expect((await client.listTasks({})).tasks[0]?.taskId).toBe(task.id);
    expect((await queue.resumeQueue("probe")).paused).toBe(false);
    expect(g.violations).toEqual([]);
  });
});

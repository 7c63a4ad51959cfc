import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHashServiceClient, hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { hasher } from "../../examples/hash/hash-worker.ts";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient } from "../../sdk/client/create-client.ts";
import { provisionWorkerType } from "../../sdk/nats/provisioning.ts";
import { createWorker } from "../../worker-runtime/create-worker.ts";
import { clockService } from "../gen/clock/v1/clock_taskwire.ts";
import { probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsCluster, type NatsServer, startNatsCluster } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);
const taskwire = (cwd: string, ...args: string[]) =>
  run(process.execPath, ["--conditions=taskwire-source", join(repoRoot, "cli/main.ts"), ...args], {
    cwd,
    timeout: 60_000,
  });

/** Every stream and bucket a deployment of the hasher type has once it has run a broadcast-free task. */
const hasherStreams = [
  "TASKS_hasher",
  "DEAD_hasher",
  "SCHED_hasher",
  "LIMITS_hasher",
  "BCAST_hasher",
  "INDEX_hasher",
  "KV_taskwire_status",
  "KV_taskwire_workers",
];

/** Warnings Node emits while `run` runs. */
async function warningsDuring(run: () => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const listener = (warning: Error) => seen.push(warning.message);
  process.on("warning", listener);
  try {
    await run();
  } finally {
    process.off("warning", listener);
  }
  return seen;
}

/**
 * Replicas a user asks for reach every stream and bucket, and provisioning
 * never changes what is in place: a process started with defaults, or with
 * other values, keeps what exists (and says so for the values it asked for).
 */
describe("replicas on a three-node cluster", () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;

  beforeAll(async () => {
    cluster = await startNatsCluster(3);
    nc = await connect({ servers: cluster.urls });
  }, 60_000);

  afterAll(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  const replicasOf = async (stream: string) =>
    (await (await jetstreamManager(nc)).streams.info(stream)).config.num_replicas;

  it("creates every stream and bucket with the replicas asked for; a default worker keeps them", async () => {
    const client = await createClient({ nats: { servers: cluster.urls }, services: [hashService], replicas: 3 });
    try {
      // A worker that says nothing of replicas: it neither scales down what exists
      // nor creates its own bucket at 1.
      const warnings = await warningsDuring(async () => {
        const worker = await createWorker({ nats: { servers: cluster.urls }, services: [hasher] });
        try {
          const task = await createHashServiceClient(client).digest({ text: "replicated" });
          expect((await task.result()).hex).toMatch(/^[0-9a-f]{64}$/);
          expect((await client.getTask(task.id)).state).toBe(TaskState.SUCCEEDED);
        } finally {
          await worker.close();
        }
      });
      expect(warnings).toEqual([]);
      for (const stream of hasherStreams)
        expect({ stream, replicas: await replicasOf(stream) }).toEqual({ stream, replicas: 3 });
    } finally {
      await client.close();
    }
  }, 60_000);

  it("keeps the replicas in place when a process asks for others, and names both values", async () => {
    let created: Awaited<ReturnType<typeof createClient>> | undefined;
    const warnings = await warningsDuring(async () => {
      created = await createClient({ nats: { servers: cluster.urls }, services: [hashService], replicas: 1 });
    });
    await created?.close();
    expect(warnings).toContain(
      "stream TASKS_hasher: replicas is 3; this process asks for 1 and keeps 3. To change it on purpose: taskwire migrate",
    );
    for (const stream of hasherStreams) expect(await replicasOf(stream)).toBe(3);
  }, 60_000);

  it("takes up a setting its creator left at the default; keeps one that was asked for", async () => {
    const ackWaitOf = async () =>
      (await (await jetstreamManager(nc)).consumers.info("TASKS_hasher", "hasher_normal")).config.ack_wait;
    // The client above made the consumers with the default ack_wait (it asked for none).
    expect(await ackWaitOf()).toBe(30_000_000_000);
    const first = await warningsDuring(async () => {
      const worker = await createWorker({
        nats: { servers: cluster.urls },
        services: [hasher],
        topology: { ackWaitMs: 2_000 },
      });
      await worker.close();
    });
    expect(first).toContain(
      "consumer TASKS_hasher > hasher_normal: ack_wait changed from 30000 ms (a default) to 2000 ms, as this process asks",
    );
    expect(await ackWaitOf()).toBe(2_000_000_000);
    const second = await warningsDuring(async () => {
      const worker = await createWorker({
        nats: { servers: cluster.urls },
        services: [hasher],
        topology: { ackWaitMs: 4_000 },
      });
      await worker.close();
    });
    expect(second).toContain(
      "consumer TASKS_hasher > hasher_normal: ack_wait is 2000 ms; this process asks for 4000 ms and keeps 2000 ms. To change it on purpose: taskwire migrate",
    );
    expect(await ackWaitOf()).toBe(2_000_000_000);
  }, 60_000);

  it("taskwire migrate changes them on purpose: --dry-run says what it would do, then it does it", async () => {
    // The probe type's streams made at 1 (the status bucket, at 3 already, stays).
    const probes = await createClient({ nats: { servers: cluster.urls }, services: [probeService], replicas: 1 });
    const queued = await probes.submitTask(probeService.methods.run, { label: "kept through the migration" });
    await probes.close();
    const probeStreams = [
      "TASKS_probe",
      "DEAD_probe",
      "SCHED_probe",
      "FAIR_probe",
      "LIMITS_probe",
      "BCAST_probe",
      "INDEX_probe",
      "CHILDREN_probe",
    ];
    for (const stream of probeStreams) expect(await replicasOf(stream)).toBe(1);

    const dir = await mkdtemp(join(tmpdir(), "taskwire-migrate-"));
    try {
      await writeFile(
        join(dir, "taskwire.yaml"),
        `nats:
  servers: [${cluster.urls.join(", ")}]
  replicas: 3
gateway:
  services: [${join(repoRoot, "test/gen/probe/v1/probe_taskwire.ts")}]
`,
      );
      // The module's other types are missing, and created; the probe type's streams scale up.
      const ofProbe = (lines: string) =>
        lines
          .trim()
          .split("\n")
          .filter((line) => line.includes("_probe:"));
      const plan = ofProbe((await taskwire(dir, "migrate", "--dry-run")).stdout);
      expect(plan).toEqual(
        probeStreams.map((stream) => `stream ${stream}: replicas is 1; taskwire migrate would make it 3`),
      );
      for (const stream of probeStreams) expect(await replicasOf(stream)).toBe(1);

      const applied = ofProbe((await taskwire(dir, "migrate")).stdout);
      expect(applied).toEqual(probeStreams.map((stream) => `stream ${stream}: replicas changed from 1 to 3`));
      for (const stream of probeStreams) expect(await replicasOf(stream)).toBe(3);
      expect((await taskwire(dir, "migrate")).stdout.trim()).toBe(
        `taskwire migrate: everything matches ${join(dir, "taskwire.yaml")} and the task types' options`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // What was queued is still there, now on three servers.
    const reader = await createClient({ nats: { servers: cluster.urls }, services: [probeService] });
    try {
      expect((await reader.getTask(queued.id)).state).toBe(TaskState.PENDING);
    } finally {
      await reader.close();
    }
  }, 120_000);

  it("takes a type's own replicas option where the deployment says nothing; the deployment's wins", async () => {
    const jsm = await jetstreamManager(nc);
    // As generated code defines them: `(taskwire.v1.worker).replicas: 3`.
    await provisionWorkerType(jsm, { workerType: "replicated", replicas: 3 });
    expect(await replicasOf("TASKS_replicated")).toBe(3);
    await provisionWorkerType(jsm, { workerType: "overridden", replicas: 3 }, { replicas: 1 });
    expect(await replicasOf("TASKS_overridden")).toBe(1);
  });

  it("waits while the cluster has no JetStream leader, and provisions once it has one", async () => {
    // Two nodes of three down: no majority, no meta leader; a stream cannot be created.
    const [n0, ...others] = cluster.servers as [NatsServer, NatsServer, NatsServer];
    // Its JetStream requests (the account's info, the stream's, its create): the one that
    // fails is made again. Nothing else makes any meanwhile.
    const requests: string[] = [];
    const watcher = await connect({ servers: n0.url });
    const sub = watcher.subscribe("$JS.API.>", {
      callback: (_, msg) => void requests.push(msg.subject),
    });
    await watcher.flush();
    await Promise.all(others.map((server) => server.kill("SIGTERM")));
    let down = true;
    try {
      const client = createClient({ nats: { servers: [n0.url] }, services: [clockService], replicas: 3 });
      client.catch(() => {}); // awaited below; a failure meanwhile is not unhandled
      // The first try has failed and another is made: the process waits rather than exits.
      const repeated = () => requests.some((subject, i) => requests.indexOf(subject) !== i);
      await poll(async () => (repeated() ? true : undefined), 30_000);
      await Promise.all(others.map((server) => server.restart()));
      down = false;
      await (await client).close();
      expect(await replicasOf("TASKS_clock")).toBe(3);
    } finally {
      sub.unsubscribe();
      await watcher.close();
      if (down) await Promise.all(others.map((server) => server.restart()));
      // The next test starts once the cluster has its leader again.
      await poll(() => jetstreamManager(nc).then((jsm) => jsm.getAccountInfo()), 30_000);
    }
  }, 120_000);

  it("refuses a replica count other than 1, 3 or 5, naming it", async () => {
    await expect(
      createClient({ nats: { servers: cluster.urls }, services: [hashService], replicas: 2 }),
    ).rejects.toThrow(/replicas must be 1, 3 or 5, got 2/);
  });
});

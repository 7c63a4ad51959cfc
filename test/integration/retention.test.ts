import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, millis, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import type { TaskError } from "../../sdk/core/task-error.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { probeHandler } from "../fixtures/probe-worker.ts";
import {
  briefProbeService,
  implementBriefProbeService,
  implementProbeService,
  probeService,
} from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

/**
 * Retention a user sets: the deployment's (here a minute of statuses, a day of
 * dead letters) and a type's own, from `(taskwire.v1.worker).retention`: "brief"
 * keeps statuses 2 s, dead letters a minute, results of 64 bytes at most.
 */
describe("retention", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let client: TaskwireClient;
  let worker: Worker;
  const deployment = { statusTtlMs: 60_000, deadLetterTtlMs: 86_400_000, maxResultBytes: 4_096 };

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    client = await createClient({ nats: nats.url, services: [probeService, briefProbeService], retention: deployment });
    worker = await createWorker({
      nats: nats.url,
      services: [implementProbeService({ run: probeHandler() }), implementBriefProbeService({ run: probeHandler() })],
      topology: deployment,
    });
  }, 30_000);

  afterAll(async () => {
    await worker?.close();
    await client?.close();
    await nc?.close();
    await nats?.stop();
  });

  it("sets each stream's and bucket's age from the type, else the deployment", async () => {
    const jsm = await jetstreamManager(nc);
    const maxAgeMs = async (stream: string) => millis((await jsm.streams.info(stream)).config.max_age);
    expect(await maxAgeMs("KV_taskwire_status")).toBe(60_000);
    expect(await maxAgeMs("INDEX_probe")).toBe(60_000);
    expect(await maxAgeMs("DEAD_probe")).toBe(86_400_000);
    expect(await maxAgeMs("INDEX_brief")).toBe(2_000);
    expect(await maxAgeMs("DEAD_brief")).toBe(60_000);
  });

  it("expires a type's statuses at its own TTL, and only its own", async () => {
    const brief = await client.submitTask(briefProbeService.methods.run, { label: "brief" });
    const kept = await client.submitTask(probeService.methods.run, { label: "kept" });
    expect((await brief.result()).label).toBe("brief");
    expect((await kept.result()).label).toBe("kept");
    const gone = await poll(
      () =>
        brief.status().then(
          () => undefined,
          (error: TaskError) => error,
        ),
      15_000,
    );
    expect(gone.code).toBe(Code.NotFound);
    expect((await kept.status()).state).toBe(TaskState.SUCCEEDED);
  });

  it("fails a task whose result is over the type's max_result_bytes, saying so", async () => {
    const task = await client.submitTask(briefProbeService.methods.run, { label: "x".repeat(100) });
    const error = await task.result().then(
      () => undefined,
      (e: TaskError) => e,
    );
    expect(error?.code).toBe(Code.ResourceExhausted);
    expect(error?.rawMessage).toMatch(/over the 64 kept \(retention\.maxResultBytes\)/);
    // The deployment's 4,096 bytes hold the same result for a type without its own limit.
    const fits = await client.submitTask(probeService.methods.run, { label: "x".repeat(100) });
    expect((await fits.result()).label).toHaveLength(100);
  });

  it("shows a queue's sizes and the store's on the queue service", async () => {
    const queue = await client.queues.getQueue("probe");
    expect(queue.storage?.indexBytes).toBeGreaterThan(0n);
    expect(queue.storage?.deadLetterTtl && durationMs(queue.storage.deadLetterTtl)).toBe(86_400_000);
    expect(queue.storage?.indexTtl && durationMs(queue.storage.indexTtl)).toBe(60_000);
    expect(queue.storage?.replicas).toBe(1);
    const store = await client.queues.getStore();
    expect(store.statuses).toBeGreaterThan(0n);
    expect(store.bytes).toBeGreaterThan(0n);
    expect(store.statusTtl && durationMs(store.statusTtl)).toBe(60_000);
    expect(store.storage).toBe("file");
  });

  it("warns when a type asks to keep statuses longer than the bucket does", async () => {
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.message);
    process.on("warning", onWarning);
    const longer = { ...briefProbeService, workerType: "longer", retention: { statusTtlMs: 3_600_000 } };
    const other = await createClient({ nats: nats.url, services: [longer] });
    try {
      await poll(async () => warnings.find((w) => w.includes("longer")));
      expect(warnings.join("\n")).toMatch(
        /bucket taskwire_status: retention\.status \(of worker type longer\) is 60000 ms; this process asks for 3600000 ms and keeps 60000 ms/,
      );
    } finally {
      process.off("warning", onWarning);
      await other.close();
    }
  });
});

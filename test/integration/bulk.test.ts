import { Code } from "@connectrpc/connect";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { checkpointBucket } from "../../sdk/client/kv-checkpoints.ts";
import type { SubmitItem } from "../../sdk/client/submit-many.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { probeHandler } from "../fixtures/probe-worker.ts";
import { implementProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

const run = probeService.methods.run;
type Item = SubmitItem<typeof run.input>;

/** client.submitMany: bounded in flight, resumable from a checkpoint. */
describe("bulk submit", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let client: TaskwireClient;
  let worker: Worker;
  /** Executions per label. */
  const runs = new Map<string, number>();

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    client = await createClient({ nats: nats.url, services: [probeService] });
    worker = await createWorker({
      nats: nats.url,
      concurrency: 64,
      results: false,
      services: [implementProbeService({ run: probeHandler((a) => runs.set(a.label, (runs.get(a.label) ?? 0) + 1)) })],
    });
  }, 30_000);

  afterAll(async () => {
    await worker?.close();
    await client?.close();
    await nc?.close();
    await nats?.stop();
  });

  it("keeps at most maxInFlight submits unacknowledged, however long the input", async () => {
    let pulled = 0;
    let acknowledged = 0;
    let mostAhead = 0;
    async function* items(): AsyncGenerator<Item> {
      for (let i = 0; i < 5_000; i++) {
        pulled++;
        mostAhead = Math.max(mostAhead, pulled - acknowledged);
        yield { request: { label: `bounded-${i}` } };
      }
    }
    const summary = await client.submitMany(run, items(), {
      maxInFlight: 200,
      onProgress: (p) => {
        acknowledged = p.acknowledged;
      },
    });
    expect(summary).toMatchObject({ acknowledged: 5_000, duplicates: 0, failed: 0, resumedFrom: 0 });
    // In flight, plus the chunk being filled.
    expect(mostAhead).toBeLessThanOrEqual(200 + 100);
    await poll(async () => (runs.size >= 5_000 ? true : undefined), 60_000);
  });

  it("a restarted producer resumes after its checkpoint; the overlap is duplicates, never second runs", async () => {
    const total = 4_000;
    const items = (crashAt = Number.POSITIVE_INFINITY) =>
      (function* (): Generator<Item> {
        for (let i = 0; i < total; i++) {
          if (i === crashAt) throw new Error("producer crashed");
          yield { request: { label: `load-${i}` } };
        }
      })();
    await expect(client.submitMany(run, items(2_500), { checkpoint: "load-1", maxInFlight: 300 })).rejects.toThrow(
      /producer crashed/,
    );
    // A producer killed outright records its progress only every second: say it last saved at 2000.
    const kv = await new Kvm(nc).open(checkpointBucket);
    expect(Number((await kv.get("load-1"))?.string())).toBe(2_500);
    await kv.put("load-1", "2000");

    const summary = await client.submitMany(run, items(), { checkpoint: "load-1", maxInFlight: 300 });
    expect(summary).toMatchObject({ resumedFrom: 2_000, acknowledged: total, duplicates: 500, failed: 0 });
    await poll(
      async () => ([...runs.keys()].filter((l) => l.startsWith("load-")).length >= total ? true : undefined),
      60_000,
    );
    const executions = [...runs].filter(([label]) => label.startsWith("load-"));
    expect(executions).toHaveLength(total);
    expect(executions.every(([, n]) => n === 1)).toBe(true);

    // Finished: running it again submits nothing.
    const again = await client.submitMany(run, items(), { checkpoint: "load-1" });
    expect(again).toMatchObject({ resumedFrom: total, acknowledged: total, duplicates: 0 });
  });

  it("reports refused items; a gateway client cannot keep checkpoints", async () => {
    const viaGateway = await createClient({ gateway: "http://127.0.0.1:9" }); // never called
    await expect(viaGateway.submitMany(run, [], { checkpoint: "nowhere" })).rejects.toMatchObject({
      code: Code.FailedPrecondition,
      message: expect.stringMatching(/use a direct client/),
    });
    await viaGateway.close();
    const summary = await client.submitMany(run, [
      { request: { label: "fine" } },
      { request: { label: "bad" }, options: { delayMs: -1 } },
    ]);
    expect(summary).toMatchObject({ acknowledged: 2, failed: 1 });
    expect(summary.failures[0]?.index).toBe(1);
    expect(summary.failures[0]?.error.message).toMatch(/task.delay must not be negative/);
  });
});

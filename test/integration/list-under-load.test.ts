import { once } from "node:events";
import { Worker } from "node:worker_threads";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reportService } from "../../examples/gen/example/v1/report_taskwire.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { createTaskRegistry } from "../../sdk/core/task-registry.ts";
import { createNatsTaskBackend } from "../../sdk/nats/nats-task-backend.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";

const stored = 100_000;

/**
 * A list never holds up other calls: with 100,000 tasks stored, submits through
 * the gateway take as long while ListTasks pages are read over and over (the
 * plain listing, and a states filter that reads its whole budget) as without.
 * Where a listing read every stored task, each one blocked the gateway for
 * hundreds of milliseconds and submits waited behind it.
 */
describe("ListTasks under load", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let gateway: Gateway;
  let submitter: TaskwireClient;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    const backend = await createNatsTaskBackend({ nc, registry: createTaskRegistry([reportService]) });
    gateway = await createGateway({ backend });
    // No worker: every task stays queued.
    const direct = await createClient({ nats: nats.url, services: [reportService] });
    try {
      function* items() {
        for (let i = 0; i < stored; i++) yield { request: { title: `stored ${i}`, sections: 1 } };
      }
      const summary = await direct.submitMany(reportService.methods.generate, items(), { maxInFlight: 2_000 });
      expect(summary.acknowledged).toBe(stored);
    } finally {
      await direct.close();
    }
    submitter = await createClient({ gateway: gateway.url });
  }, 180_000);

  afterAll(async () => {
    await submitter?.close();
    await gateway?.close();
    await nc?.close();
    await nats?.stop();
  });

  /** The median time of `count` submits through the gateway, one after the other, in ms. */
  const submitMedian = async (count: number) => {
    const times: number[] = [];
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      await submitter.submitTask(reportService.methods.generate, { title: `measured ${i}`, sections: 1 });
      times.push(performance.now() - started);
    }
    return times.sort((a, b) => a - b)[Math.floor(count / 2)] as number;
  };

  it("submits take as long while lists run as without", async () => {
    await submitMedian(100); // warm-up
    const quiet: number[] = [];
    const listing: number[] = [];
    let lists = 0;
    for (let round = 0; round < 2; round++) {
      quiet.push(await submitMedian(200));
      // The lister runs on its own thread, as a dashboard would in its own process.
      const lister = new Worker(new URL("../fixtures/list-loop.ts", import.meta.url), {
        workerData: { gateway: gateway.url, workerType: "reports" },
      });
      await once(lister, "message");
      try {
        listing.push(await submitMedian(200));
      } finally {
        lister.postMessage("stop");
        lists += (await once(lister, "message"))[0] as number;
        await lister.terminate();
      }
    }
    const median = (values: number[]) => values.toSorted((a, b) => a - b)[Math.floor(values.length / 2)] as number;
    const [without, withLists] = [median(quiet), median(listing)];
    console.log(
      `submit median: ${without.toFixed(2)} ms alone, ${withLists.toFixed(2)} ms with ${lists} lists over ${stored} tasks`,
    );
    expect(lists).toBeGreaterThan(5);
    // A margin for a shared machine (the lister's thread takes CPU from the gateway and
    // the server): a listing that read every stored task blocked for hundreds of ms.
    expect(withLists).toBeLessThan(2 * without + 5);
  }, 120_000);
});

import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { startNatsCluster, startNatsServer } from "../support/nats-server.js";

const encoder = new TextEncoder();

describe("the nats-server test helper", () => {
  it("starts a JetStream server that publishes and consumes", async () => {
    const server = await startNatsServer();
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      const stream = `HELPER_${process.pid}`;
      await jsm.streams.add({
        name: stream,
        subjects: [`helper.${process.pid}.>`],
        retention: RetentionPolicy.Workqueue,
      });
      await jsm.consumers.add(stream, { durable_name: "c", ack_policy: AckPolicy.Explicit });
      const js = jetstream(nc);
      for (let i = 0; i < 20; i++) await js.publish(`helper.${process.pid}.${i}`, encoder.encode(`m${i}`));
      const consumer = await js.consumers.get(stream, "c");
      const seen: string[] = [];
      const batch = await consumer.fetch({ max_messages: 20, expires: 2000 });
      for await (const msg of batch) {
        seen.push(msg.string());
        await msg.ackAck();
      }
      expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
      expect((await jsm.streams.info(stream)).state.messages).toBe(0);
    } finally {
      await nc.close();
      await server.stop();
    }
  });

  it("keeps a durably stored message across kill -9 and restart (durable profile)", async () => {
    const server = await startNatsServer({ syncAlways: true });
    try {
      let nc = await connect({ servers: server.url });
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "DURABLE", subjects: ["durable.>"], storage: StorageType.File });
      await jetstream(nc).publish("durable.one", encoder.encode("kept"));
      await nc.close();
      await server.kill("SIGKILL");
      await server.restart();
      nc = await connect({ servers: server.url });
      const msg = await (await jetstreamManager(nc)).streams.getMessage("DURABLE", { last_by_subj: "durable.one" });
      expect(msg?.string()).toBe("kept");
      await nc.close();
    } finally {
      await server.stop();
    }
  });

  it("starts a 3-node cluster that stores an R3 stream", async () => {
    const cluster = await startNatsCluster(3);
    const nc = await connect({ servers: cluster.urls });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: "R3", subjects: ["r3.>"], num_replicas: 3 });
      await jetstream(nc).publish("r3.a", encoder.encode("replicated"));
      const info = await jsm.streams.info("R3");
      expect(info.cluster?.replicas?.length).toBe(2);
      expect((await jsm.streams.getMessage("R3", { last_by_subj: "r3.a" }))?.string()).toBe("replicated");
    } finally {
      await nc.close();
      await cluster.stop();
    }
  }, 60_000);
});

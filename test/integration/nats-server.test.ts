import {
  AckPolicy,
  type JetStreamClient,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsCluster, type NatsServer, startNatsCluster, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";
import { environmentVariable } from "../support/proc.ts";

const encoder = new TextEncoder();
let sequence = 0;

/** A stream name no other test (or earlier run against the same store) uses. */
function uniqueName(prefix: string): string {
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${sequence++}`;
}

/** Fetches from a durable pull consumer until `count` messages arrived (or 10 s passed), acking each. */
async function drain(js: JetStreamClient, stream: string, durable: string, count: number): Promise<string[]> {
  const consumer = await js.consumers.get(stream, durable);
  const seen: string[] = [];
  const deadline = Date.now() + 10_000;
  while (seen.length < count) {
    try {
      const batch = await consumer.fetch({ max_messages: count - seen.length, expires: 1_000 });
      for await (const msg of batch) {
        seen.push(msg.string());
        await msg.ackAck();
      }
    } catch (error) {
      // In a cluster, the interest of a new consumer reaches the other servers
      // asynchronously: until then a pull request gets "no responders".
      if (!/no responders/i.test(String(error)) || Date.now() >= deadline) throw error;
    }
    if (Date.now() >= deadline) break;
  }
  return seen;
}

describe("startNatsServer", () => {
  let server: NatsServer;
  let nc: NatsConnection;

  beforeAll(async () => {
    server = await startNatsServer();
    nc = await connect({ servers: server.url });
  });

  afterAll(async () => {
    await nc?.close();
    await server?.stop();
  });

  it("serves JetStream: a work-queue stream is empty once its messages are acked", async () => {
    expect(server.url).toBe(`nats://127.0.0.1:${server.port}`);
    const jsm = await jetstreamManager(nc);
    const stream = uniqueName("HELPER");
    const subject = stream.toLowerCase();
    await jsm.streams.add({ name: stream, subjects: [`${subject}.>`], retention: RetentionPolicy.Workqueue });
    await jsm.consumers.add(stream, { durable_name: "worker", ack_policy: AckPolicy.Explicit });

    const js = jetstream(nc);
    const sent = Array.from({ length: 50 }, (_, i) => `message ${i}`);
    for (const [i, body] of sent.entries()) await js.publish(`${subject}.${i}`, encoder.encode(body));
    expect((await jsm.streams.info(stream)).state.messages).toBe(sent.length);

    expect(await drain(js, stream, "worker", sent.length)).toEqual(sent);
    await poll(async () => ((await jsm.streams.info(stream)).state.messages === 0 ? true : undefined), 5_000);
    const consumer = await jsm.consumers.info(stream, "worker");
    expect(consumer.num_ack_pending).toBe(0);
    expect(consumer.num_pending).toBe(0);
  });

  it("runs Go code on as many threads as `threads` says (the benchmarks' GOMAXPROCS)", async () => {
    const single = await startNatsServer({ threads: 1 });
    try {
      expect(await environmentVariable(single.pid, "GOMAXPROCS")).toBe("1");
      expect(await environmentVariable(server.pid, "GOMAXPROCS")).toBe(process.env.GOMAXPROCS);
    } finally {
      await single.stop();
    }
  });

  it("rejects with the server's output when the server cannot start", async () => {
    await expect(startNatsServer({ port: server.port })).rejects.toThrow(/exited[\s\S]*address already in use/);
  });
});

describe("NatsServer.restart", () => {
  let server: NatsServer;

  beforeAll(async () => {
    server = await startNatsServer({ syncAlways: true });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it("keeps durably stored messages across kill -9 (durable profile)", async () => {
    const stream = uniqueName("DURABLE");
    const subject = stream.toLowerCase();
    let nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: stream, subjects: [`${subject}.>`], storage: StorageType.File });
    const ack = await jetstream(nc).publish(`${subject}.one`, encoder.encode("kept"));
    expect(ack.duplicate).toBe(false);
    await nc.close();

    const { pid, port, storeDir } = server;
    await server.kill("SIGKILL");
    await server.restart();
    expect(server.pid).not.toBe(pid);
    expect(server.port).toBe(port);
    expect(server.storeDir).toBe(storeDir);

    nc = await connect({ servers: server.url });
    try {
      const restored = await jetstreamManager(nc);
      expect((await restored.streams.info(stream)).state.messages).toBe(1);
      const msg = await restored.streams.getMessage(stream, { last_by_subj: `${subject}.one` });
      expect(msg?.string()).toBe("kept");
    } finally {
      await nc.close();
    }
  });
});

describe("startNatsCluster", () => {
  let cluster: NatsCluster;
  let nc: NatsConnection;

  beforeAll(async () => {
    cluster = await startNatsCluster(3);
    nc = await connect({ servers: cluster.urls });
  });

  afterAll(async () => {
    await nc?.close();
    await cluster?.stop();
  });

  it("stores an R3 stream on all three servers", async () => {
    expect(cluster.servers).toHaveLength(3);
    expect(new Set(cluster.urls).size).toBe(3);
    // A new R3 stream's and consumer's groups elect their leaders first: on a busy machine
    // (other clusters of the suite run beside this one) that outlasts the default 5 s.
    const jsm = await jetstreamManager(nc, { timeout: 30_000 });
    const stream = uniqueName("R3");
    const subject = stream.toLowerCase();
    await jsm.streams.add({ name: stream, subjects: [`${subject}.>`], num_replicas: 3 });
    await jsm.consumers.add(stream, { durable_name: "reader", ack_policy: AckPolicy.Explicit });

    const js = jetstream(nc);
    const sent = Array.from({ length: 10 }, (_, i) => `replicated ${i}`);
    // The new stream's subject interest reaches the other servers asynchronously,
    // so the first publish can get "no responders": the client retries with backoff.
    for (const [i, body] of sent.entries()) await js.publish(`${subject}.${i}`, encoder.encode(body), { retries: 10 });

    // Followers catch up asynchronously: wait until both report current.
    const info = await poll(async () => {
      const current = await jsm.streams.info(stream);
      const replicas = current.cluster?.replicas ?? [];
      return replicas.length === 2 && replicas.every((r) => r.current) ? current : undefined;
    }, 10_000);
    expect(info.config.num_replicas).toBe(3);
    expect(info.state.messages).toBe(sent.length);
    const names = [info.cluster?.leader, ...(info.cluster?.replicas ?? []).map((r) => r.name)];
    expect(names.sort()).toEqual(["n0", "n1", "n2"]);

    expect(await drain(js, stream, "reader", sent.length)).toEqual(sent);
  });
});

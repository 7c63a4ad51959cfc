import { create } from "@bufbuild/protobuf";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState, TaskStatusSchema } from "../../gen/taskwire/v1/task_pb.js";
import { Mailbox } from "../../sdk/mailbox.js";
import { RequestPipeline } from "../../sdk/request-pipeline.js";
import { newTaskId } from "../../sdk/task-id.js";
import { decodeStatus, writeStatus } from "../../sdk/task-status.js";
import { provisionStatusBucket, topology } from "../../sdk/topology.js";
import { type NatsServer, startNatsServer } from "../support/nats-server.js";

/** A subscription's messages, taken one at a time. */
function inbox(nc: NatsConnection, subject: string) {
  const arrived = new Mailbox<Msg>();
  const subscription = nc.subscribe(subject, { callback: (_, msg) => arrived.push(msg) });
  const messages = arrived[Symbol.asyncIterator]();
  return {
    next: async () => (await messages.next()).value as Msg,
    close: () => {
      subscription.unsubscribe();
      arrived.close();
    },
  };
}

describe("status events: the server republishes each stored status write", () => {
  let nats: NatsServer;
  let nc: NatsConnection;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
  }, 30_000);

  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it("announces a write on taskwire.status.<route>.<task id> once stored, and never one the bucket refused", async () => {
    const bucket = { kv: await provisionStatusBucket(nc), requests: new RequestPipeline(nc) };
    const taskId = newTaskId("hasher", Date.now(), "ROUTE123");
    expect(topology.statusEventSubject(taskId)).toBe(`taskwire.status.ROUTE123.${taskId}`);
    const events = inbox(nc, topology.statusEventsOf("ROUTE123"));
    await nc.flush();
    try {
      const status = create(TaskStatusSchema, { taskId, workerType: "hasher", state: TaskState.RUNNING });
      const first = await writeStatus(bucket, status, 0);
      expect(first).toBeDefined();
      // A second create conflicts with the record: refused, so never announced.
      status.state = TaskState.SUCCEEDED;
      expect(await writeStatus(bucket, status, 0)).toBeUndefined();
      status.state = TaskState.FAILED;
      const third = await writeStatus(bucket, status, first?.revision ?? 0);

      const announced = await events.next();
      expect(announced.subject).toBe(topology.statusEventSubject(taskId));
      expect(decodeStatus(announced.data).state).toBe(TaskState.RUNNING);
      expect(announced.headers?.get("Nats-Sequence")).toBe(String(first?.revision));
      // In order of storing: the next one is the third write, the refused one never came.
      const next = await events.next();
      expect(decodeStatus(next.data).state).toBe(TaskState.FAILED);
      expect(next.headers?.get("Nats-Sequence")).toBe(String(third?.revision));
    } finally {
      events.close();
      bucket.requests.close();
    }
  });

  it("gives a status bucket made before status events existed their republish", async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(topology.statusStream).catch(() => undefined);
    await new Kvm(nc).create(topology.statusBucket, { history: 1 });
    expect((await jsm.streams.info(topology.statusStream)).config.republish).toBeUndefined();
    await provisionStatusBucket(nc);
    expect((await jsm.streams.info(topology.statusStream)).config.republish?.dest).toMatch(/^taskwire\.status\./);
  });
});

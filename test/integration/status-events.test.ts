import { getEventListeners } from "node:events";
import { create } from "@bufbuild/protobuf";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState, TaskStatusSchema } from "../../gen/taskwire/v1/task_pb.ts";
import { Mailbox } from "../../sdk/core/mailbox.ts";
import { topology } from "../../sdk/core/names.ts";
import { decodeStatus, encodedOutcome } from "../../sdk/core/status.ts";
import { newTaskId } from "../../sdk/core/task-id.ts";
import { provisionStatusBucket } from "../../sdk/nats/provisioning.ts";
import { RequestPipeline } from "../../sdk/nats/request-pipeline.ts";
import { ResultInbox } from "../../sdk/nats/result-inbox.ts";
import { StatusFeed } from "../../sdk/nats/status-feed.ts";
import { readStatusRecords, type StoredStatus, writeStatus } from "../../sdk/nats/status-store.ts";
import { unstartedOf } from "../../sdk/nats/unstarted.ts";
import { encodeMessage } from "../../sdk/wire/wire-codec.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

/** Reads for an inbox that must hear of its tasks by their notifications: no record, all queued. */
const noRecords = {
  records: async () => new Map<string, Uint8Array>(),
  unstarted: async (ids: readonly string[]) => new Set(ids),
};

/** The server's status event of a task that succeeded, as its republish sends it. */
const announceSuccess = (taskId: string) =>
  nc.publish(
    topology.statusEventSubject(taskId),
    encodeMessage(TaskStatusSchema, create(TaskStatusSchema, { taskId, state: TaskState.SUCCEEDED })),
  );

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

describe("status events: the server republishes each stored status write", () => {
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

  it("reads many tasks' records in a batched direct get each: those with a record, and no others", async () => {
    const bucket = { kv: await provisionStatusBucket(nc), requests: new RequestPipeline(nc) };
    try {
      const now = Date.now();
      const ids = Array.from({ length: 600 }, () => newTaskId("batcher", now, "ROUTE123"));
      const written = ids.filter((_, i) => i % 3 === 0);
      for (const taskId of written)
        await writeStatus(bucket, create(TaskStatusSchema, { taskId, state: TaskState.SUCCEEDED }), 0);
      // A deleted record reads as none.
      await bucket.kv.delete(written[0] as string);
      const records = new Map<string, Uint8Array>();
      for (let i = 0; i < ids.length; i += 200) {
        for (const [taskId, bytes] of await readStatusRecords(nc, ids.slice(i, i + 200))) records.set(taskId, bytes);
      }
      expect([...records.keys()].sort()).toEqual(written.slice(1).sort());
      for (const [taskId, bytes] of records) expect(encodedOutcome(bytes).taskId).toBe(taskId);
      // None of these has a record: the server answers "no results".
      expect((await readStatusRecords(nc, ids.slice(1, 3))).size).toBe(0);
    } finally {
      bucket.requests.close();
    }
  });

  it("a waiter pushed out of the result inbox by its limit is read, not handed back to follow the bucket", async () => {
    const bucket = { kv: await provisionStatusBucket(nc), requests: new RequestPipeline(nc) };
    const reads = {
      records: (taskIds: readonly string[]) => readStatusRecords(nc, taskIds),
      unstarted: (taskIds: readonly string[]) => unstartedOf(nc, taskIds),
    };
    const inbox = new ResultInbox(nc, reads, { limit: 2, graceMs: 60_000 });
    try {
      // Another route's ids: no status event reaches this inbox, only its reads can.
      const [first, second, third] = [1, 2, 3].map(() => newTaskId("limited", Date.now(), "ELSEWHRE"));
      inbox.track(first as string);
      inbox.track(second as string);
      const waited = inbox.take(first as string);
      // Stored before it is read: a read that found nothing would put the next one off by a minute.
      await writeStatus(bucket, create(TaskStatusSchema, { taskId: first, state: TaskState.SUCCEEDED }), 0);
      inbox.track(third as string); // over the limit: the oldest, waited for, is read from now on
      const outcome = await waited;
      expect(outcome).toBeInstanceOf(Uint8Array);
      expect(encodedOutcome(outcome as Uint8Array)).toEqual({ taskId: first, state: TaskState.SUCCEEDED });
    } finally {
      inbox.close();
      bucket.requests.close();
    }
  });

  it("a reconnect while a read of the inbox's waiters is in flight reads them again once it ends", async () => {
    // Reads answered by the test: the first as of before the outcome was stored.
    const calls: { ids: readonly string[]; answer: (records: ReadonlyMap<string, Uint8Array>) => void }[] = [];
    const reads = {
      records: (ids: readonly string[]) =>
        new Promise<ReadonlyMap<string, Uint8Array>>((answer) => calls.push({ ids, answer })),
      unstarted: async () => new Set<string>(),
    };
    const inbox = new ResultInbox(nc, reads, { graceMs: 60_000 });
    try {
      const taskId = newTaskId("hasher", Date.now(), "ELSEWHRE");
      inbox.track(taskId);
      const waited = inbox.take(taskId);
      inbox.recheckAll(); // a reconnect: the waiter's record is read at once
      await poll(async () => (calls.length === 1 ? true : undefined));
      inbox.recheckAll(); // another, while that read is in flight
      calls[0]?.answer(new Map());
      // At once, not a grace (a minute) later.
      await poll(async () => (calls.length === 2 ? true : undefined), 5_000);
      expect(calls.map((c) => c.ids)).toEqual([[taskId], [taskId]]);
      const stored = encodeMessage(TaskStatusSchema, create(TaskStatusSchema, { taskId, state: TaskState.SUCCEEDED }));
      calls[1]?.answer(new Map([[taskId, stored]]));
      expect(encodedOutcome((await waited) as Uint8Array)).toEqual({ taskId, state: TaskState.SUCCEEDED });
    } finally {
      inbox.close();
    }
  });

  it("a task's grace begins at its acceptance: one whose PubAck took longer than the grace is still pushed", async () => {
    const inbox = new ResultInbox(nc, noRecords, { graceMs: 10 });
    try {
      const taskId = newTaskId("hasher", Date.now(), inbox.route);
      inbox.track(taskId);
      // The PubAck comes twenty graces after the publish: the sweeps meanwhile (every 10 ms) keep the task.
      await new Promise((resolve) => setTimeout(resolve, 200));
      inbox.accepted(taskId);
      const waited = inbox.take(taskId);
      expect(waited).toBeInstanceOf(Promise);
      announceSuccess(taskId);
      expect(encodedOutcome((await waited) as Uint8Array)).toEqual({ taskId, state: TaskState.SUCCEEDED });
    } finally {
      inbox.close();
    }
  });

  it("a thousand waits on one signal add one listener to it, and end when it aborts", async () => {
    const inbox = new ResultInbox(nc, noRecords, { graceMs: 60_000 });
    try {
      const shared = new AbortController();
      const ids = Array.from({ length: 1000 }, () => newTaskId("hasher", Date.now(), inbox.route));
      const waits = ids.map((taskId) => {
        inbox.track(taskId);
        inbox.accepted(taskId);
        return inbox.take(taskId, shared.signal);
      });
      // Node's EventTarget walks its listeners on each add and remove.
      expect(getEventListeners(shared.signal, "abort")).toHaveLength(1);
      const [first] = ids as [string];
      announceSuccess(first);
      expect(encodedOutcome((await waits[0]) as Uint8Array)).toEqual({ taskId: first, state: TaskState.SUCCEEDED });
      shared.abort();
      expect(await Promise.all(waits.slice(1))).toEqual(ids.slice(1).map(() => undefined));
    } finally {
      inbox.close();
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

describe("status feed: one consumer of the status bucket per watched worker type, while it is watched", () => {
  const consumerNames = async () =>
    (await (await jetstreamManager(nc)).consumers.list(topology.statusStream).next()).map((c) => c.name);

  /** Listens to one task's writes; `next()` is the next one. */
  const listen = async (feed: StatusFeed, taskId: string) => {
    // Boxed: a mailbox carries no undefined, the feed's "ended".
    const updates = new Mailbox<{ update: StoredStatus | undefined }>();
    const stop = await feed.listen(taskId, "feeder", (update) => updates.push({ update }));
    const iterator = updates[Symbol.asyncIterator]();
    return { stop, next: async () => ((await iterator.next()).value as { update: StoredStatus | undefined }).update };
  };

  it("shares a type's consumer, deletes it idleMs after its last listener left, and starts a new one for the next", async () => {
    const bucket = { kv: await provisionStatusBucket(nc), requests: new RequestPipeline(nc) };
    const feed = new StatusFeed(jetstream(nc), { idleMs: 300 });
    try {
      const taskId = newTaskId("feeder", Date.now(), "ROUTE123");
      const status = create(TaskStatusSchema, { taskId, workerType: "feeder", state: TaskState.RUNNING });
      const first = await listen(feed, taskId);
      const second = await listen(feed, newTaskId("feeder", Date.now(), "ROUTE123"));
      expect(await consumerNames()).toHaveLength(1);
      const written = await writeStatus(bucket, status, 0);
      expect((await first.next())?.revision).toBe(written?.revision);

      first.stop();
      second.stop();
      await poll(async () => ((await consumerNames()).length === 0 ? true : undefined), 10_000);

      const third = await listen(feed, taskId);
      expect(await consumerNames()).toHaveLength(1);
      status.state = TaskState.SUCCEEDED;
      const rewritten = await writeStatus(bucket, status, written?.revision ?? 0);
      const update = await third.next();
      expect(update?.revision).toBe(rewritten?.revision);
      expect(update?.status.state).toBe(TaskState.SUCCEEDED);
      // Closed with a listener: it is told, and the consumer goes too.
      feed.close();
      expect(await third.next()).toBeUndefined();
      await poll(async () => ((await consumerNames()).length === 0 ? true : undefined), 10_000);
    } finally {
      feed.close();
      bucket.requests.close();
    }
  });

  it("keeps the consumer for a listener that comes within idleMs, and tells listeners when it is closed", async () => {
    await provisionStatusBucket(nc);
    const feed = new StatusFeed(jetstream(nc), { idleMs: 60_000 });
    const taskId = newTaskId("feeder", Date.now(), "ROUTE123");
    (await listen(feed, taskId)).stop();
    const [name] = await consumerNames();
    expect(name).toBeDefined();
    const again = await listen(feed, taskId);
    expect(await consumerNames()).toEqual([name]);
    feed.close();
    expect(await again.next()).toBeUndefined();
  });
});

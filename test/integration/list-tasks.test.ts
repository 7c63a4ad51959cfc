import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { reportService } from "../../examples/gen/example/v1/report_taskwire.ts";
import { TaskState, type TaskStatus } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { probeHandler } from "../fixtures/probe-worker.ts";
import { implementProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

describe("ListTasks pages", () => {
  let nats: NatsServer;
  let client: TaskwireClient;
  // Newest first, as ListTasks orders them.
  const ids: string[] = [];
  const cancelled = new Set<string>();

  beforeAll(async () => {
    nats = await startNatsServer();
    client = await createClient({ nats: nats.url, services: [reportService] });
    // No worker: each task stays queued, with no status record, unless cancelled.
    for (let i = 0; i < 23; i++) {
      const task = await client.submitTask(reportService.methods.generate, { title: `t${i}`, sections: 1 });
      ids.unshift(task.id);
      if (i % 3 === 0) {
        await task.cancel("test");
        cancelled.add(task.id);
      }
    }
  }, 30_000);

  afterAll(async () => {
    await client?.close();
    await nats?.stop();
  });

  async function allPages(pageSize: number, states: TaskState[]): Promise<{ seen: string[]; sizes: number[] }> {
    const seen: string[] = [];
    const sizes: number[] = [];
    let pageToken = "";
    do {
      const page = await client.listTasks({ workerType: "reports", states, pageSize, pageToken });
      seen.push(...page.tasks.map((t) => t.taskId));
      sizes.push(page.tasks.length);
      pageToken = page.nextPageToken;
    } while (pageToken);
    return { seen, sizes };
  }

  it("gives every task once, newest first, in full pages, queued ones with no status record included", async () => {
    const { seen, sizes } = await allPages(5, []);
    expect(seen).toEqual(ids);
    expect(sizes).toEqual([5, 5, 5, 5, 3]);
  });

  it("fills each page with tasks of the asked states, skipping the others, and resumes after its token", async () => {
    const pending = await allPages(4, [TaskState.PENDING]);
    expect(pending.seen).toEqual(ids.filter((id) => !cancelled.has(id)));
    expect(pending.sizes.slice(0, -1).every((size) => size === 4)).toBe(true);
    const gone = await allPages(3, [TaskState.CANCELLED]);
    expect(gone.seen).toEqual(ids.filter((id) => cancelled.has(id)));
    expect(gone.sizes.slice(0, -1).every((size) => size === 3)).toBe(true);
  });
});

describe("ListTasks reads an index, not every task", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let client: TaskwireClient;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    client = await createClient({ nats: nc, services: [reportService, hashService] });
  }, 30_000);

  afterAll(async () => {
    await client?.close();
    await nc?.close();
    await nats?.stop();
  });

  const submitOneByOne = async (count: number) => {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      ids.push((await client.submitTask(reportService.methods.generate, { title: `o${i}`, sections: 1 })).id);
    }
    return ids;
  };
  const submitInBulk = async (count: number) => {
    function* items() {
      for (let i = 0; i < count; i++) yield { request: { title: `b${i}`, sections: 1 } };
    }
    const summary = await client.submitMany(reportService.methods.generate, items(), { maxInFlight: 1_000 });
    expect(summary.acknowledged).toBe(count);
  };
  /** What a first page and the page after it cost the client: bytes received from NATS. */
  const pageBytes = async () => {
    const before = nc.stats().inBytes;
    const first = await client.listTasks({ workerType: "reports", pageSize: 100 });
    await client.listTasks({ workerType: "reports", pageSize: 100, pageToken: first.nextPageToken });
    return nc.stats().inBytes - before;
  };

  it("a page costs the same with 300 tasks held as with 6,300", async () => {
    await submitOneByOne(300);
    const few = await pageBytes();
    // Bulk submits write many ids per index message; the newest 300 are one by one again.
    await submitInBulk(5_700);
    const newest = await submitOneByOne(300);
    const many = await pageBytes();
    expect(many).toBeLessThan(few * 1.3);
    const page = await client.listTasks({ workerType: "reports", pageSize: 100 });
    expect(page.tasks.map((t) => t.taskId)).toEqual(newest.slice(-100).reverse());
  }, 120_000);

  it("a filter by a state without entries of its own ends a page after 1,000 tasks looked at, with a token to go on", async () => {
    const pages: number[] = [];
    let pageToken = "";
    do {
      const page = await client.listTasks({ workerType: "reports", states: [TaskState.RETRYING], pageToken });
      pages.push(page.tasks.length);
      pageToken = page.nextPageToken;
    } while (pageToken);
    // 6,600 tasks: seven calls, each bounded, none of them a whole scan.
    expect(pages).toEqual([0, 0, 0, 0, 0, 0, 0]);
  }, 60_000);

  it("a filter by finished states reads their entries: none failed is one empty page", async () => {
    const page = await client.listTasks({ workerType: "reports", states: [TaskState.FAILED] });
    expect(page.tasks).toEqual([]);
    expect(page.nextPageToken).toBe("");
  });

  it("without a worker type, merges the types newest first, and the token resumes each", async () => {
    const own = await createClient({ nats: nats.url, services: [hashService] });
    try {
      const submitted: string[] = [];
      for (let i = 0; i < 7; i++) {
        submitted.push((await own.submitTask(hashService.methods.digest, { text: `m${i}` })).id);
        submitted.push((await client.submitTask(reportService.methods.generate, { title: `m${i}`, sections: 1 })).id);
      }
      const seen: string[] = [];
      let pageToken = "";
      while (seen.length < submitted.length) {
        const page = await client.listTasks({ pageSize: 3, pageToken });
        seen.push(...page.tasks.map((t) => t.taskId));
        pageToken = page.nextPageToken;
        expect(pageToken).not.toBe("");
      }
      expect(seen.slice(0, submitted.length)).toEqual(submitted.reverse());
    } finally {
      await own.close();
    }
  });

  it("lists a keyed task submitted twice once", async () => {
    const generate = reportService.methods.generate;
    const first = await client.submitTask(generate, { title: "keyed", sections: 1 }, { idempotencyKey: "list-once" });
    const again = await client.submitTask(generate, { title: "keyed", sections: 1 }, { idempotencyKey: "list-once" });
    expect(again.id).toBe(first.id);
    const page = await client.listTasks({ workerType: "reports", pageSize: 5 });
    expect(page.tasks.map((t) => t.taskId).filter((id) => id === first.id)).toHaveLength(1);
    expect(page.tasks[0]?.taskId).toBe(first.id);
  });

  it("finds tasks by a searchable request field, newest first, keeping only a hash of the value", async () => {
    const quarterly: string[] = [];
    for (let i = 0; i < 3; i++) {
      quarterly.unshift(
        (await client.submitTask(reportService.methods.generate, { title: "quarterly", sections: 1 })).id,
      );
      await client.submitTask(reportService.methods.generate, { title: `other ${i}`, sections: 1 });
    }
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await client.listTasks({
        workerType: "reports",
        fieldName: "title",
        fieldValue: "quarterly",
        pageSize: 2,
        pageToken,
      });
      seen.push(...page.tasks.map((t) => t.taskId));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(seen).toEqual(quarterly);
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info("INDEX_reports", { subjects_filter: "taskwire.index.reports.field.>" });
    const subjects = Object.keys(info.state.subjects ?? {});
    expect(subjects.length).toBeGreaterThan(0);
    expect(subjects.join(" ")).not.toMatch(/quarterly|other/);
    await expect(client.listTasks({ workerType: "reports", fieldName: "sections", fieldValue: "1" })).rejects.toThrow(
      /\[invalid_argument\] worker type "reports" has no searchable field "sections" \(searchable: title\)/,
    );
    await expect(client.listTasks({ fieldName: "title", fieldValue: "quarterly" })).rejects.toThrow(
      /\[invalid_argument\] field_name needs worker_type/,
    );
  });

  it("refuses a token it did not give, or one given for other worker types, with INVALID_ARGUMENT", async () => {
    const reports = await client.listTasks({ workerType: "reports", pageSize: 1 });
    await expect(client.listTasks({ workerType: "hasher", pageToken: reports.nextPageToken })).rejects.toThrow(
      /\[invalid_argument\] page_token ".*" is not one a ListTasks answer gave: it lists "reports", which this request does not/,
    );
    const taskIdToken = reports.tasks[0]?.taskId ?? "";
    await expect(client.listTasks({ workerType: "reports", pageToken: taskIdToken })).rejects.toThrow(
      /\[invalid_argument\] page_token ".*" is not one a ListTasks answer gave/,
    );
  });
});

describe("ListTasks by state, time and key", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let client: TaskwireClient;
  let worker: Worker;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    client = await createClient({ nats: nc, services: [probeService] });
    worker = await createWorker({ nats: nats.url, services: [implementProbeService({ run: probeHandler() })] });
  }, 30_000);

  afterAll(async () => {
    await worker?.close();
    await client?.close();
    await nc?.close();
    await nats?.stop();
  });

  const ids = async (request: Parameters<TaskwireClient["listTasks"]>[0]) => {
    const seen: string[] = [];
    let pageToken = "";
    do {
      const page = await client.listTasks({ workerType: "probe", pageSize: 2, ...request, pageToken });
      seen.push(...page.tasks.map((t) => t.taskId));
      pageToken = page.nextPageToken;
    } while (pageToken);
    return seen;
  };

  it("lists running and finished tasks from their states' entries, the latest to enter first", async () => {
    const succeeded: string[] = [];
    const failed: string[] = [];
    for (let i = 0; i < 5; i++) {
      const ok = await client.submitTask(probeService.methods.run, { label: `ok${i}` });
      await ok.result();
      succeeded.unshift(ok.id);
      const bad = await client.submitTask(probeService.methods.run, { label: `bad${i}`, nonRetryable: true });
      await bad.result().catch(() => undefined);
      failed.unshift(bad.id);
    }
    // Three that run for a minute (the worker runs four at once): RUNNING until cancelled.
    const running: string[] = [];
    for (let i = 0; i < 3; i++) {
      const task = await client.submitTask(probeService.methods.run, { label: `long${i}`, sleepMs: 60_000 });
      await poll(async () => ((await task.status()).state === TaskState.RUNNING ? true : undefined));
      running.unshift(task.id);
    }
    // A state's entries are written just after the record: a list may lag a result by that write.
    const listed = (states: TaskState[], expected: string[]) =>
      poll(async () => {
        const seen = await ids({ states });
        return JSON.stringify(seen) === JSON.stringify(expected) ? seen : undefined;
      }, 5_000).catch(() => ids({ states }));
    expect(await listed([TaskState.SUCCEEDED], succeeded)).toEqual(succeeded);
    expect(await listed([TaskState.FAILED], failed)).toEqual(failed);
    expect(await listed([TaskState.RUNNING], running)).toEqual(running);
    // Two states merge by when their tasks entered them.
    expect(await ids({ states: [TaskState.SUCCEEDED, TaskState.FAILED] })).toEqual(
      succeeded.flatMap((id, i) => [failed[i] as string, id]),
    );
    for (const id of running) await client.cancelTask(id, "test");
    expect(await ids({ states: [TaskState.RUNNING] })).toEqual([]);
    // Cancelled newest first: the one cancelled last leads.
    expect(await listed([TaskState.CANCELLED], running.toReversed())).toEqual(running.toReversed());
  }, 60_000);

  it("reads few bytes for a state whose tasks are rare among many", async () => {
    function* items() {
      for (let i = 0; i < 3_000; i++) yield { request: { label: `bulk${i}` } };
    }
    await client.submitMany(probeService.methods.run, items(), { maxInFlight: 500 });
    await poll(async () => ((await client.queues.getQueue("probe")).queued === 0n ? true : undefined), 60_000);
    const before = nc.stats().inBytes;
    const failed = await client.listTasks({ workerType: "probe", states: [TaskState.FAILED], pageSize: 5 });
    const read = nc.stats().inBytes - before;
    expect(failed.tasks).toHaveLength(5);
    // Five statuses of about 400 bytes, a few windows of index messages: not 3,000 entries.
    expect(read).toBeLessThan(20_000);
  }, 90_000);

  it("lists the tasks submitted since or until a time", async () => {
    const early = await client.submitTask(probeService.methods.run, { label: "early" });
    await poll(async () => (Date.now() > timestampMs(await early.status()) + 5 ? true : undefined));
    const boundary = new Date();
    await poll(async () => (Date.now() > boundary.getTime() + 5 ? true : undefined));
    const late = await client.submitTask(probeService.methods.run, { label: "late" });
    const since = await ids({ since: timestampFromDate(boundary) });
    expect(since).toEqual([late.id]);
    const until = await client.listTasks({ workerType: "probe", until: timestampFromDate(boundary), pageSize: 1 });
    expect(until.tasks.map((t) => t.taskId)).toEqual([early.id]);
    await expect(
      client.listTasks({ workerType: "probe", since: timestampFromDate(boundary), until: timestampFromDate(boundary) }),
    ).rejects.toThrow(/\[invalid_argument\] since \(.*\) must be before until/);
  });

  it("finds a task by its idempotency key", async () => {
    const keyed = await client.submitTask(probeService.methods.run, { label: "keyed" }, { idempotencyKey: "order-7" });
    const found = await client.listTasks({ workerType: "probe", idempotencyKey: "order-7" });
    expect(found.tasks.map((t) => t.taskId)).toEqual([keyed.id]);
    expect((await client.listTasks({ workerType: "probe", idempotencyKey: "order-8" })).tasks).toEqual([]);
    await expect(client.listTasks({ idempotencyKey: "order-7" })).rejects.toThrow(
      /\[invalid_argument\] idempotency_key needs worker_type/,
    );
  });
});

function timestampMs(status: TaskStatus): number {
  return status.createdAt ? Number(status.createdAt.seconds) * 1000 + status.createdAt.nanos / 1e6 : 0;
}

import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { reportService } from "../../examples/gen/example/v1/report_taskwire.ts";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";

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

  it("a states filter that matches nothing ends a page after 1,000 tasks looked at, with a token to go on", async () => {
    const pages: number[] = [];
    let pageToken = "";
    do {
      const page = await client.listTasks({ workerType: "reports", states: [TaskState.FAILED], pageToken });
      pages.push(page.tasks.length);
      pageToken = page.nextPageToken;
    } while (pageToken);
    // 6,600 tasks: seven calls, each bounded, none of them a whole scan.
    expect(pages).toEqual([0, 0, 0, 0, 0, 0, 0]);
  }, 60_000);

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

  it("refuses a token it did not give, or one given for other worker types, with INVALID_ARGUMENT", async () => {
    const reports = await client.listTasks({ workerType: "reports", pageSize: 1 });
    await expect(client.listTasks({ workerType: "hasher", pageToken: reports.nextPageToken })).rejects.toThrow(
      /\[invalid_argument\] page_token ".*" is not one a ListTasks answer gave: it lists worker type "reports", which this request does not/,
    );
    const taskIdToken = reports.tasks[0]?.taskId ?? "";
    await expect(client.listTasks({ workerType: "reports", pageToken: taskIdToken })).rejects.toThrow(
      /\[invalid_argument\] page_token ".*" is not one a ListTasks answer gave/,
    );
  });
});

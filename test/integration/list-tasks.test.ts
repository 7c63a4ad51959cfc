import { afterAll, beforeAll, describe, expect, it } from "vitest";
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

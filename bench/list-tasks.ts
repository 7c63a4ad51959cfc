/**
 * `npm run bench:list [-- 1000 20000]`: what one ListTasks page of 100 costs as
 * the number of tasks grows. A fresh nats-server per size; the tasks are
 * submitted with no worker running, so they stay queued (no status record, as
 * the listing must still find them), then every other one of the newest 200 is
 * cancelled (a status record each). Each round lists the first page, then the
 * page after it; medians of the rounds.
 */
import { availableParallelism } from "node:os";
import { createClient } from "taskwire";
import { startNatsServer } from "../test/support/nats-server.ts";
import { benchNatsServer } from "./deployment.ts";
import { writeSection } from "./doc-section.ts";
import { echoService } from "./gen/bench/v1/bench_taskwire.ts";
import { taskCounts } from "./options.ts";
import { markdownTable } from "./report.ts";

const pageSize = 100;
const rounds = 15;

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

async function listRun(tasks: number): Promise<string[]> {
  const nats = await startNatsServer(benchNatsServer);
  const client = await createClient({ nats: nats.url, services: [echoService] });
  try {
    function* items() {
      for (let i = 0; i < tasks; i++) yield { request: { text: "x" } };
    }
    const summary = await client.submitMany(echoService.methods.echo, items(), {
      maxInFlight: 1_000,
    });
    if (summary.acknowledged !== tasks) throw new Error(`${summary.acknowledged} of ${tasks} acknowledged`);
    // Every other listed task gets a status record: the pages read both kinds.
    const newest = await client.listTasks({ pageSize: 2 * pageSize });
    for (const [i, task] of newest.tasks.entries()) if (i % 2 === 0) await client.cancelTask(task.taskId, "bench");
    const first: number[] = [];
    const second: number[] = [];
    for (let round = 0; round < rounds; round++) {
      let started = performance.now();
      const page = await client.listTasks({ pageSize });
      first.push(performance.now() - started);
      if (page.tasks.length !== pageSize) throw new Error(`a page of ${page.tasks.length} tasks, not ${pageSize}`);
      started = performance.now();
      await client.listTasks({ pageSize, pageToken: page.nextPageToken });
      second.push(performance.now() - started);
    }
    return [String(tasks), median(first).toFixed(1), median(second).toFixed(1)];
  } finally {
    await client.close();
    await nats.stop();
  }
}

const counts = taskCounts([1_000, 20_000, 100_000]);
const rows: string[][] = [];
for (const tasks of counts) {
  console.error(`bench:list: ${tasks} tasks...`);
  const row = await listRun(tasks);
  console.log(row.join(" | "));
  rows.push(row);
}
await writeSection(
  "list",
  `## ListTasks

Written by \`npm run bench:list\` on ${new Date().toISOString()} (${availableParallelism()} CPUs, Node ${process.version}).
One \`client.listTasks\` page of ${pageSize} against one nats-server holding that many tasks of one
worker type, all queued but every other one of the newest ${2 * pageSize} (cancelled: a status record
each); medians of ${rounds} rounds. The second page is the one after the first page's token.

${markdownTable(["tasks", "first page ms", "second page ms"], rows, true)}`,
);
process.exit(0);

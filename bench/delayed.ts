/**
 * `npm run bench:delayed [-- 1000000]`: a million delayed tasks waiting. For each
 * size, a fresh nats-server; this process submits the tasks, each delayed by an
 * hour, through `client.submitBatch` (100 per call, at most 20 calls in flight).
 * Then the runtime's own worker process starts, and one immediate task is timed
 * from submit to result while all of them wait. Prints the submit rate of each
 * tenth, the queue's counts, and each process's peak memory and the store size.
 */
import { execFileSync } from "node:child_process";
import { availableParallelism } from "node:os";
import { createClient } from "taskwire";
import { TaskError } from "../sdk/core/task-error.ts";
import { startNatsServer } from "../test/support/nats-server.ts";
import { compileBench } from "./compile.ts";
import { benchNatsServer } from "./deployment.ts";
import { writeSection } from "./doc-section.ts";
import { echoService } from "./gen/bench/v1/bench_taskwire.ts";
import { taskCounts } from "./options.ts";
import { peakRssBytes, startEchoWorker } from "./processes.ts";
import { markdownTable } from "./report.ts";
import { payloadText } from "./target.ts";

const batchSize = 100;
const maxBatchesInFlight = 20;
const delayMs = 3_600_000;

async function delayedRun(tasks: number): Promise<string[]> {
  const nats = await startNatsServer(benchNatsServer);
  const client = await createClient({ nats: nats.url, services: [echoService] });
  try {
    const echo = echoService.methods.echo;
    const tenth = Math.max(1, Math.floor(tasks / 10));
    const tenths: number[] = [];
    const started = performance.now();
    let tenthStarted = started;
    let submitted = 0;
    let accepted = 0;
    const lane = async () => {
      while (submitted < tasks) {
        const count = Math.min(batchSize, tasks - submitted);
        submitted += count;
        const requests = Array.from({ length: count }, () => ({
          request: { text: payloadText },
          options: { delayMs },
        }));
        for (const handle of await client.submitBatch(echo, requests)) {
          if (handle instanceof TaskError) throw handle;
          if (++accepted % tenth === 0) {
            const now = performance.now();
            tenths.push(tenth / ((now - tenthStarted) / 1000));
            tenthStarted = now;
          }
        }
      }
    };
    await Promise.all(Array.from({ length: maxBatchesInFlight }, lane));
    const perSecond = tasks / ((performance.now() - started) / 1000);

    const worker = await startEchoWorker(nats.url);
    try {
      const before = performance.now();
      await (await client.submitTask(echo, { text: payloadText })).result();
      const immediateMs = performance.now() - before;
      const queue = await client.queues.getQueue("bench");
      if (queue.scheduled !== BigInt(tasks)) throw new Error(`${queue.scheduled} scheduled, expected ${tasks}`);
      const mib = async (pid: number) => ((await peakRssBytes(pid)) / 2 ** 20).toFixed(0);
      const storeMiB = Number(execFileSync("du", ["-sm", nats.storeDir], { encoding: "utf8" }).split("\t")[0]);
      const min = Math.min(...tenths);
      const max = Math.max(...tenths);
      return [
        String(tasks),
        perSecond.toFixed(0),
        tenths.map((t) => t.toFixed(0)).join(" "),
        (min / max).toFixed(2),
        String(queue.scheduled),
        String(queue.queued),
        immediateMs.toFixed(1),
        await mib(process.pid),
        await mib(worker.pid),
        await mib(nats.pid),
        String(storeMiB),
      ];
    } finally {
      await worker.stop();
    }
  } finally {
    await client.close();
    await nats.stop();
  }
}

const counts = taskCounts([1_000_000]);
compileBench();
const rows: string[][] = [];
for (const tasks of counts) {
  console.error(`bench:delayed: ${tasks} tasks...`);
  const row = await delayedRun(tasks);
  console.log(row.join(" | "));
  rows.push(row);
}
await writeSection(
  "delayed",
  `## Delayed tasks waiting

Written by \`npm run bench:delayed\` on ${new Date().toISOString()} (${availableParallelism()} CPUs, Node ${process.version}). Tasks
delayed by an hour, submitted through \`client.submitBatch\` (${batchSize} per call, ${maxBatchesInFlight} calls in
flight); then a worker starts and one immediate task is timed from submit to result while
they all wait. Waiting tasks are in \`SCHED_<type>\` only: not queued, not pulled by workers.

${markdownTable(
  [
    "tasks",
    "submits/s",
    "submits/s in each tenth",
    "min/max",
    "scheduled",
    "queued",
    "immediate task ms",
    "producer MiB",
    "worker MiB",
    "nats-server MiB",
    "store MiB",
  ],
  rows,
  true,
)}`,
);
process.exit(0);

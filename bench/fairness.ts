/**
 * `npm run bench:fairness [-- 100000]`: one key floods the queue, a hundred keys
 * submit ten tasks each. Twice, on a fresh nats-server each: with fairness keys,
 * and as plain FIFO (the same tasks without keys). The runtime's own worker
 * process runs them (echo, 200 at once). The flood is submitted first (100 per
 * call, 20 calls in flight); then each quiet key's ten tasks. Prints the quiet
 * tasks' wait (from acceptance to the start of their attempt, from their
 * records), the time until the flood has all run, and its rate.
 */
import { availableParallelism } from "node:os";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { createClient } from "taskwire";
import { TaskError } from "../sdk/core/task-error.ts";
import { startNatsServer } from "../test/support/nats-server.ts";
import { fairQueueDepth } from "../worker-runtime/fair-dispatcher.ts";
import { compileBench } from "./compile.ts";
import { benchNatsServer } from "./deployment.ts";
import { writeSection } from "./doc-section.ts";
import { echoService } from "./gen/bench/v1/bench_taskwire.ts";
import { taskCounts } from "./options.ts";
import { startEchoWorker } from "./processes.ts";
import { markdownTable } from "./report.ts";
import { payloadText } from "./target.ts";

const quietKeys = 100;
const quietTasks = 10;
const batchSize = 100;
const batchesInFlight = 20;

async function fairnessRun(flood: number, fair: boolean): Promise<string[]> {
  const nats = await startNatsServer(benchNatsServer);
  const client = await createClient({ nats: nats.url, services: [echoService] });
  const worker = await startEchoWorker(nats.url);
  const echo = echoService.methods.echo;
  const submit = async (count: number, fairnessKey: string | undefined) => {
    const ids: string[] = [];
    let next = 0;
    const lane = async () => {
      while (next < count) {
        const size = Math.min(batchSize, count - next);
        next += size;
        const batch = Array.from({ length: size }, () => ({
          request: { text: payloadText },
          options: fair && fairnessKey ? { fairnessKey } : {},
        }));
        for (const handle of await client.submitBatch(echo, batch)) {
          if (handle instanceof TaskError) throw handle;
          ids.push(handle.id);
        }
      }
    };
    await Promise.all(Array.from({ length: batchesInFlight }, lane));
    return ids;
  };
  try {
    const started = performance.now();
    const floodIds = await submit(flood, "noisy");
    const quiet = await Promise.all(
      Array.from({ length: quietKeys }, (_, k) =>
        submit(quietTasks, `tenant-${k}`).then((ids) => ids.map((id) => client.task(id, echo.output))),
      ),
    );
    const handles = quiet.flat();
    await Promise.all(handles.map((handle) => handle.result()));
    const waits: number[] = [];
    for (const handle of handles) {
      const status = await handle.status();
      if (status.startedAt && status.createdAt)
        waits.push(timestampMs(status.startedAt) - timestampMs(status.createdAt));
    }
    await client.task(floodIds[floodIds.length - 1] as string, echo.output).result();
    await waitForEmptyQueue(client);
    const drainedS = (performance.now() - started) / 1000;
    waits.sort((a, b) => a - b);
    const at = (q: number) => (waits[Math.min(waits.length - 1, Math.floor(q * waits.length))] ?? 0).toFixed(0);
    return [
      fair ? "fairness keys" : "FIFO (no keys)",
      String(flood),
      `${quietKeys} × ${quietTasks}`,
      at(0.5),
      at(0.99),
      at(1 - 1e-9),
      drainedS.toFixed(1),
      ((flood + quietKeys * quietTasks) / drainedS).toFixed(0),
    ];
  } finally {
    await worker.stop();
    await client.close();
    await nats.stop();
  }
}

/** Resolves once the type has nothing queued, held or running. */
async function waitForEmptyQueue(client: Awaited<ReturnType<typeof createClient>>): Promise<void> {
  for (;;) {
    const queue = await client.queues.getQueue("bench");
    if (queue.queued === 0n && queue.running === 0n) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const floods = taskCounts([100_000]);
compileBench();
const rows: string[][] = [];
for (const flood of floods) {
  for (const fair of [false, true]) {
    console.error(`bench:fairness: ${fair ? "fair" : "fifo"}, a flood of ${flood}...`);
    const row = await fairnessRun(flood, fair);
    console.log(row.join(" | "));
    rows.push(row);
  }
}
await writeSection(
  "fairness",
  `## Fairness: one key's flood, a hundred quiet keys

Written by \`npm run bench:fairness\` on ${new Date().toISOString()} (${availableParallelism()} CPUs, Node ${process.version}). One
key submits the flood first (${batchSize} per call, ${batchesInFlight} calls in flight), then ${quietKeys} keys submit
${quietTasks} tasks each; the runtime's own worker process runs them (echo, 200 at once). "quiet
wait" is from a quiet task's acceptance to the start of its attempt, as its record says. With
fairness keys the type's dispatcher keeps at most ${fairQueueDepth} tasks in the queue and moves one
task per key per round; without keys the queue is FIFO. "drained" is from the first submit
until every task has run.

${markdownTable(
  ["queue", "flood", "quiet tasks", "quiet wait p50 ms", "p99 ms", "max ms", "drained s", "tasks/s"],
  rows,
  true,
)}`,
);
process.exit(0);

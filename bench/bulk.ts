/**
 * `npm run bench:bulk [-- 200000]`: the bulk producer, `client.submitMany`, fed
 * by a generator. A fresh nats-server and the runtime's own worker process per
 * size; the producer's resident memory is sampled at each tenth of the input,
 * to show it stays flat however long the input is.
 */
import { availableParallelism } from "node:os";
import { createClient } from "taskwire";
import { startNatsServer } from "../test/support/nats-server.ts";
import { compileBench } from "./compile.ts";
import { benchNatsServer } from "./deployment.ts";
import { writeSection } from "./doc-section.ts";
import { echoService } from "./gen/bench/v1/bench_taskwire.ts";
import { taskCounts } from "./options.ts";
import { peakRssBytes, startEchoWorker } from "./processes.ts";
import { markdownTable } from "./report.ts";
import { payloadText } from "./target.ts";

const maxInFlight = 1_000;
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);

async function bulkRun(tasks: number): Promise<string[]> {
  const nats = await startNatsServer(benchNatsServer);
  const worker = await startEchoWorker(nats.url);
  const client = await createClient({ nats: nats.url, services: [echoService] });
  try {
    const tenth = Math.max(1, Math.floor(tasks / 10));
    const rss: number[] = [];
    function* items() {
      for (let i = 0; i < tasks; i++) {
        if (i % tenth === 0) rss.push(process.memoryUsage().rss);
        yield { request: { text: payloadText } };
      }
    }
    const started = performance.now();
    const summary = await client.submitMany(echoService.methods.echo, items(), {
      maxInFlight,
      checkpoint: "bench-bulk",
    });
    const seconds = (performance.now() - started) / 1000;
    if (summary.acknowledged !== tasks) throw new Error(`${summary.acknowledged} of ${tasks} acknowledged`);
    return [
      String(tasks),
      (tasks / seconds).toFixed(0),
      rss.map(mib).join(" "),
      mib(await peakRssBytes(process.pid)),
      mib(await peakRssBytes(worker.pid)),
      mib(await peakRssBytes(nats.pid)),
    ];
  } finally {
    await client.close();
    await worker.stop();
    await nats.stop();
  }
}

const counts = taskCounts([200_000]);
compileBench();
const rows: string[][] = [];
for (const tasks of counts) {
  console.error(`bench:bulk: ${tasks} tasks...`);
  const row = await bulkRun(tasks);
  console.log(row.join(" | "));
  rows.push(row);
}
await writeSection(
  "bulk",
  `## Bulk producer

Written by \`npm run bench:bulk\` on ${new Date().toISOString()} (${availableParallelism()} CPUs, Node ${process.version}).
\`client.submitMany\` over a generator, at most ${maxInFlight} submits unacknowledged, with a
checkpoint; a worker process runs the tasks meanwhile. The producer's resident memory is
sampled at the start of each tenth of the input: flat means bounded.

${markdownTable(
  ["tasks", "submits/s", "producer RSS MiB at each tenth", "producer peak MiB", "worker MiB", "nats-server MiB"],
  rows,
  true,
)}`,
);
process.exit(0);

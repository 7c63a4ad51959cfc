/**
 * `npm run bench:scale [-- 100000 1000000]`: the bulk path at scale. For each
 * size, a fresh nats-server and the runtime's own worker process; this process
 * produces the tasks lazily through `client.submitBatch` (100 per call, at most
 * 20 calls and 5000 unfinished results outstanding) and observes every result,
 * after 10000 unmeasured tasks.
 * A last run of 200000 tasks bounds only the calls: every result is awaited from
 * its submit on, as a producer of a deep queue awaits them (most wait past the
 * client's 5 s notification grace). Prints the throughput of each tenth of the
 * run (flat or not) and each process's peak memory (bounded or not).
 */
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
const maxUnfinished = 5_000;
/** Batches run end to end, one at a time, before a run's clock starts. */
const warmupBatches = 100;
/** The run with every result awaited at once. */
const deepQueueTasks = 200_000;

interface ScaleResult {
  readonly tasks: number;
  readonly perSecond: number;
  /** Tasks per second of each tenth of the run, in order. */
  readonly tenths: number[];
  readonly peakMiB: { producer: number; worker: number; server: number };
}

async function scaleRun(tasks: number, unfinishedBound: number): Promise<ScaleResult> {
  const nats = await startNatsServer(benchNatsServer);
  const worker = await startEchoWorker(nats.url);
  const client = await createClient({ nats: nats.url, services: [echoService] });
  try {
    // Unmeasured: every connection and consumer is up, and the JIT has compiled the hot path.
    for (let i = 0; i < warmupBatches; i++) {
      const requests = Array.from({ length: batchSize }, () => ({ request: { text: payloadText } }));
      const handles = await client.submitBatch(echoService.methods.echo, requests);
      await Promise.all(
        handles.map((handle) => (handle instanceof TaskError ? Promise.reject(handle) : handle.result())),
      );
    }
    let submitted = 0;
    let finished = 0;
    let batches = 0;
    let wake: (() => void) | undefined;
    const progress = () => {
      const resume = wake;
      wake = undefined;
      resume?.();
    };
    const until = async (condition: () => boolean) => {
      while (!condition()) await new Promise<void>((resolve) => (wake = resolve));
    };
    const tenth = Math.max(1, Math.floor(tasks / 10));
    const tenths: number[] = [];
    const started = performance.now();
    let tenthStarted = started;
    const onFinished = () => {
      finished++;
      if (finished % tenth === 0) {
        const now = performance.now();
        tenths.push(tenth / ((now - tenthStarted) / 1000));
        tenthStarted = now;
      }
      progress();
    };
    let failure: unknown;
    while (submitted < tasks && failure === undefined) {
      await until(() => batches < maxBatchesInFlight && submitted - finished < unfinishedBound);
      const count = Math.min(batchSize, tasks - submitted);
      submitted += count;
      batches++;
      const requests = Array.from({ length: count }, () => ({ request: { text: payloadText } }));
      client.submitBatch(echoService.methods.echo, requests).then(
        (handles) => {
          batches--;
          for (const handle of handles) {
            if (handle instanceof TaskError) failure = handle;
            else
              handle.result().then(onFinished, (error: unknown) => {
                failure = error;
                progress();
              });
          }
          progress();
        },
        (error: unknown) => {
          failure = error;
          progress();
        },
      );
    }
    await until(() => finished === tasks || failure !== undefined);
    if (failure !== undefined) throw failure;
    const seconds = (performance.now() - started) / 1000;
    const mib = async (pid: number) => (await peakRssBytes(pid)) / 2 ** 20;
    return {
      tasks,
      perSecond: tasks / seconds,
      tenths,
      peakMiB: { producer: await mib(process.pid), worker: await mib(worker.pid), server: await mib(nats.pid) },
    };
  } finally {
    await client.close();
    await worker.stop();
    await nats.stop();
  }
}

const runs = [
  ...taskCounts([100_000, 1_000_000]).map((tasks) => ({ tasks, bound: maxUnfinished })),
  { tasks: deepQueueTasks, bound: Number.POSITIVE_INFINITY },
];
compileBench();
const rows: string[][] = [];
for (const { tasks, bound } of runs) {
  const outstanding = Number.isFinite(bound) ? String(bound) : "all";
  console.error(`bench:scale: ${tasks} tasks, ${outstanding} results outstanding at most...`);
  const r = await scaleRun(tasks, bound);
  const min = Math.min(...r.tenths);
  const max = Math.max(...r.tenths);
  const row = [
    String(r.tasks),
    outstanding,
    r.perSecond.toFixed(0),
    r.tenths.map((t) => t.toFixed(0)).join(" "),
    (min / max).toFixed(2),
    r.peakMiB.producer.toFixed(0),
    r.peakMiB.worker.toFixed(0),
    r.peakMiB.server.toFixed(0),
  ];
  console.log(row.join(" | "));
  rows.push(row);
}
await writeSection(
  "scale",
  `## Scaling

Written by \`npm run bench:scale\` on ${new Date().toISOString()} (${availableParallelism()} CPUs, Node ${process.version}). Taskwire
direct, tasks produced lazily through \`client.submitBatch\` (${batchSize} per call, at most
${maxBatchesInFlight} calls and, but in the last row, ${maxUnfinished} unfinished results outstanding), every result
observed, after ${warmupBatches * batchSize} unmeasured tasks. The last row awaits every result from its submit on, as a producer of a deep
queue does: most of its tasks wait longer than the client's 5 s notification grace, and
their records are also read, in batches. The per-tenth rates show whether throughput
stays flat; the peak memory of the producer whether it stays bounded.

${markdownTable(
  [
    "tasks",
    "results outstanding",
    "tasks/s",
    "tasks/s in each tenth of the run",
    "min/max",
    "producer MiB",
    "worker MiB",
    "nats-server MiB",
  ],
  rows,
  true,
)}`,
);
process.exit(0);

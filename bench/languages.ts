/**
 * `npm run bench:languages [-- 5000]`: one worker process of each language on
 * the same queue, alone, in rounds. For each language and round, a fresh
 * nats-server, the probe's types provisioned; one worker process (the
 * conformance suite's, 64 handlers at once). First 200 tasks one after another (submit to result),
 * then a backlog submitted as fast as it is accepted (100 per call, 20 calls
 * in flight) and run to the last result. Prints the medians of the rounds.
 */
import { availableParallelism } from "node:os";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { createClient, type TaskwireClient } from "../sdk/client/create-client.ts";
import { TaskError } from "../sdk/core/task-error.ts";
import { provisionWorkerType } from "../sdk/nats/provisioning.ts";
import { limitedProbeService, probeService } from "../test/gen/probe/v1/probe_taskwire.ts";
import { startNatsServer } from "../test/support/nats-server.ts";
import { go, python, startWorker, typescript, type WorkerImplementation } from "../test/worker-conformance/workers.ts";
import { benchNatsServer } from "./deployment.ts";
import { writeSection } from "./doc-section.ts";
import { taskCounts } from "./options.ts";
import { markdownTable } from "./report.ts";

const rounds = 3;
const sequential = 200;
const batchSize = 100;
const batchesInFlight = 20;
const run = probeService.methods.run;

interface Round {
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly perSecond: number;
}

async function measure(implementation: WorkerImplementation, backlog: number): Promise<Round> {
  const nats = await startNatsServer(benchNatsServer);
  const nc = await connect({ servers: nats.url });
  // Provisioned as a gateway would: workers in Python and Go provision nothing.
  const jsm = await jetstreamManager(nc);
  for (const service of [probeService, limitedProbeService]) await provisionWorkerType(jsm, service);
  await nc.close();
  const client = await createClient({ nats: nats.url, services: [probeService] });
  const worker = await startWorker(implementation, nats.url, "bench", client, { TASKWIRE_CONCURRENCY: "64" });
  try {
    const latencies: number[] = [];
    for (let i = 0; i < sequential; i++) {
      const started = performance.now();
      await (await client.submitTask(run, { label: `s${i}` })).result();
      latencies.push(performance.now() - started);
    }
    latencies.sort((a, b) => a - b);
    const started = performance.now();
    await drain(client, backlog);
    return {
      p50Ms: latencies[Math.floor(sequential / 2)] ?? 0,
      p99Ms: latencies[Math.floor(sequential * 0.99)] ?? 0,
      perSecond: backlog / ((performance.now() - started) / 1000),
    };
  } finally {
    await worker.stop();
    await client.close();
    await nats.stop();
  }
}

/** Submits `tasks` in batches and waits for every result. */
async function drain(client: TaskwireClient, tasks: number): Promise<void> {
  let submitted = 0;
  const results: Promise<unknown>[] = [];
  const lane = async () => {
    while (submitted < tasks) {
      const count = Math.min(batchSize, tasks - submitted);
      submitted += count;
      const requests = Array.from({ length: count }, (_, i) => ({ request: { label: `b${submitted + i}` } }));
      for (const handle of await client.submitBatch(run, requests)) {
        if (handle instanceof TaskError) throw handle;
        results.push(handle.result());
      }
    }
  };
  await Promise.all(Array.from({ length: batchesInFlight }, lane));
  await Promise.all(results);
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

const [backlog = 5_000] = taskCounts([5_000]);
const languages = [typescript, python, go];
const measured = new Map<string, Round[]>(languages.map((l) => [l.language, []]));
for (let round = 0; round < rounds; round++) {
  // Each round in another order: no language always runs first on a cold machine.
  for (const implementation of [...languages.slice(round), ...languages.slice(0, round)]) {
    console.error(`bench:languages: round ${round + 1}, ${implementation.language}...`);
    const result = await measure(implementation, backlog);
    console.error(`  p50 ${result.p50Ms.toFixed(1)} ms, ${result.perSecond.toFixed(0)} tasks/s`);
    measured.get(implementation.language)?.push(result);
  }
}
const rows = languages.map(({ language }) => {
  const results = measured.get(language) ?? [];
  return [
    language,
    median(results.map((r) => r.p50Ms)).toFixed(1),
    median(results.map((r) => r.p99Ms)).toFixed(1),
    median(results.map((r) => r.perSecond)).toFixed(0),
    results.map((r) => r.perSecond.toFixed(0)).join(" "),
  ];
});
console.log(rows.map((row) => row.join(" | ")).join("\n"));
await writeSection(
  "languages",
  `## Workers in TypeScript, Python and Go

Written by \`npm run bench:languages\` on ${new Date().toISOString()} (${availableParallelism()} CPUs, Node ${process.version}). For each
language, ${rounds} rounds, each on a fresh nats-server (one thread): one worker process, the conformance
suite's ([worker-conformance.md](worker-conformance.md)), serving the probe with 64 handlers at once;
the client is direct (over NATS). "one at a time" is ${sequential} tasks submitted one after another,
from submit to result; "backlog" is ${backlog} tasks submitted as fast as they are accepted (${batchSize} per
call, ${batchesInFlight} calls in flight) and run to the last result. Medians of the rounds; the last column is
each round's backlog rate. The TypeScript worker runs from its sources (Node's type stripping). The
raw JetStream limit and BullMQ on this machine are in the first table.

${markdownTable(["worker", "one at a time p50 ms", "p99 ms", "backlog tasks/s", "rounds tasks/s"], rows, true)}`,
);
process.exit(0);

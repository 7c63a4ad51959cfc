/**
 * `npm run bench:fanout [-- 100000]`: one parent task with many children. For
 * each size, a fresh nats-server; the runtime's own worker process runs the
 * children (echo, 200 at once); this process runs the parent's worker, whose
 * handler spawns every child (1,000 spawns in flight) and waits for them
 * (ctx.waitForChildren), holding no slot meanwhile. Prints the spawn rate, the
 * time from the parent's submit to its result, the children finished per
 * second, the parent's state in the broker (its record and its counters, whose
 * size does not grow with the children), and each process's peak memory.
 */
import { execFileSync } from "node:child_process";
import { availableParallelism } from "node:os";
import { toBinary } from "@bufbuild/protobuf";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { createClient } from "taskwire";
import { createWorker } from "taskwire/worker";
import { type TaskStatus, TaskStatusSchema } from "../gen/taskwire/v1/task_pb.ts";
import { topology } from "../sdk/core/names.ts";
import { taskIdToken } from "../sdk/core/task-id.ts";
import { startNatsServer } from "../test/support/nats-server.ts";
import { compileBench } from "./compile.ts";
import { benchNatsServer } from "./deployment.ts";
import { writeSection } from "./doc-section.ts";
import { echoService } from "./gen/bench/v1/bench_taskwire.ts";
import { fanOutService, implementFanOutService } from "./gen/bench/v1/fanout_taskwire.ts";
import { taskCounts } from "./options.ts";
import { peakRssBytes, startEchoWorker } from "./processes.ts";
import { markdownTable } from "./report.ts";
import { payloadText } from "./target.ts";

const spawnsInFlight = 1_000;

async function fanOutRun(children: number): Promise<string[]> {
  const nats = await startNatsServer(benchNatsServer);
  const client = await createClient({ nats: nats.url, services: [fanOutService, echoService] });
  const childWorker = await startEchoWorker(nats.url);
  const runs = new Map<string, number>();
  /** The first run's spawn time per parent: it submits every child. */
  const firstSpawnMs = new Map<string, number>();
  const parentWorker = await createWorker({
    nats: nats.url,
    services: [
      implementFanOutService({
        async fanOut({ children: count, text }, ctx) {
          runs.set(ctx.taskId, (runs.get(ctx.taskId) ?? 0) + 1);
          const started = performance.now();
          let next = 0;
          const lane = async () => {
            while (next < count) {
              next++;
              await ctx.spawn(echoService.methods.echo, { text });
            }
          };
          await Promise.all(Array.from({ length: spawnsInFlight }, lane));
          const spawnMs = performance.now() - started;
          if (!firstSpawnMs.has(ctx.taskId)) firstSpawnMs.set(ctx.taskId, spawnMs);
          const counts = await ctx.waitForChildren();
          return {
            spawned: BigInt(counts.spawned),
            ended: BigInt(counts.ended),
            failed: BigInt(counts.failed),
            spawnMs,
            runs: runs.get(ctx.taskId) ?? 0,
          };
        },
      }),
    ],
  });
  try {
    const before = performance.now();
    const parent = await client.submitTask(fanOutService.methods.fanOut, { children, text: payloadText });
    // spawnMs is the last run's: a run after the wait replays its spawns without I/O, so it is the first run's
    // only when the children were all done before it waited; the first run's is taken from the runs instead.
    const result = await parent.result();
    const totalMs = performance.now() - before;
    if (result.ended !== BigInt(children) || result.failed !== 0n)
      throw new Error(`${result.ended} of ${children} children ended, ${result.failed} failed`);
    const record = await client.getTask(parent.id);
    const type = "fanout";
    const token = taskIdToken(parent.id);
    const counters = await Promise.all(
      (["ended", "failed"] as const).map((c) =>
        directBytes(nats.url, topology.childrenStream(type), topology.childrenCounter(type, token, c)),
      ),
    );
    const mib = async (pid: number) => ((await peakRssBytes(pid)) / 2 ** 20).toFixed(0);
    const storeMiB = Number(execFileSync("du", ["-sm", nats.storeDir], { encoding: "utf8" }).split("\t")[0]);
    return [
      String(children),
      (children / ((firstSpawnMs.get(parent.id) ?? result.spawnMs) / 1000)).toFixed(0),
      (totalMs / 1000).toFixed(1),
      (children / (totalMs / 1000)).toFixed(0),
      String(result.runs),
      String(recordBytes(record)),
      counters.map(String).join(" + "),
      await mib(process.pid),
      await mib(childWorker.pid),
      await mib(nats.pid),
      String(storeMiB),
    ];
  } finally {
    await parentWorker.close();
    await childWorker.stop();
    await client.close();
    await nats.stop();
  }
}

/** Bytes of a status record as stored. */
function recordBytes(record: TaskStatus): number {
  return toBinary(TaskStatusSchema, record).length;
}

/** Bytes of the last message on a subject (a counter's), 0 when none. */
async function directBytes(url: string, stream: string, subject: string): Promise<number> {
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const message = await jsm.streams.getMessage(stream, { last_by_subj: subject }).catch(() => null);
    return message?.data.length ?? 0;
  } finally {
    await nc.close();
  }
}

const sizes = taskCounts([100_000]);
compileBench();
const rows: string[][] = [];
for (const children of sizes) {
  console.error(`bench:fanout: one parent, ${children} children...`);
  const row = await fanOutRun(children);
  console.log(row.join(" | "));
  rows.push(row);
}
await writeSection(
  "fan-out",
  `## Fan-out and fan-in: one parent, many children

Written by \`npm run bench:fanout\` on ${new Date().toISOString()} (${availableParallelism()} CPUs, Node ${process.version}). One
parent task spawns every child (echo tasks of ${payloadText.length} bytes, ${spawnsInFlight} spawns in flight) with
\`ctx.spawn\`, then waits with \`ctx.waitForChildren\` without holding its worker slot; the
runtime's own worker process runs the children, 200 at once. "parent state" is what the
broker holds for the parent besides its children: its status record and its two counters,
in bytes; it does not grow with the children.

${markdownTable(
  [
    "children",
    "spawns/s",
    "submit to result s",
    "children/s",
    "parent runs",
    "parent record B",
    "counters B",
    "parent worker MiB",
    "child worker MiB",
    "nats-server MiB",
    "store MiB",
  ],
  rows,
  true,
)}`,
);
process.exit(0);

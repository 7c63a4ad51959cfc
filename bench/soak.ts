/**
 * `npm run bench:soak [-- --minutes 12 --rate 400 --retention 2m --warmup 3]`:
 * a steady load through the gateway for a while, as a production day would
 * put on it, to show what stays flat and what does not.
 *
 * One nats-server (file storage), one gateway process and one worker process
 * (the compiled programs of every benchmark, echo tasks). The client, this
 * process, submits `rate` tasks a second through the gateway, open loop, and
 * waits for each result: the end-to-end latency. Beside it, as a dashboard
 * would: a WatchTask every 2 s, and a GetTask or a ListTasks page (alternately)
 * every second. Statuses are kept `retention` (the deployment's), so the store
 * reaches its steady size within the run.
 *
 * Every 30 s it samples each process's resident memory (a Node process's after
 * a full collection, see memory-probe.ts) and the store; each minute it reports
 * throughput, p50 and p99, errors and memory. After the
 * warm-up minutes, each process's memory slope is fitted (least squares). The
 * targets: p50 and p99 of the last minute within 20% of the third's; no
 * process's memory growing faster than 1 MiB a minute after the warm-up.
 * Written to docs/benchmarks.md.
 */
import { readFile } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { createClient, TaskError } from "taskwire";
import { compileBench, compiled } from "./compile.ts";
import { cpuMicros } from "./cpu-time.ts";
import { Deployment } from "./deployment.ts";
import { writeSection } from "./doc-section.ts";
import { createEchoServiceClient } from "./gen/bench/v1/bench_taskwire.ts";
import { type BenchChild, echoWorker } from "./processes.ts";
import { markdownTable } from "./report.ts";
import { payloadText } from "./target.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    minutes: { type: "string", default: "12" },
    rate: { type: "string", default: "400" },
    retention: { type: "string", default: "2m" },
    warmup: { type: "string", default: "3" },
  },
});
const positive = (name: string, value: string | undefined) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${value}`);
  return n;
};
const minutes = positive("minutes", values.minutes);
const rate = positive("rate", values.rate);
const warmupMinutes = positive("warmup", values.warmup);
const retentionMatch = /^(\d+)([smh])$/.exec(values.retention ?? "");
if (!retentionMatch) throw new Error(`--retention must be a duration such as 90s, 2m or 1h, got ${values.retention}`);
const retentionMs = Number(retentionMatch[1]) * { s: 1_000, m: 60_000, h: 3_600_000 }[retentionMatch[2] as "s"];
if (minutes <= warmupMinutes) throw new Error(`--minutes (${minutes}) must be more than --warmup (${warmupMinutes})`);

/** V8's cap on a semi-space with a 4 GiB heap limit, MiB: a young generation of 128 MiB. */
const semiSpaceMiB = 64;
const minuteMs = 60_000;
const sampleMs = 30_000;
const mib = (bytes: number) => bytes / 1024 / 1024;

/** What one minute saw: tasks finished (by when they were submitted), their latencies, errors, and the dashboard's calls. */
interface Minute {
  readonly latencies: number[];
  readonly listMs: number[];
  errors: number;
  submitted: number;
}
const perMinute: Minute[] = Array.from({ length: minutes }, () => ({
  latencies: [],
  listMs: [],
  errors: 0,
  submitted: 0,
}));
const firstError: string[] = [];

/** A memory and store sample. */
interface Sample {
  readonly atMin: number;
  readonly rss: Record<"gateway" | "worker" | "server", number>;
  /** The Node processes' JS heap in use after the collection. */
  readonly heap: Record<"gateway" | "worker", number>;
  /** The Node processes' young generation, reserved. */
  readonly young: Record<"gateway" | "worker", number>;
  /** CPU time each process has used so far, µs. */
  readonly cpu: Record<"gateway" | "worker" | "server", number>;
  readonly statuses: number;
  readonly storeBytes: number;
}
const samples: Sample[] = [];

compileBench();
const deployment = new Deployment("soak", undefined, {
  TASKWIRE_RETENTION: JSON.stringify({ statusTtlMs: retentionMs, deadLetterTtlMs: retentionMs }),
});
try {
  const nats = await deployment.nats();
  // Each Node process answers the parent's memory samples after a full collection.
  // Its young generation starts at its cap, where V8 grows it by doublings
  // anyway (16, 32, 64 and 128 MiB reserved under this load): a step of 64 MiB
  // in resident memory when it doubles last, minutes in, that is not a leak.
  const execArgv = [
    "--expose-gc",
    `--min-semi-space-size=${semiSpaceMiB}`,
    `--max-semi-space-size=${semiSpaceMiB}`,
    `--import=${pathToFileURL(compiled("bench/systems/memory-probe.ts")).href}`,
  ];
  const gateway = await deployment.child("gateway", "bench/systems/gateway-process.ts", {
    args: [nats.url],
    execArgv,
  });
  const worker = await deployment.child("worker", echoWorker.script, { env: echoWorker.env(nats.url), execArgv });
  const pids = deployment.pids();
  const nc = await connect({ servers: nats.url });
  const jsm = await jetstreamManager(nc);
  const client = await createClient({ gateway: String(gateway.ready.url) });
  const echo = createEchoServiceClient(client);

  const started = performance.now();
  const minuteOf = (at: number) => perMinute[Math.min(minutes - 1, Math.floor((at - started) / minuteMs))] as Minute;
  const failed = (at: number, error: unknown) => {
    minuteOf(at).errors++;
    if (firstError.length < 5) firstError.push(error instanceof Error ? error.message : String(error));
  };
  const recent: string[] = [];
  const inFlight = new Set<Promise<void>>();

  const runTask = async () => {
    const at = performance.now();
    minuteOf(at).submitted++;
    try {
      const handle = await echo.echo({ text: payloadText });
      if (recent.length < 1_000) recent.push(handle.id);
      else recent[Math.floor(Math.random() * recent.length)] = handle.id;
      await handle.result();
      minuteOf(at).latencies.push(performance.now() - at);
    } catch (error) {
      failed(at, error);
    }
  };
  const watch = async () => {
    const at = performance.now();
    try {
      const handle = await echo.echo({ text: payloadText });
      for await (const _ of client.watchTask(handle.id));
    } catch (error) {
      failed(at, error);
    }
  };
  let dashboardTurn = 0;
  const dashboard = async () => {
    const at = performance.now();
    try {
      if (dashboardTurn++ % 2 === 0 && recent.length > 0) {
        await client.getTask(recent[Math.floor(Math.random() * recent.length)] as string);
      } else {
        await client.listTasks({ workerType: "bench", pageSize: 100 });
        minuteOf(at).listMs.push(performance.now() - at);
      }
    } catch (error) {
      // A status expired between the pick and the read is not an error of the system.
      if (!(error instanceof TaskError && error.code === 5)) failed(at, error);
    }
  };
  const track = (work: Promise<void>) => {
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
  };
  const rss = async (pid: number | undefined) => {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? Number.NaN) * 1024;
  };
  /** A Node child's resident memory after a full collection (memory-probe.ts). */
  const collected = async (child: BenchChild) => {
    child.send({ type: "memory" });
    for (;;) {
      const message = (await child.message()) as { type?: string; rss?: number; heapUsed?: number; young?: number };
      if (message.type === "memory") {
        return {
          rss: message.rss ?? Number.NaN,
          heap: message.heapUsed ?? Number.NaN,
          young: message.young ?? Number.NaN,
        };
      }
    }
  };
  const sample = async () => {
    const info = await jsm.streams.info("KV_taskwire_status");
    const index = await jsm.streams.info("INDEX_bench");
    const [g, w] = [await collected(gateway), await collected(worker)];
    samples.push({
      atMin: (performance.now() - started) / minuteMs,
      rss: { gateway: g.rss, worker: w.rss, server: await rss(pids.server?.[0]) },
      heap: { gateway: g.heap, worker: w.heap },
      young: { gateway: g.young, worker: w.young },
      cpu: {
        gateway: await cpuMicros(gateway.pid),
        worker: await cpuMicros(worker.pid),
        server: await cpuMicros(pids.server?.[0] ?? 0),
      },
      statuses: info.state.messages,
      storeBytes: info.state.bytes + index.state.bytes,
    });
  };

  // Open loop: each tick launches the tasks the rate owes since the start.
  const endAt = started + minutes * minuteMs;
  let launched = 0;
  let nextWatch = started;
  let nextDashboard = started;
  let nextSample = started;
  let lastReported = -1;
  while (performance.now() < endAt) {
    const now = performance.now();
    const owed = Math.floor(((now - started) / 1000) * rate) - launched;
    for (let i = 0; i < owed; i++) track(runTask());
    launched += Math.max(0, owed);
    if (now >= nextWatch) {
      track(watch());
      nextWatch += 2_000;
    }
    if (now >= nextDashboard) {
      track(dashboard());
      nextDashboard += 1_000;
    }
    if (now >= nextSample) {
      await sample();
      nextSample += sampleMs;
    }
    const minute = Math.floor((now - started) / minuteMs) - 1;
    if (minute > lastReported) {
      lastReported = minute;
      console.error(`bench:soak: ${row(minute).join(" | ")}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await sample();
  await Promise.all(inFlight);
  console.error(`bench:soak: ${row(minutes - 1).join(" | ")}`);
  await client.close();
  await nc.close();
} finally {
  await deployment.stop();
}

function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

/** The last sample taken within minute `m`. */
function sampleOf(m: number): Sample | undefined {
  return samples.filter((s) => s.atMin < m + 1).at(-1);
}

function row(m: number): string[] {
  const minute = perMinute[m] as Minute;
  const s = sampleOf(m);
  return [
    String(m + 1),
    (minute.latencies.length / 60).toFixed(0),
    percentile(minute.latencies, 50).toFixed(1),
    percentile(minute.latencies, 99).toFixed(1),
    String(minute.errors),
    percentile(minute.listMs, 50).toFixed(1),
    s ? node(s, "gateway") : "",
    s ? node(s, "worker") : "",
    s ? mib(s.rss.server).toFixed(0) : "",
    cpuPerTask(m),
    s ? String(s.statuses) : "",
    s ? mib(s.storeBytes).toFixed(1) : "",
  ];
}

/** A Node process's resident MiB, with its heap in use and young generation reserved. */
function node(s: Sample, role: "gateway" | "worker"): string {
  return `${mib(s.rss[role]).toFixed(0)} (${mib(s.heap[role]).toFixed(0)} / ${mib(s.young[role]).toFixed(0)})`;
}

/** The store's bytes per task kept (status record and index entries), at the last sample. */
function storeLine(): string {
  const last = samples.at(-1);
  if (!last || last.statuses === 0) return "store: no statuses sampled";
  const perTask = last.storeBytes / last.statuses;
  return `store: ${last.statuses} statuses kept, ${perTask.toFixed(0)} bytes per task with its index entries: ${mib(perTask * 1e6).toFixed(0)} MiB per million tasks`;
}

/** CPU µs per finished task of the gateway, worker and nats-server within minute `m`, from the samples around it. */
function cpuPerTask(m: number): string {
  const [from, to] = [m === 0 ? samples[0] : sampleOf(m - 1), sampleOf(m)];
  const tasks = perMinute[m]?.latencies.length ?? 0;
  if (!from || !to || to === from || tasks === 0) return "";
  const share = (to.atMin - from.atMin) * tasks;
  return (["gateway", "worker", "server"] as const)
    .map((role) => ((to.cpu[role] - from.cpu[role]) / share).toFixed(0))
    .join(" / ");
}

/** MiB per minute, least squares over the samples after the warm-up. */
function slope(role: keyof Sample["rss"]): number {
  const points = samples.filter((s) => s.atMin >= warmupMinutes).map((s) => [s.atMin, mib(s.rss[role])] as const);
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxy = points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0);
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return sxy / sxx;
}

const rows = perMinute.map((_, m) => row(m));
const third = perMinute[2] as Minute;
const last = perMinute[minutes - 1] as Minute;
const within = (lastValue: number, thirdValue: number) => lastValue <= thirdValue * 1.2;
const [p50Third, p50Last] = [percentile(third.latencies, 50), percentile(last.latencies, 50)];
const [p99Third, p99Last] = [percentile(third.latencies, 99), percentile(last.latencies, 99)];
const slopes = { gateway: slope("gateway"), worker: slope("worker"), server: slope("server") };
const errors = perMinute.reduce((a, m) => a + m.errors, 0);
const verdicts = [
  `p50 of the last minute ${p50Last.toFixed(1)} ms against the third's ${p50Third.toFixed(1)} ms: ${within(p50Last, p50Third) ? "within 20%" : "MISSED"}`,
  `p99 of the last minute ${p99Last.toFixed(1)} ms against the third's ${p99Third.toFixed(1)} ms: ${within(p99Last, p99Third) ? "within 20%" : "MISSED"}`,
  ...Object.entries(slopes).map(
    ([role, value]) =>
      `${role === "server" ? "nats-server" : role} memory after minute ${warmupMinutes}: ${value >= 0 ? "+" : ""}${value.toFixed(2)} MiB/min: ${Math.abs(value) <= 1 ? "under 1 MiB/min" : "MISSED"}`,
  ),
  `errors: ${errors}${firstError.length > 0 ? ` (first: ${firstError.join("; ")})` : ""}`,
  storeLine(),
];
for (const line of verdicts) console.log(line);

await writeSection(
  "soak",
  `## Soak

Written by \`npm run bench:soak\` on ${new Date().toISOString()} (${availableParallelism()} CPUs, Node ${process.version}):
${minutes} minutes of ${rate} echo tasks a second through one gateway to one worker, each waited for
(latency is submit to result), with a WatchTask every 2 s and a GetTask or a 100-task ListTasks page
every second; statuses and dead letters kept ${values.retention}. Memory is each process's resident
size at the minute's last 30 s sample, a Node process's after a full collection (taken then, for
the sample), with its JS heap in use and its young generation's reserve (started at V8's cap of
${2 * semiSpaceMiB} MiB, to which V8 would grow it by doublings minutes into the run); CPU is each process's per task finished in the minute; the
store is the status bucket and the task index.

${markdownTable(
  [
    "minute",
    "tasks/s",
    "p50 ms",
    "p99 ms",
    "errors",
    "list p50 ms",
    "gateway MiB (heap / young)",
    "worker MiB (heap / young)",
    "nats-server MiB",
    "CPU µs/task gw / wk / srv",
    "statuses",
    "store MiB",
  ],
  rows,
  true,
)}

${verdicts.map((line) => `- ${line}`).join("\n")}`,
);
process.exit(0);

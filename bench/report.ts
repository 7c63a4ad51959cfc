import type { Role } from "./deployment.ts";
import type { RunOutcome } from "./execute-run.ts";
import type { Machine } from "./machine.ts";
import type { ClientResult } from "./measure.ts";
import type { BenchOptions } from "./options.ts";
import { type Run, type RunId, runs } from "./runs.ts";
import { rawTopology } from "./systems/raw-jetstream.ts";

const roles: readonly Role[] = ["client", "worker", "gateway", "server"];

/** The results as one Markdown table (readable as plain text too). */
export function resultTable(outcomes: readonly RunOutcome[]): string {
  const header = [
    "system",
    "tasks/s end to end",
    "submits/s",
    "p50 ms",
    "p99 ms",
    "p999 ms",
    ...roles.map((role) => `${role} µs`),
    ...roles.map((role) => `${role} MB`),
  ];
  const rows = outcomes.map((o) => {
    if ("error" in o) return [o.run.label, `failed: ${o.error.split("\n")[0]}`, ...header.slice(2).map(() => "")];
    const { endToEndPerSec, submitPerSec, latency, cpuPerTask } = o.result;
    const ms = (value: number | undefined) => (value === undefined ? "–" : value.toFixed(1));
    return [
      o.run.label,
      endToEndPerSec.toFixed(0),
      submitPerSec.toFixed(0),
      ms(latency?.p50),
      ms(latency?.p99),
      ms(latency?.p999),
      ...roles.map((role) => {
        const micros = cpuPerTask[role];
        return micros === undefined ? "–" : micros.toFixed(0);
      }),
      ...roles.map((role) => {
        const bytes = o.peakRss[role];
        return bytes === undefined ? "–" : (bytes / 2 ** 20).toFixed(0);
      }),
    ];
  });
  return markdownTable(header, rows, true);
}

/** A Markdown table padded as Biome formats it; numbers (every column but the first) right-aligned. */
export function markdownTable(header: string[], rows: string[][], numeric: boolean): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const right = (i: number) => numeric && i > 0;
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (right(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join(" | ")} |`;
  const rule = `| ${widths.map((w, i) => (right(i) ? `${"-".repeat(w - 1)}:` : "-".repeat(w))).join(" | ")} |`;
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/** Each system's median run by end-to-end throughput, in the runs' order; a failure wins. */
export function medianOutcomes(selected: readonly Run[], rounds: readonly RunOutcome[][]): RunOutcome[] {
  return selected.map((run) => {
    const mine = rounds.flatMap((outcomes) => outcomes.filter((o) => o.run.id === run.id));
    const failed = mine.find((o) => "error" in o);
    if (failed) return failed;
    const sorted = mine.sort((a, b) => throughput(a) - throughput(b));
    return sorted[Math.floor((sorted.length - 1) / 2)] as RunOutcome;
  });
}

const throughput = (o: RunOutcome) => ("result" in o ? o.result.endToEndPerSec : 0);

/** The systems the ratios compare: each runs twice a round, in mirrored order (see main.ts). */
export const ratioSystems: readonly RunId[] = ["raw", "raw-stored", "raw-protocol", "direct", "bullmq"];

/**
 * The line that matters: Taskwire direct against BullMQ and against the raw JetStream
 * limit. Each ratio is taken within a round, then the median over rounds is shown, with
 * the range when there are several.
 */
export function ratioLine(rounds: readonly RunOutcome[][]): string {
  const ratio = (pick: (outcomes: readonly RunOutcome[]) => number | undefined) => {
    const values = rounds
      .map(pick)
      .filter((v): v is number => v !== undefined && Number.isFinite(v))
      .sort((a, b) => a - b);
    if (values.length === 0) return "n/a";
    const median = values[Math.floor((values.length - 1) / 2)] as number;
    const range =
      values.length > 1 ? ` (${(values[0] as number).toFixed(2)}–${(values.at(-1) as number).toFixed(2)})` : "";
    return `${median.toFixed(2)}x${range}`;
  };
  // A system's value in a round: the mean of its runs there (two for the paired systems).
  const mean = (outcomes: readonly RunOutcome[], id: RunId, value: (r: ClientResult) => number | undefined) => {
    const values = outcomes.filter((o) => o.run.id === id).map((o) => ("result" in o ? value(o.result) : undefined));
    if (values.length === 0 || values.some((v) => v === undefined)) return undefined;
    return (values as number[]).reduce((sum, v) => sum + v, 0) / values.length;
  };
  const of = (a: RunId, b: RunId, value: (r: ClientResult) => number | undefined) =>
    ratio((outcomes) => {
      const x = mean(outcomes, a, value);
      const y = mean(outcomes, b, value);
      return x === undefined || y === undefined ? undefined : x / y;
    });
  const rate = (r: ClientResult) => r.endToEndPerSec;
  const p50 = (r: ClientResult) => r.latency?.p50;
  const over = rounds.length > 1 ? ` (medians over ${rounds.length} rounds, range in brackets)` : "";
  return [
    `ratios${over}: Taskwire direct / BullMQ throughput ${of("direct", "bullmq", rate)}`,
    `Taskwire direct / raw JetStream throughput ${of("direct", "raw", rate)}`,
    `BullMQ p50 / Taskwire direct p50 latency ${of("bullmq", "direct", p50)}`,
    `Taskwire direct / raw JetStream with stored results throughput ${of("direct", "raw-stored", rate)}`,
    // The ceiling of the second ratio for any implementation of Taskwire's protocol on this client library.
    `Taskwire's messages without the SDK / raw JetStream throughput ${of("raw-protocol", "raw", rate)}`,
    `Taskwire direct / Taskwire's messages without the SDK throughput ${of("direct", "raw-protocol", rate)}`,
    // The ceiling of the latency ratio: a queue on JetStream is no faster than its raw limit.
    `BullMQ p50 / raw JetStream p50 latency ${of("bullmq", "raw", p50)}`,
  ].join(", ");
}

/** Drift of the raw limit beyond which a run's ratios are flagged as unreliable. */
const driftWarning = 0.15;

/**
 * How far the machine's speed drifted during the run, as the spread of the raw
 * JetStream limit's runs; empty with fewer than two. The
 * ratios are taken within rounds, but the systems of a round run minutes apart:
 * a machine that slows down meanwhile favours whichever ran first.
 */
export function driftLine(rounds: readonly RunOutcome[][]): string {
  const raw = rounds
    .flatMap((outcomes) => outcomes.filter((o) => o.run.id === "raw"))
    .flatMap((o) => ("result" in o ? [o.result.endToEndPerSec] : []));
  if (raw.length < 2) return "";
  const low = Math.min(...raw);
  const high = Math.max(...raw);
  const drift = (high - low) / high;
  const verdict =
    drift > driftWarning
      ? `: the machine's speed drifted during the run, and its ratios are less reliable than usual (run it again)`
      : "";
  return `the raw JetStream limit ranged from ${low.toFixed(0)} to ${high.toFixed(0)} tasks/s during the run (${(drift * 100).toFixed(0)}% apart)${verdict}`;
}

/** docs/benchmarks.md. */
export function benchmarksDoc(
  outcomes: readonly RunOutcome[],
  rounds: readonly RunOutcome[][],
  machine: Machine,
  options: BenchOptions,
  command: string,
): string {
  return `# Benchmarks

Written by \`${command}\` (${options.mode} mode) on ${machine.date}; every figure below
comes from that one run, of ${options.rounds} round${options.rounds > 1 ? "s" : ""}. Each round deploys and measures the
five systems the ratios compare (the three raw JetStream rows, Taskwire direct, BullMQ) twice, in
mirrored order around the others (A B C ... C B A), so that a steady slowdown during the
round weighs on each alike, and every other system once, in an order rotated from round
to round. The table shows each system's median run. Each ratio is taken within a round,
from the mean of each system's two runs there, and the median over the rounds is shown
with its range. The last ratio, BullMQ's p50 over the raw JetStream limit's, is the most
that the third could be for any queue on JetStream: the raw limit stores each message once
and stores no result. The fifth, Taskwire's messages without the SDK over the raw limit,
is likewise the most that the second could be for any implementation of Taskwire's protocol
on this client library. This machine's speed drifts from minute
to minute (a shared virtual machine): single runs differ by up to a third. The line after
the ratios gives the spread of the raw limit's runs, and flags a run in which it
exceeds ${driftWarning * 100}%.

## Reproduce

\`\`\`sh
npm ci
npm run bench             # the full run; installs redis-server (Debian package) if missing
npm run bench -- --quick  # a short run, under a minute
\`\`\`

\`npm run bench -- --cpu-prof-dir DIR\` also writes a V8 CPU profile of every child process;
\`--rounds N\` sets the rounds (3; 1 with \`--quick\`);
\`--only raw,bullmq\` runs only some rows (${runs.map((r) => r.id).join(", ")}) and leaves this page alone.

## Machine

${markdownTable(
  ["what", "value"],
  [
    ["CPUs", `${machine.cpus} × ${machine.cpuModel}`],
    ["memory", `${machine.memoryGiB.toFixed(1)} GiB`],
    ["kernel", machine.kernel],
    ["Node.js", machine.node],
    ["nats-server", `${machine.natsServer} (JetStream file storage, default sync; GOMAXPROCS=1)`],
    ["redis-server", `${machine.redis} (no RDB, no AOF)`],
  ],
  false,
)}

## Results

![End-to-end throughput of each system, side by side](benchmarks.svg)

${resultTable(outcomes)}

${[ratioLine(rounds), driftLine(rounds)].filter((line) => line).join("\n\n")}

## What is measured

Every row deploys its system afresh (a new nats-server or redis-server on a random
loopback port with an empty store, a new worker process, a new gateway process where
there is one) and measures it from a client process of its own. Every task carries the
same 128-byte payload; every handler returns it. The client, worker and gateway processes
run the JavaScript tsc compiles (\`tsconfig.bench.json\`, into \`.bench-build/\`) with plain
\`node\`, as a deployment runs them.

- **tasks/s end to end**: tasks submitted for ${options.throughputMs / 1000} s, after ${options.warmupMs / 1000} s of unmeasured
  warm-up tasks (so that the JIT has compiled each process's hot path), as fast as
  ${options.inFlight} unacknowledged tasks in flight allow (${options.batchSize} per call in the submitBatch rows
  and with BullMQ's addBulk); the client observes each result once its submit is
  acknowledged, ${options.observers} at a time. Tasks divided by the time from the first submit to
  the last result observed.
- **submits/s**: the same tasks divided by the time from the first submit to the last
  acknowledgement (PubAck, Submit or BatchSubmit response, addBulk reply).
- **p50/p99/p999 ms**: one task every ${1000 / options.latencyRate} ms (${options.latencyRate}/s, open loop)
  for ${options.latencyMs / 1000} s; each task's time from its scheduled submit (or from the
  call, when the timer fired early) to its result observed by the client. Not measured in
  the submitBatch rows.
- **µs**: CPU time (user and system) per task of the throughput phase, of each process
  of the row: the client's from \`process.cpuUsage()\`, the others' from \`/proc/<pid>/stat\`
  (10 ms ticks, over seconds of work). On ${machine.cpus} cores, the sum bounds the
  throughput: about ${machine.cpus} × 10⁶ / (sum) tasks/s.
- **MB**: peak resident memory (VmHWM) of each process of the row: client, worker,
  gateway, and the nats-server or redis-server.

The systems:

- **raw JetStream**: the limit without task semantics. A work-queue stream on file
  storage; the client publishes with the PubAck awaited (through Taskwire's request
  pipeline, cheaper than \`js.publish\`, so the limit is a real one); the consumer process (a durable
  pull consumer, ${rawTopology.prefetch} messages prefetched) acks each message, then announces its sequence
  on a core NATS subject, which the client takes as the result.
- **raw JetStream, result stored**: the same, but the consumer first publishes each
  message's payload to a second file-storage stream (one subject per message, one message
  per subject, as a status bucket keeps one record per task) and awaits its PubAck, at
  most ${rawTopology.prefetch} at once, before the ack: the least JetStream work a task queue that
  stores every result durably before the ack can do (two stored messages per task), with no
  task semantics in the client or the consumer.
- **raw JetStream, Taskwire's messages**: the protocol floor. The bench worker type's
  streams, consumers and status bucket provisioned as Taskwire provisions them, and for
  each task the messages Taskwire sends, of the same sizes (a WorkItem made by the SDK's
  \`prepareTask\`, its terminal TaskStatus and TaskResult, each encoded once at start-up), with none of the SDK's work
  per task: the client publishes the WorkItem on the task's own subject with the PubAck
  awaited; the consumer process (nats.js \`consume()\`, ${rawTopology.prefetch} prefetched) stores the
  status record as a first write (\`Nats-Expected-Last-Subject-Sequence: 0\`) with the
  PubAck awaited, publishes the TaskResult event, and acks; the client observes the
  record the server republishes on its route, as \`result()\` does. Its ratio to the raw
  limit is the most that Taskwire direct's could be with this protocol and this client
  library; Taskwire direct's ratio to it is what the SDK's work per task costs.
- **Taskwire direct**: \`createClient({ nats, services })\`; one task per call through the
  generated \`EchoService\` client (\`bench/proto/bench/v1/bench.proto\`), or
  \`client.submitBatch\`; \`handle.result()\` per task. The worker process is the
  runtime's own (\`worker-runtime/worker-process.ts\`, 200 handlers): the result is stored
  in the status bucket before the ack. The task has a deadline and a retry policy; every
  task has a fresh id (no \`Nats-Msg-Id\`); the "idempotency keys" row gives each task
  a key, which costs a status lookup per submit.
- **Taskwire gateway**: the same worker, and a gateway process (\`createGateway\`); the
  client is \`createClient({ gateway, protocol })\` (binary Connect or gRPC, every call
  written on Node's HTTP/2 streams, one session): the typed client sends Submit, \`client.submitBatch\` BatchSubmit, and \`handle.result()\`
  waits: the waits begun in one event-loop turn share one WaitTasks stream, and a wait
  alone in its turn is one WaitTask call.
- **BullMQ**: a redis-server without persistence; \`Queue.addBulk\`, a \`Worker\` with
  concurrency 200 in its own process, \`job.waitUntilFinished(queueEvents)\` per job;
  completed jobs and their return values are kept.
`;
}

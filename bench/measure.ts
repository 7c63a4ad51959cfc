import { setTimeout as sleep } from "node:timers/promises";
import { cpuMicros } from "./cpu-time.ts";
import type { Role } from "./deployment.ts";
import { Pool } from "./pool.ts";
import type { Target } from "./target.ts";

/** How one client process measures its system. */
export interface Measurement {
  /** How long the throughput phase submits. */
  readonly durationMs: number;
  /** How long tasks run first, unmeasured. */
  readonly warmupMs: number;
  /** Tasks per submit call. */
  readonly batchSize: number;
  /** Tasks whose submit may be unacknowledged at once. */
  readonly inFlight: number;
  /** Results the client may be waiting for at once. */
  readonly observers: number;
  /** The latency phase, or none (batch submits have no low-load latency of their own). */
  readonly latency: { readonly ratePerSec: number; readonly durationMs: number } | undefined;
  /** A phase fails when no result arrives for this long while some are awaited. */
  readonly stallMs: number;
  /** The system's other processes (worker, gateway, server), whose CPU time the throughput phase reads. */
  readonly processes: Partial<Record<Role, readonly number[]>>;
}

/** Latency percentiles, in milliseconds. */
export interface Percentiles {
  readonly p50: number;
  readonly p99: number;
  readonly p999: number;
  readonly samples: number;
}

/** What a client process reports. */
export interface ClientResult {
  /** Tasks of the throughput phase. */
  readonly tasks: number;
  /** Tasks per second from the first submit until every result was observed. */
  readonly endToEndPerSec: number;
  /** Tasks per second from the first submit until every submit was acknowledged. */
  readonly submitPerSec: number;
  /** CPU time (user and system) per task of the throughput phase, in microseconds, by role. */
  readonly cpuPerTask: Partial<Record<Role, number>>;
  /** Submit to result observed, at a fixed low load. */
  readonly latency: Percentiles | undefined;
}

/** Warms up, then runs the throughput phase and the latency phase. */
export async function measure(target: Target, m: Measurement): Promise<ClientResult> {
  await phase("warm-up", throughput(target, { ...m, durationMs: m.warmupMs }));
  const rates = await phase("throughput", throughput(target, m));
  const latency = m.latency && percentiles(await phase("latency", latencies(target, m.latency, m.stallMs)));
  return { ...rates, latency };
}

function phase<T>(name: string, running: Promise<T>): Promise<T> {
  return running.catch((error: unknown) => {
    throw new Error(`${name} phase: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  });
}

/**
 * Submits tasks for `durationMs` as fast as `inFlight` unacknowledged submits
 * allow, and observes each result once its submit is acknowledged, `observers`
 * at a time.
 */
async function throughput(
  target: Target,
  m: Pick<Measurement, "durationMs" | "batchSize" | "inFlight" | "observers" | "stallMs" | "processes">,
): Promise<Pick<ClientResult, "tasks" | "endToEndPerSec" | "submitPerSec" | "cpuPerTask">> {
  const results = new Pool(m.observers);
  let tasks = 0;
  let end = 0;
  const lane = async () => {
    while (performance.now() < end) {
      tasks += m.batchSize;
      for (const observe of await target.submit(m.batchSize)) results.add(observe);
    }
  };
  const lanes = Math.max(1, Math.floor(m.inFlight / m.batchSize));
  const cpuBefore = await cpuTimes(m.processes);
  const start = performance.now();
  end = start + m.durationMs;
  await Promise.all(Array.from({ length: lanes }, lane));
  const submitted = performance.now();
  await results.drained(m.stallMs);
  const done = performance.now();
  const cpuAfter = await cpuTimes(m.processes);
  const cpuPerTask: Partial<Record<Role, number>> = {};
  for (const [role, after] of Object.entries(cpuAfter) as [Role, number][])
    cpuPerTask[role] = (after - (cpuBefore[role] ?? 0)) / tasks;
  return {
    tasks,
    submitPerSec: (tasks * 1000) / (submitted - start),
    endToEndPerSec: (tasks * 1000) / (done - start),
    cpuPerTask,
  };
}

/** The CPU time used so far by this process (the client) and by each role's processes, in microseconds. */
async function cpuTimes(processes: Measurement["processes"]): Promise<Partial<Record<Role, number>>> {
  const own = process.cpuUsage();
  const times: Partial<Record<Role, number>> = {};
  for (const [role, pids] of Object.entries(processes) as [Role, readonly number[]][]) {
    const each = await Promise.all(pids.map(cpuMicros));
    times[role] = each.reduce((sum, t) => sum + t, 0);
  }
  times.client = own.user + own.system;
  return times;
}

/**
 * Submits one task every 1/`ratePerSec` s for `durationMs` (open loop: a slow
 * task does not delay the next submit) and returns each task's time from its
 * scheduled submit to its result, in milliseconds.
 */
async function latencies(
  target: Target,
  { ratePerSec, durationMs }: NonNullable<Measurement["latency"]>,
  stallMs: number,
): Promise<number[]> {
  const count = Math.round((ratePerSec * durationMs) / 1000);
  const intervalMs = 1000 / ratePerSec;
  const samples: number[] = [];
  const tasks = new Pool(Number.POSITIVE_INFINITY);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const due = start + i * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    // From the schedule when the timer fired late (a busy client cannot hide its
    // delay), from the call when it fired early (timers fire up to 1 ms early).
    const from = Math.min(due, performance.now());
    tasks.add(async () => {
      await Promise.all((await target.submit(1)).map((observe) => observe()));
      samples.push(performance.now() - from);
    });
  }
  await tasks.drained(stallMs);
  return samples;
}

function percentiles(samples: number[]): Percentiles {
  const sorted = samples.toSorted((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? 0;
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999), samples: sorted.length };
}

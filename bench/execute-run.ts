import type { ClientJob, ClientReport } from "./client-process.ts";
import { Deployment, type Role } from "./deployment.ts";
import type { ClientResult } from "./measure.ts";
import type { BenchOptions } from "./options.ts";
import type { Run } from "./runs.ts";

/** The outcome of one run: figures, or why there are none. */
export type RunOutcome =
  | { readonly run: Run; readonly result: ClientResult; readonly peakRss: Partial<Record<Role, number>> }
  | { readonly run: Run; readonly error: string };

/**
 * Deploys a run's system afresh, measures it from a client process of its own,
 * reads every process's peak memory, and stops everything.
 */
export async function executeRun(run: Run, options: BenchOptions): Promise<RunOutcome> {
  const deployment = new Deployment(run.id, options.cpuProfDir, run.env);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no result within ${options.runTimeoutMs} ms`)), options.runTimeoutMs);
  });
  try {
    return await Promise.race([measureRun(run, options, deployment), timeout]);
  } catch (error) {
    return { run, error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
    await deployment.stop();
  }
}

async function measureRun(run: Run, options: BenchOptions, deployment: Deployment): Promise<RunOutcome> {
  const target = await run.deploy(deployment);
  // Taken before the client starts: the client process reads its own CPU time.
  const processes = deployment.pids();
  const client = await deployment.child("client", "bench/client-process.ts");
  const job: ClientJob = {
    type: "job",
    target,
    measurement: {
      durationMs: options.throughputMs,
      warmupMs: options.warmupMs,
      batchSize: run.batched ? options.batchSize : 1,
      inFlight: options.inFlight,
      observers: options.observers,
      latency: run.latency ? { ratePerSec: options.latencyRate, durationMs: options.latencyMs } : undefined,
      stallMs: options.stallMs,
      processes,
    },
  };
  client.send(job);
  const report = (await client.message()) as ClientReport;
  if (report.type === "failed") throw new Error(report.message);
  return { run, result: report.result, peakRss: await deployment.peakRss() };
}

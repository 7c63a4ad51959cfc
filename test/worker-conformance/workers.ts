import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import type { TaskwireClient } from "../../sdk/client/create-client.ts";
import { poll } from "../support/poll.ts";
import { repoRoot } from "../support/tools.ts";

/**
 * A worker implementation under test: a command that serves the probe's worker
 * types ("probe" and "limited", test/proto/probe/v1/probe.proto) with the probe's
 * behaviour, configured by the environment every Taskwire worker process reads:
 * TASKWIRE_NATS, TASKWIRE_WORKER_ID, TASKWIRE_ACK_WAIT_MS, TASKWIRE_CONCURRENCY,
 * TASKWIRE_SHUTDOWN_GRACE_MS. On SIGTERM it drains and exits 0.
 */
export interface WorkerImplementation {
  /** As the docs' table names it. */
  readonly language: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

/** The TypeScript worker: the runtime's own worker process, running the probe. */
export const typescript: WorkerImplementation = {
  language: "TypeScript",
  command: process.execPath,
  args: ["--conditions=taskwire-source", join(repoRoot, "worker-runtime/worker-process.ts")],
  env: { TASKWIRE_WORKER_MODULE: "test/fixtures/conformance-worker.ts" },
};

/** A worker process started by the suite. */
export interface RunningWorker {
  readonly id: string;
  readonly process: ChildProcess;
  /** SIGTERM, then its exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL, once it has exited. */
  kill(): Promise<void>;
}

/**
 * Starts a worker of `implementation` against `natsUrl`; resolves once it is
 * live, as every worker announces itself (its presence in `taskwire_workers`).
 */
export async function startWorker(
  implementation: WorkerImplementation,
  natsUrl: string,
  id: string,
  client: TaskwireClient,
  env: Readonly<Record<string, string>> = {},
): Promise<RunningWorker> {
  const child = spawn(implementation.command, [...implementation.args], {
    cwd: repoRoot,
    env: {
      ...process.env,
      ...implementation.env,
      TASKWIRE_NATS: natsUrl,
      TASKWIRE_WORKER_ID: id,
      TASKWIRE_ACK_WAIT_MS: "1000",
      TASKWIRE_SHUTDOWN_GRACE_MS: "10000",
      ...env,
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  await poll(async () => {
    const workers = await client.queues.listWorkers("probe");
    return workers.some((w) => w.workerId === id) ? true : undefined;
  }, 30_000);
  return {
    id,
    process: child,
    stop: () => {
      child.kill("SIGTERM");
      return exited;
    },
    kill: async () => {
      child.kill("SIGKILL");
      await exited;
    },
  };
}

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import type { TaskwireClient } from "../../sdk/client/create-client.ts";
import { goTool } from "../support/find-binary.ts";
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
  /** Makes the command ready (a build), once per test run, before a worker starts. */
  readonly prepare?: () => Promise<void>;
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
  await implementation.prepare?.();
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

/** The Python worker: python/taskwire's worker process, running the probe (test/fixtures/conformance_worker.py). */
export const python: WorkerImplementation = {
  language: "Python",
  command: join(repoRoot, ".tools/venv/bin/python"),
  args: ["-m", "taskwire.worker_process"],
  env: {
    PYTHONPATH: [join(repoRoot, "python"), join(repoRoot, "test/gen/python")].join(delimiter),
    // No __pycache__ beside the generated code: scripts/check-generated.sh compares those folders.
    PYTHONDONTWRITEBYTECODE: "1",
    TASKWIRE_WORKER_MODULE: "test/fixtures/conformance_worker.py",
  },
};

/** Where the Go conformance worker is built, once per test run. */
const goWorkerDir = mkdtempSync(join(tmpdir(), "taskwire-go-worker-"));
process.once("exit", () => rmSync(goWorkerDir, { recursive: true, force: true }));
let goBuild: Promise<void> | undefined;

/** The Go worker: test/go/cmd/conformance-worker, on the Go runtime (go/taskwire), built on first use. */
export const go: WorkerImplementation = {
  language: "Go",
  command: join(goWorkerDir, "conformance-worker"),
  args: [],
  env: {},
  prepare: () => {
    goBuild ??= new Promise((resolve, reject) => {
      execFile(
        goTool(),
        ["build", "-o", join(goWorkerDir, "conformance-worker"), "./cmd/conformance-worker"],
        { cwd: join(repoRoot, "test/go") },
        (error, _stdout, stderr) => (error ? reject(new Error(`go build: ${stderr || error.message}`)) : resolve()),
      );
    });
    return goBuild;
  },
};

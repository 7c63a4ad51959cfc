import { type ChildProcess, fork } from "node:child_process";
import { readFile } from "node:fs/promises";
import { repoRoot } from "../test/support/tools.ts";
import { compiled } from "./compile.ts";

/** A process of a run whose peak memory is reported. */
export interface RunProcess {
  readonly pid: number;
  /** Stops the process (gracefully, then by force) and releases what it holds. Idempotent. */
  stop(): Promise<void>;
}

/** A TypeScript child process of the benchmark, talking over IPC. */
export interface BenchChild extends RunProcess {
  /** The "ready" message the child sent once started. */
  readonly ready: Record<string, unknown>;
  send(message: object): void;
  /** The next message the child sends; rejects if it exits first. */
  message(): Promise<unknown>;
}

/** Options of {@link startChild}. */
export interface ChildOptions {
  readonly args?: string[];
  readonly env?: Record<string, string>;
  /** Write a V8 CPU profile into this directory on exit. */
  readonly cpuProfDir?: string;
  /** More Node options for the child, such as `--import` of a compiled preload. */
  readonly execArgv?: string[];
}

const readyTimeoutMs = 60_000;
const stopTimeoutMs = 15_000;

/**
 * Starts the compiled program of `script` (a TypeScript path from the repository
 * root; see `compileBench`) with plain node, and waits for its
 * `{ type: "ready" }` message.
 */
export async function startChild(script: string, options: ChildOptions = {}): Promise<BenchChild> {
  const profile = options.cpuProfDir ? ["--cpu-prof", `--cpu-prof-dir=${options.cpuProfDir}`] : [];
  const child = fork(compiled(script), options.args ?? [], {
    cwd: repoRoot,
    execArgv: [...profile, ...(options.execArgv ?? [])],
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const message = () => nextMessage(child, script);
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= terminate(child);
    return stopped;
  };
  let ready: unknown;
  try {
    ready = await Promise.race([
      message(),
      new Promise((_, reject) =>
        setTimeout(
          () => reject(new Error(`${script} was not ready within ${readyTimeoutMs} ms`)),
          readyTimeoutMs,
        ).unref(),
      ),
    ]);
    if (!isReady(ready)) throw new Error(`${script} sent ${JSON.stringify(ready)} instead of "ready"`);
  } catch (error) {
    await stop();
    throw error;
  }
  return { pid: child.pid ?? 0, ready, send: (m) => child.send(m), message, stop };
}

/** The most resident memory the process ever had (VmHWM), in bytes. */
export async function peakRssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kib = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(kib) * 1024;
}

/** Sends SIGTERM and waits for the exit, with SIGKILL after {@link stopTimeoutMs}. */
export function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill("SIGKILL"), stopTimeoutMs);
    child.once("exit", () => {
      clearTimeout(force);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

function nextMessage(child: ChildProcess, script: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const onMessage = (message: unknown) => {
      child.off("exit", onExit);
      resolve(message);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      child.off("message", onMessage);
      reject(new Error(`${script} exited (${signal ?? `code ${code}`})`));
    };
    child.once("message", onMessage);
    child.once("exit", onExit);
  });
}

function isReady(message: unknown): message is Record<string, unknown> {
  return typeof message === "object" && message !== null && (message as { type?: unknown }).type === "ready";
}

/** The Taskwire worker of the benchmarks: the runtime's own worker process entry, running the echo handler. */
export const echoWorker = {
  script: "worker-runtime/worker-process.ts",
  env: (natsUrl: string) => ({
    TASKWIRE_NATS: natsUrl,
    TASKWIRE_WORKER_MODULE: compiled("bench/systems/echo-handler.ts"),
    TASKWIRE_WORKER_ID: "bench-worker",
  }),
};

/** {@link echoWorker} against `natsUrl`. */
export function startEchoWorker(natsUrl: string): Promise<BenchChild> {
  return startChild(echoWorker.script, { env: echoWorker.env(natsUrl) });
}

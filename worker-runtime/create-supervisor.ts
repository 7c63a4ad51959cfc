import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { RetentionSettings } from "../sdk/core/index.ts";
import { absolutePaths, assertSecretReferences, type NatsConnectionSettings } from "../sdk/nats/index.ts";
import { unloadableExitCode } from "./load-implementations.ts";

/** One pool of identical worker processes. */
export interface PoolOptions {
  /** The pool's name, used in worker ids (`<name>-<index>`) and messages. */
  name: string;
  /**
   * What the pool's processes are written in. TypeScript ones run the runtime's
   * worker process; Python and Go ones run `command` (docs/python-workers.md,
   * docs/go-workers.md). @default "typescript"
   */
  language?: "typescript" | "python" | "go";
  /**
   * The handler module every process of the pool loads: a TypeScript module, or
   * a Python file or module. A Go pool has none: its binary is its handlers.
   */
  module?: string;
  /**
   * The program and its arguments that a Python or Go process runs. @default
   * ["python3", "-m", "taskwire.worker_process"] for Python; required for Go
   */
  command?: readonly string[];
  /** Processes to keep running. @default 1 */
  processes?: number;
  /** Handlers each process runs at once per worker type. @default the service's own */
  concurrency?: number;
  /** Run the pool's processes as this OS user (a name or a uid); the supervisor must run as root. */
  user?: string;
  /** ...and group (a name or a gid). @default the user's primary group */
  group?: string;
  /** Extra environment for this pool's processes. */
  env?: Record<string, string>;
}

/** Options of {@link createSupervisor}. */
export interface SupervisorOptions {
  /**
   * The NATS server URL or connection settings the workers connect with. The
   * children get the settings with their secrets as references ({ env } or
   * { file }) and read the secrets themselves; a plain-string secret is refused.
   */
  nats: string | NatsConnectionSettings;
  /** The pools to run. */
  pools: PoolOptions[];
  /** On stop, how long workers may drain before they are killed. @default 30000 */
  shutdownGraceMs?: number;
  /** Ack wait of the worker types' consumers, passed to every worker. */
  ackWaitMs?: number;
  /** Copies a cluster keeps of what the workers create (1, 3 or 5), passed to every worker. */
  replicas?: number;
  /** The deployment's retention (taskwire.yaml), passed to every worker. */
  retention?: RetentionSettings;
  /** Delay before the first restart of a crashed process; doubles per crash. @default 500 */
  restartBackoffMs?: number;
  /** Upper bound of the restart delay. @default 30000 */
  maxRestartBackoffMs?: number;
  /** More than this many crashes of one process within `crashLoopWindowMs` stops its restarts. @default 5 */
  crashLoopLimit?: number;
  /** The window `crashLoopLimit` counts crashes in. @default 60000 */
  crashLoopWindowMs?: number;
  /** Extra environment for the worker processes. */
  env?: Record<string, string>;
  /** Lifecycle events. @default printed to stderr */
  onEvent?: (event: SupervisorEvent) => void;
}

/** What the supervisor reports. */
export type SupervisorEvent =
  /** A process was started. */
  | {
      /** The kind of event. */
      readonly type: "started";
      /** The process's place in its pool, `<pool>-<index>`; it keeps it across restarts. */
      readonly workerId: string;
      /** Its OS process id. */
      readonly pid: number;
    }
  /** A process loaded its handlers and is taking tasks. */
  | {
      /** The kind of event. */
      readonly type: "ready";
      /** The process's place in its pool, `<pool>-<index>`. */
      readonly workerId: string;
      /** Its OS process id. */
      readonly pid: number;
      /** The worker types the process serves. */
      readonly workerTypes: readonly string[];
    }
  /** A process ended. */
  | {
      /** The kind of event. */
      readonly type: "exited";
      /** The process's place in its pool, `<pool>-<index>`. */
      readonly workerId: string;
      /** Its OS process id. */
      readonly pid: number;
      /** Its exit code, or null when a signal ended it. */
      readonly code: number | null;
      /** The signal that ended it, or null when it exited by itself. */
      readonly signal: string | null;
    }
  /** A crashed process will be started again after a delay. */
  | {
      /** The kind of event. */
      readonly type: "restarting";
      /** The process's place in its pool, `<pool>-<index>`. */
      readonly workerId: string;
      /** The delay before the restart: `restartBackoffMs`, doubled per crash within the window, up to `maxRestartBackoffMs`. */
      readonly delayMs: number;
      /** Its crashes within `crashLoopWindowMs`, this one included. */
      readonly crashes: number;
    }
  /** A process crashed more than `crashLoopLimit` times within the window: it is not restarted. */
  | {
      /** The kind of event. */
      readonly type: "crash-loop";
      /** The process's place in its pool, `<pool>-<index>`. */
      readonly workerId: string;
      /** Its crashes within the window. */
      readonly crashes: number;
      /** The window, `crashLoopWindowMs`. */
      readonly windowMs: number;
    }
  /** The process's handler module cannot load (its own message says why): it is not restarted. */
  | {
      /** The kind of event. */
      readonly type: "unloadable";
      /** The process's place in its pool, `<pool>-<index>`. */
      readonly workerId: string;
      /** The handler module that failed to load. */
      readonly module: string;
    };

/** A running supervisor. */
export interface Supervisor {
  /** The live worker processes, by worker id. */
  readonly processes: ReadonlyMap<string, ChildProcess>;
  /**
   * Resolves once every process has reported ready once; rejects when a pool's
   * handler module cannot load, or a process crashes in a loop before it is
   * ready (neither is restarted).
   */
  readonly ready: Promise<void>;
  /**
   * Rejects when the supervisor gives a process up (a crash loop, or a handler
   * module that no longer loads), with an error naming the pool and why; never
   * resolves. `taskwire worker` then stops and exits non-zero, so that a service
   * manager starts it again.
   */
  readonly failed: Promise<never>;
  /** The worker types each pool serves, by pool name, as its processes reported them once ready. */
  readonly workerTypes: ReadonlyMap<string, readonly string[]>;
  /**
   * Stops restarting, sends SIGTERM to every worker, waits up to the grace
   * period (plus a second), then SIGKILLs the rest. Returns the same promise every time.
   */
  stop(): Promise<void>;
}

const workerEntry = fileURLToPath(
  new URL(`./worker-process.${import.meta.url.endsWith(".ts") ? "ts" : "js"}`, import.meta.url),
);

/**
 * Starts N processes per pool and keeps them running: a crashed process is
 * restarted with exponential backoff, and one that crashes in a loop is left
 * down, said so by a "crash-loop" event.
 *
 * ```ts
 * const supervisor = createSupervisor({ nats, pools: [{ name: "hasher", module: "./hash-worker.ts", processes: 3 }] });
 * process.once("SIGTERM", () => supervisor.stop().then(() => process.exit(0)));
 * ```
 */
export function createSupervisor(options: SupervisorOptions): Supervisor {
  const emit = options.onEvent ?? logEvent;
  if (typeof options.nats !== "string") assertSecretReferences(options.nats, "createSupervisor");
  // Checked before anything starts: a pool that cannot run as its user is a configuration error.
  const identities = new Map(options.pools.map((pool) => [pool.name, identityOf(pool)]));
  for (const pool of options.pools) poolCommand(pool);
  const processes = new Map<string, ChildProcess>();
  const crashes = new Map<string, number[]>();
  const timers = new Set<NodeJS.Timeout>();
  const workerTypes = new Map<string, readonly string[]>();
  let stopping: Promise<void> | undefined;
  const readiness: Promise<void>[] = [];
  let giveUp: (error: Error) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    giveUp = reject;
  });
  failed.catch(() => undefined); // for callers that never wait for it: no unhandled rejection

  const start = (pool: PoolOptions, workerId: string, onReady?: () => void, onGivenUp?: (error: Error) => void) => {
    const child = startWorkerProcess(options, pool, workerId, identities.get(pool.name));
    processes.set(workerId, child);
    emit({ type: "started", workerId, pid: child.pid ?? 0 });
    child.on("message", (message: { type?: string; workerTypes?: string[] }) => {
      if (message?.type !== "ready") return;
      const types = message.workerTypes ?? [];
      workerTypes.set(pool.name, types);
      emit({ type: "ready", workerId, pid: child.pid ?? 0, workerTypes: types });
      onReady?.();
    });
    child.once("exit", (code, signal) => {
      processes.delete(workerId);
      emit({ type: "exited", workerId, pid: child.pid ?? 0, code, signal });
      if (stopping) return;
      const givenUp = (error: Error) => {
        onGivenUp?.(error);
        giveUp(error);
      };
      if (code === unloadableExitCode) {
        const module = pool.module ?? pool.command?.join(" ") ?? "";
        emit({ type: "unloadable", workerId, module });
        return givenUp(new Error(`pool "${pool.name}": its handler module ${module} cannot load (see above)`));
      }
      const next = afterCrash(crashes.get(workerId) ?? [], Date.now(), options);
      crashes.set(workerId, next.recent);
      if (next.delayMs === undefined) {
        emit({ type: "crash-loop", workerId, crashes: next.recent.length, windowMs: next.windowMs });
        return givenUp(
          new Error(
            `pool "${pool.name}": ${workerId} crashed ${next.recent.length} times within ${next.windowMs} ms: it is not restarted`,
          ),
        );
      }
      emit({ type: "restarting", workerId, delayMs: next.delayMs, crashes: next.recent.length });
      const timer = setTimeout(() => {
        timers.delete(timer);
        if (!stopping) start(pool, workerId, onReady, onGivenUp);
      }, next.delayMs);
      timers.add(timer);
    });
  };

  for (const pool of options.pools) {
    const count = pool.processes ?? 1;
    if (!Number.isInteger(count) || count < 1)
      throw new Error(`pool ${pool.name}: processes must be a positive integer, got ${count}`);
    for (let i = 0; i < count; i++) {
      readiness.push(new Promise((resolve, reject) => start(pool, `${pool.name}-${i}`, resolve, reject)));
    }
  }

  const ready = Promise.all(readiness).then(() => undefined);
  ready.catch(() => undefined); // for callers that never wait for it: no unhandled rejection
  return {
    processes,
    workerTypes,
    ready,
    failed,
    stop() {
      stopping ??= (async () => {
        for (const timer of timers) clearTimeout(timer);
        await stopChildren([...processes.values()], options.shutdownGraceMs ?? 30_000);
      })();
      return stopping;
    },
  };
}

/** The command a Python or Go pool's processes run; undefined for a TypeScript pool (checked at start). */
export function poolCommand(pool: PoolOptions): readonly string[] | undefined {
  const language = pool.language ?? "typescript";
  if (language === "typescript") {
    if (pool.command) throw new Error(`pool "${pool.name}": command is for Python and Go pools (language: python|go)`);
    if (!pool.module) throw new Error(`pool "${pool.name}": a TypeScript pool needs a module`);
    return undefined;
  }
  if (language === "go") {
    if (!pool.command?.length) throw new Error(`pool "${pool.name}": a Go pool needs command: its worker binary`);
    if (pool.module) throw new Error(`pool "${pool.name}": a Go pool has no module: its binary is its handlers`);
    return pool.command;
  }
  if (language !== "python") throw new Error(`pool "${pool.name}": language must be typescript, python or go`);
  if (!pool.module) throw new Error(`pool "${pool.name}": a Python pool needs a module (a .py file or a module name)`);
  return pool.command?.length ? pool.command : ["python3", "-m", "taskwire.worker_process"];
}

/**
 * Starts one worker process of a pool, as its user when it names one. Every
 * language's process gets the same environment and an IPC channel (fd 3,
 * NODE_CHANNEL_FD): a Python or Go process writes `{"type":"ready",...}` on
 * it as a JSON line, and drains once it closes.
 */
function startWorkerProcess(
  options: SupervisorOptions,
  pool: PoolOptions,
  workerId: string,
  identity: { uid: number; gid: number } | undefined,
): ChildProcess {
  const env = {
    ...process.env,
    ...options.env,
    ...pool.env,
    ...(typeof options.nats === "string"
      ? { TASKWIRE_NATS: options.nats }
      : { TASKWIRE_NATS_SETTINGS: JSON.stringify(absolutePaths(options.nats)) }),
    ...(pool.module ? { TASKWIRE_WORKER_MODULE: pool.module } : {}),
    TASKWIRE_WORKER_ID: workerId,
    ...(pool.concurrency ? { TASKWIRE_CONCURRENCY: String(pool.concurrency) } : {}),
    TASKWIRE_SHUTDOWN_GRACE_MS: String(options.shutdownGraceMs ?? 30_000),
    ...(options.ackWaitMs ? { TASKWIRE_ACK_WAIT_MS: String(options.ackWaitMs) } : {}),
    ...(options.replicas ? { TASKWIRE_REPLICAS: String(options.replicas) } : {}),
    ...(options.retention ? { TASKWIRE_RETENTION: JSON.stringify(options.retention) } : {}),
  };
  const command = poolCommand(pool);
  if (command) {
    const [program = "", ...args] = command;
    return spawn(program, args, { env, stdio: ["ignore", "inherit", "inherit", "ipc"], ...identity });
  }
  const child = fork(workerEntry, [], {
    // Children run on this process's Node options (a loader such as tsx included);
    // from TypeScript sources, they resolve "taskwire" to the sources as well.
    execArgv: workerEntry.endsWith(".ts") ? [...process.execArgv, "--conditions=taskwire-source"] : process.execArgv,
    env,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    ...identity,
  });
  typescriptWorkers.add(child);
  return child;
}

/** The TypeScript worker processes: they answer the supervisor's requests for their metrics. */
const typescriptWorkers = new WeakSet<ChildProcess>();

/** Whether `child` answers requests for its metrics (a TypeScript worker process does). */
export function answersMetrics(child: ChildProcess): boolean {
  return typescriptWorkers.has(child);
}

/**
 * What follows a process's crash at `now`, given its earlier crash times: the
 * crashes within the window, and the restart delay (doubling per crash, up to
 * the bound), or no delay when they are more than the crash-loop limit.
 */
export function afterCrash(
  earlier: readonly number[],
  now: number,
  options: Pick<SupervisorOptions, "crashLoopWindowMs" | "crashLoopLimit" | "restartBackoffMs" | "maxRestartBackoffMs">,
): { readonly recent: number[]; readonly windowMs: number; readonly delayMs: number | undefined } {
  const windowMs = options.crashLoopWindowMs ?? 60_000;
  const recent = [...earlier, now].filter((t) => now - t <= windowMs);
  if (recent.length > (options.crashLoopLimit ?? 5)) return { recent, windowMs, delayMs: undefined };
  const delayMs = Math.min(
    (options.restartBackoffMs ?? 500) * 2 ** (recent.length - 1),
    options.maxRestartBackoffMs ?? 30_000,
  );
  return { recent, windowMs, delayMs };
}

/** SIGTERMs every child, SIGKILLs those still running a second after the grace period, and waits for all. */
async function stopChildren(children: readonly ChildProcess[], graceMs: number): Promise<void> {
  const exits = children.map(
    (child) =>
      new Promise<void>((resolve) =>
        child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve()),
      ),
  );
  for (const child of children) child.kill("SIGTERM");
  const killer = setTimeout(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }, graceMs + 1_000);
  await Promise.all(exits);
  clearTimeout(killer);
}

function logEvent(event: SupervisorEvent): void {
  switch (event.type) {
    case "exited":
      console.error(
        `taskwire supervisor: ${event.workerId} (pid ${event.pid}) exited with ${event.signal ?? `code ${event.code}`}`,
      );
      break;
    case "restarting":
      console.error(`taskwire supervisor: restarting ${event.workerId} in ${event.delayMs}ms (crash ${event.crashes})`);
      break;
    case "crash-loop":
      console.error(
        `taskwire supervisor: ${event.workerId} crashed ${event.crashes} times within ${event.windowMs}ms: not restarting it again`,
      );
      break;
    case "unloadable":
      console.error(
        `taskwire supervisor: ${event.workerId}: its handler module ${event.module} cannot load: not restarting it`,
      );
      break;
    default:
      break;
  }
}

/** The uid and gid a pool's processes run as; none when it names no user. Throws a readable error otherwise. */
function identityOf(pool: PoolOptions): { uid: number; gid: number } | undefined {
  if (pool.user === undefined) {
    if (pool.group !== undefined) throw new Error(`pool "${pool.name}": group "${pool.group}" needs a user too`);
    return undefined;
  }
  const running = process.getuid?.();
  if (running !== 0) {
    throw new Error(
      `pool "${pool.name}" runs as user "${pool.user}": the supervisor must run as root to switch users (it runs as uid ${running})`,
    );
  }
  const uid = idOf(["-u", pool.user], `pool "${pool.name}": unknown user "${pool.user}"`);
  const gid =
    pool.group === undefined
      ? idOf(["-g", pool.user], `pool "${pool.name}": unknown user "${pool.user}"`)
      : /^\d+$/.test(pool.group)
        ? Number(pool.group)
        : groupId(pool.group, `pool "${pool.name}": unknown group "${pool.group}"`);
  return { uid, gid };
}

function idOf(args: string[], unknown: string): number {
  try {
    return Number(execFileSync("id", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
  } catch {
    throw new Error(unknown);
  }
}

function groupId(name: string, unknown: string): number {
  try {
    const entry = execFileSync("getent", ["group", name], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    return Number(entry.split(":")[2]);
  } catch {
    throw new Error(unknown);
  }
}

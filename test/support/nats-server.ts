import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { connect as connectTcp, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { poll } from "./poll.ts";
import { natsServerBinary } from "./tools.ts";

/** Options of {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Enable JetStream. @default true */
  jetstream?: boolean;
  /** The durable profile: fsync every write (`sync_interval: always`). @default false */
  syncAlways?: boolean;
  /** JetStream store directory. @default a `store` directory in a temporary directory removed on stop */
  storeDir?: string;
  /** Client port on 127.0.0.1. @default a random free port */
  port?: number;
  /** Also serve the HTTP monitoring endpoints (`/healthz`, `/jsz`) on a random port. @default false */
  monitoring?: boolean;
  /** The JetStream domain (`jetstream { domain }`). @default none */
  jetstreamDomain?: string;
  /**
   * More configuration text, appended to the generated config: `authorization`,
   * `accounts`, `tls` blocks and such. Files it names (certificates) may live in
   * a directory of the test's own.
   */
  config?: string;
  /** How long to wait for the server to listen. @default 15000 */
  startTimeoutMs?: number;
  /** Threads running Go code at once (`GOMAXPROCS`). @default the CPU count */
  threads?: number;
}

/** A nats-server process owned by a test. */
export interface NatsServer {
  /** Client URL, `nats://127.0.0.1:<port>`. */
  readonly url: string;
  /** Client port; the same after {@link NatsServer.restart}. */
  readonly port: number;
  /** JetStream store directory; kept by kill() and restart(). */
  readonly storeDir: string;
  /** Monitoring URL (`http://127.0.0.1:<port>`) when started with `monitoring: true`. */
  readonly monitorUrl: string | undefined;
  /** Process id of the current process (changes on restart). */
  readonly pid: number;
  /**
   * Sends SIGTERM and waits for exit (SIGKILL after 10 s), then removes the
   * temporary directory. Idempotent: every call returns the same promise.
   */
  stop(): Promise<void>;
  /**
   * Sends `signal` (SIGKILL by default) without any cleanup, as a crash would.
   * Waits for the process to exit, except for signals that do not end it
   * (SIGSTOP, SIGCONT, SIGHUP, SIGUSR1, and SIGUSR2, which starts lame duck mode).
   */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the process if it runs, then starts it again on the same port and store directory. */
  restart(): Promise<void>;
  /**
   * Replaces the extra configuration text ({@link NatsServerOptions.config}) and has the
   * running server reload it (SIGHUP); the reload itself completes shortly after.
   */
  reconfigure(config: string): Promise<void>;
}

/** A JetStream cluster of nats-servers on loopback. */
export interface NatsCluster {
  /** The servers, named `n0`, `n1`, … (`server_name`). */
  readonly servers: NatsServer[];
  /** Every server's client URL. */
  readonly urls: string[];
  /** Stops every server. Idempotent. */
  stop(): Promise<void>;
}

const stopTimeoutMs = 10_000;
const nonTerminating = new Set<NodeJS.Signals>(["SIGSTOP", "SIGCONT", "SIGHUP", "SIGUSR1", "SIGUSR2"]);

// Servers still running when the test process exits would outlive it.
const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/**
 * Starts a real nats-server on 127.0.0.1 with its own temporary directory.
 * Resolves once the server listens; rejects with its output if it exits first.
 *
 * @example
 * const server = await startNatsServer({ syncAlways: true });
 * const nc = await connect({ servers: server.url });
 * // …
 * await nc.close();
 * await server.stop();
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const dir = await mkdtemp(join(tmpdir(), "taskwire-nats-"));
  const storeDir = options.storeDir ?? join(dir, "store");
  const configFile = join(dir, "nats.conf");
  const startTimeoutMs = options.startTimeoutMs ?? 15_000;
  let extra = options.config ?? "";
  const render = (port: number, httpPort: number | undefined) =>
    [
      `listen: "127.0.0.1:${port}"`,
      httpPort === undefined ? "" : `http: "127.0.0.1:${httpPort}"`,
      options.jetstream === false
        ? ""
        : `jetstream { store_dir: ${JSON.stringify(storeDir)}${options.syncAlways ? ", sync_interval: always" : ""}${
            options.jetstreamDomain === undefined ? "" : `, domain: ${JSON.stringify(options.jetstreamDomain)}`
          } }`,
      extra,
      "",
    ].join("\n");

  // Port -1 lets the server pick; the config is then rewritten with the ports it
  // took, so that restart() comes back on the same ones.
  await writeFile(configFile, render(options.port ?? -1, options.monitoring ? -1 : undefined));
  let launched: Launched;
  try {
    launched = await launch(configFile, dir, startTimeoutMs, options.threads);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  const port = portOf(launched.ports.nats?.[0], "client");
  const monitorUrl = options.monitoring ? launched.ports.monitoring?.[0] : undefined;
  const httpPort = monitorUrl === undefined ? undefined : portOf(monitorUrl, "monitoring");
  await writeFile(configFile, render(port, httpPort));

  let child = launched.child;
  let stopped: Promise<void> | undefined;
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    monitorUrl,
    get pid() {
      return child.pid ?? 0;
    },
    async kill(signal = "SIGKILL") {
      if (nonTerminating.has(signal)) {
        if (isRunning(child)) child.kill(signal);
        return;
      }
      await terminate(child, signal);
    },
    async restart() {
      if (stopped) throw new Error("nats-server was stopped; it cannot restart");
      await terminate(child, "SIGTERM");
      child = (await launch(configFile, dir, startTimeoutMs, options.threads)).child;
    },
    async reconfigure(config: string) {
      extra = config;
      await writeFile(configFile, render(port, httpPort));
      if (isRunning(child)) child.kill("SIGHUP");
    },
    stop() {
      stopped ??= (async () => {
        await terminate(child, "SIGTERM");
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/**
 * Starts `size` JetStream servers clustered over loopback routes, each with its
 * own store directory, and resolves once the cluster has a JetStream meta leader
 * that sees every peer as current (so an R`size` stream can be placed).
 */
export async function startNatsCluster(size = 3, options: NatsServerOptions = {}): Promise<NatsCluster> {
  // A route port is chosen before its server binds it, and anything on the machine may
  // take it meanwhile (an outgoing connection's local port, another test's server):
  // such a start is tried again on other ports.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startClusterOnce(size, options);
    } catch (error) {
      if (attempt === 3 || !/address already in use/.test((error as Error).message)) throw error;
    }
  }
}

async function startClusterOnce(size: number, options: NatsServerOptions): Promise<NatsCluster> {
  // Routes must be known before any server starts, so the ports are allocated here.
  const routePorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const name = `taskwire-${process.pid}-${routePorts[0]}`;
  const routes = routePorts.map((p) => `"nats-route://127.0.0.1:${p}"`).join(", ");
  const started = await Promise.allSettled(
    routePorts.map((routePort, i) =>
      startNatsServer({
        ...options,
        jetstream: true,
        monitoring: true,
        config: [
          `server_name: n${i}`,
          `cluster { name: ${JSON.stringify(name)}, listen: "127.0.0.1:${routePort}", routes: [${routes}] }`,
          options.config ?? "",
        ].join("\n"),
      }),
    ),
  );
  const servers = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const stop = async () => void (await Promise.all(servers.map((s) => s.stop())));
  try {
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw failed.reason;
    await waitForMetaLeader(servers, options.startTimeoutMs ?? 30_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { servers, urls: servers.map((s) => s.url), stop };
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port assigned")),
      );
    });
  });
}

/** What nats-server writes into `<exe>_<pid>.ports` once it listens. */
interface PortsFile {
  nats?: string[];
  monitoring?: string[];
}

interface Launched {
  child: ChildProcess;
  ports: PortsFile;
}

async function launch(
  configFile: string,
  dir: string,
  timeoutMs: number,
  threads: number | undefined,
): Promise<Launched> {
  const portsDir = join(dir, "ports");
  await rm(portsDir, { recursive: true, force: true });
  await mkdir(portsDir);
  const child = spawn(natsServerBinary(), ["-c", configFile, "--ports_file_dir", portsDir], {
    stdio: ["ignore", "ignore", "pipe"],
    env: threads === undefined ? process.env : { ...process.env, GOMAXPROCS: String(threads) },
  });
  running.add(child);
  child.once("exit", () => running.delete(child));
  // The server logs to stderr; keep the tail for error messages.
  let output = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8_000);
  });
  // The ports file appears once the server listens; an exit before that is a failed start.
  const failed = new Promise<never>((_, reject) => {
    child.once("error", (error) => reject(new Error(`cannot run nats-server: ${error.message}`)));
    child.once("exit", (code, signal) =>
      reject(new Error(`nats-server exited (${signal ?? `code ${code}`}) before it was ready:\n${output}`)),
    );
  });
  failed.catch(() => undefined);
  const ready = poll(
    async () => {
      const file = (await readdir(portsDir)).find((f) => f.endsWith(`_${child.pid}.ports`));
      // JSON.parse throws on a half-written file: poll() retries.
      return file ? (JSON.parse(await readFile(join(portsDir, file), "utf8")) as PortsFile) : undefined;
    },
    timeoutMs,
    10,
  );
  try {
    const ports = await Promise.race([ready, failed]);
    // The ports file is written as the listeners open; a TCP connect proves the client one accepts.
    await Promise.race([acceptsConnections(portOf(ports.nats?.[0], "client"), timeoutMs), failed]);
    return { child, ports };
  } catch (error) {
    await terminate(child, "SIGKILL");
    throw error instanceof Error && !error.message.startsWith("nats-server exited")
      ? new Error(`nats-server did not start: ${error.message}\n${output}`)
      : error;
  }
}

/** Resolves once a TCP connection to 127.0.0.1:`port` succeeds; rejects after `timeoutMs`. */
function acceptsConnections(port: number, timeoutMs: number): Promise<true> {
  return poll(
    () =>
      new Promise<true>((resolve, reject) => {
        const socket = connectTcp({ host: "127.0.0.1", port, timeout: 1_000 });
        socket.once("connect", () => {
          socket.destroy();
          resolve(true);
        });
        socket.once("timeout", () => {
          socket.destroy();
          reject(new Error(`connect to 127.0.0.1:${port} timed out`));
        });
        socket.once("error", (error) => {
          socket.destroy();
          reject(error);
        });
      }),
    timeoutMs,
    10,
  );
}

function portOf(url: string | undefined, what: string): number {
  const port = url ? Number(new URL(url).port) : Number.NaN;
  if (!Number.isInteger(port) || port <= 0) throw new Error(`nats-server reported no ${what} port (${url})`);
  return port;
}

function isRunning(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Sends `signal` and waits for exit, escalating to SIGKILL after {@link stopTimeoutMs}. */
function terminate(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (!isRunning(child) || child.pid === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill("SIGKILL"), stopTimeoutMs);
    child.once("exit", () => {
      clearTimeout(force);
      resolve();
    });
    child.kill(signal);
    // A stopped (SIGSTOP) process only acts on SIGTERM once it runs again.
    if (signal !== "SIGKILL") child.kill("SIGCONT");
  });
}

interface Jsz {
  meta_cluster?: {
    leader?: string;
    replicas?: { name: string; current: boolean; offline?: boolean }[];
  };
}

/** Polls `/jsz` until the meta leader reports every other peer current, then checks the JetStream API. */
async function waitForMetaLeader(servers: NatsServer[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  await poll(
    async () => {
      const reports = await Promise.all(
        servers.map(async (s) => {
          const response = await fetch(`${s.monitorUrl}/jsz`, { signal: AbortSignal.timeout(1_000) });
          return (await response.json()) as Jsz;
        }),
      );
      // Only the leader's report lists the other peers as it sees them.
      const leader = reports
        .map((r) => r.meta_cluster)
        .find((m) => m?.leader !== undefined && !m.replicas?.some((p) => p.name === m.leader));
      const peers = leader?.replicas ?? [];
      const ready = peers.length === servers.length - 1 && peers.every((p) => p.current && !p.offline);
      return ready ? true : undefined;
    },
    timeoutMs,
    50,
  );
  const nc = await connect({ servers: servers.map((s) => s.url) });
  try {
    await poll(
      async () => (await jetstreamManager(nc, { timeout: 1_000 })).getAccountInfo(),
      Math.max(deadline - Date.now(), 1_000),
      50,
    );
  } finally {
    await nc.close();
  }
}

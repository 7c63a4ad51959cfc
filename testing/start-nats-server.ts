import { type ChildProcess, spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { type Socket, connect as tcpConnect } from "node:net";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { type FindNatsServerOptions, findNatsServer } from "./nats-server-binary.ts";

/** A nats-server that `taskwire dev` started and owns. */
export interface ManagedNatsServer {
  /** The URL it serves, as given to {@link startNatsServer}. */
  readonly url: string;
  /** Its process. */
  readonly process: ChildProcess;
  /** SIGTERM, then wait for exit. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startNatsServer}. */
export interface StartNatsServerOptions extends FindNatsServerOptions {
  /** How long it may take to accept connections. @default 15000 */
  timeoutMs?: number;
  /** Run as one node of a cluster ({@link startNatsCluster} sets it). */
  cluster?: {
    /** The cluster's name, the same on every node. */
    readonly name: string;
    /** This node's name (`server_name`), unique in the cluster. */
    readonly serverName: string;
    /** This node's route URL, `nats://host:port`. */
    readonly listen: string;
    /** Every node's route URL. */
    readonly routes: readonly string[];
  };
}

/**
 * Starts nats-server (found, or installed, by {@link findNatsServer}) with
 * JetStream on the URL's host and port, its data under `dataDir`, and resolves once it accepts connections (or rejects with its
 * output if it exits first or does not answer within `timeoutMs`). It shares the
 * machine with the gateway and the workers, so it runs Go code on half the cores
 * (`GOMAXPROCS`, unless the environment sets it; docs/operations.md says why).
 * It runs in a session of its own, and stops when this process ends, however
 * it ends (a SIGKILL included; not on Windows).
 */
export async function startNatsServer(
  url: string,
  dataDir: string,
  options: StartNatsServerOptions = {},
): Promise<ManagedNatsServer> {
  const { timeoutMs = 15_000 } = options;
  const { hostname, port } = new URL(url);
  const binary = await findNatsServer(options);
  await mkdir(dataDir, { recursive: true });
  const { cluster } = options;
  const clusterArgs = cluster
    ? [
        "--name",
        cluster.serverName,
        "--cluster_name",
        cluster.name,
        "--cluster",
        cluster.listen,
        "--routes",
        cluster.routes.join(","),
      ]
    : [];
  const child = spawn(binary, ["-js", "-sd", dataDir, "-a", hostname, "-p", port || "4222", ...clusterArgs], {
    stdio: ["ignore", "ignore", "pipe"],
    env: { GOMAXPROCS: String(Math.max(1, Math.floor(availableParallelism() / 2))), ...process.env },
    // Its own process group: a terminal's Ctrl-C signals the whole foreground group, and
    // nats-server would stop at once, before the workers record the tasks they finish.
    // `taskwire dev` stops it last instead, and on any exit of its own; killed, even
    // by SIGKILL, at any point from here on, a guard stops it (stopWithThisProcess).
    detached: true,
  });
  stopWithThisProcess(child);
  const stopOnExit = () => child.kill("SIGTERM");
  process.once("exit", stopOnExit);
  child.once("exit", () => process.off("exit", stopOnExit));
  let output = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) =>
      reject(new Error(`nats-server exited with code ${code} before it was ready:\n${output}`)),
    ),
  );
  const deadline = Date.now() + timeoutMs;
  const accepting = (async () => {
    while (Date.now() < deadline) {
      if (await canConnect(hostname, Number(port || 4222))) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`nats-server did not accept connections on ${url} within ${timeoutMs}ms:\n${output}`);
  })();
  try {
    await Promise.race([accepting, exited]);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  exited.catch(() => undefined);
  let stopping: Promise<void> | undefined;
  return {
    url,
    process: child,
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      });
      return stopping;
    },
  };
}

/** A local cluster that `taskwire dev --cluster N` started and owns. */
export interface ManagedNatsCluster {
  /** Every node's client URL. */
  readonly urls: readonly string[];
  /** Its nodes, named n0, n1, ... */
  readonly servers: readonly ManagedNatsServer[];
  /** Stops every node. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts a JetStream cluster of `size` nats-servers on the URL's host: client
 * ports from the URL's port up, route ports after them (a cluster of 3 from
 * port 4222 takes 4222-4227), each node's data in `dataDir/n<i>`. Resolves once
 * JetStream has a leader, so streams of 3 replicas can be created at once.
 */
export async function startNatsCluster(
  url: string,
  dataDir: string,
  size: number,
  options: StartNatsServerOptions = {},
): Promise<ManagedNatsCluster> {
  if (!Number.isInteger(size) || size < 3 || size % 2 === 0) {
    throw new Error(`a cluster has an odd number of nodes, 3 or more (a majority must survive), got ${size}`);
  }
  const { hostname, port } = new URL(url);
  const base = Number(port || 4222);
  const urls = Array.from({ length: size }, (_, i) => `nats://${hostname}:${base + i}`);
  const routes = Array.from({ length: size }, (_, i) => `nats://${hostname}:${base + size + i}`);
  const started = await Promise.allSettled(
    urls.map((nodeUrl, i) =>
      startNatsServer(nodeUrl, join(dataDir, `n${i}`), {
        ...options,
        cluster: { name: "taskwire-dev", serverName: `n${i}`, listen: routes[i] as string, routes },
      }),
    ),
  );
  const servers = started.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  const stop = async () => void (await Promise.all(servers.map((server) => server.stop())));
  try {
    const failed = started.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
    await jetStreamLeader(urls, options.timeoutMs ?? 30_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { urls, servers, stop };
}

/** Resolves once the cluster's JetStream answers (it has elected its meta leader). */
async function jetStreamLeader(urls: readonly string[], timeoutMs: number): Promise<void> {
  const nc = await connect({ servers: [...urls], maxReconnectAttempts: -1 });
  try {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const error = await nc.request("$JS.API.INFO", "", { timeout: 1_000 }).then(
        (reply) => reply.json<{ error?: { description?: string } }>().error?.description ?? undefined,
        (e: Error) => e.message,
      );
      if (error === undefined) return;
      if (Date.now() > deadline)
        throw new Error(`the cluster's JetStream did not start within ${timeoutMs}ms: ${error}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  } finally {
    await nc.close();
  }
}

/**
 * Makes `child` end with this process, however this one ends, SIGKILL included:
 * a shell of its own session holds the read end of a pipe whose only writer is
 * this process, and SIGTERMs the child when the pipe closes. Once the child has
 * exited, the shell is stopped (its pid might be another process's by then).
 * nats-server runs in a process group of its own, which nothing else stops when
 * this process dies, and has no option to follow its parent. Not on Windows (no sh).
 */
function stopWithThisProcess(child: ChildProcess): void {
  if (process.platform === "win32" || child.pid === undefined || child.exitCode !== null) return;
  const guard = spawn("sh", ["-c", 'read _; kill -TERM "$1" 2>/dev/null', "taskwire-guard", String(child.pid)], {
    stdio: ["pipe", "ignore", "ignore"],
    // Its own session: a terminal's Ctrl-C or hang-up does not end it before the child.
    detached: true,
  });
  guard.on("error", () => undefined); // no sh: the child is then as before, stopped by this process only
  guard.stdin?.on("error", () => undefined);
  guard.unref();
  (guard.stdin as Socket | null)?.unref();
  child.once("exit", () => guard.kill());
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host, port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

import { type ChildProcess, spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { poll } from "./poll.js";
import { natsServerBinary } from "./tools.js";

/** Options of {@link startNatsServer}. */
export interface NatsServerOptions {
  /** Enable JetStream. @default true */
  jetstream?: boolean;
  /** The durable profile: fsync every write (`sync_interval: always`). @default false */
  syncAlways?: boolean;
  /** Store directory; a temporary one (removed on stop) by default. */
  storeDir?: string;
  /** Client port; a random free one by default. */
  port?: number;
  /** More configuration text, appended. */
  config?: string;
}

/** A nats-server process for a test. */
export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly pid: number;
  /** SIGTERM, wait for exit (SIGKILL after 10 s), remove the temporary dirs. Idempotent. */
  stop(): Promise<void>;
  /** Sends a signal (SIGKILL by default) and waits for exit; the store is kept for restart(). */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts the server again on the same port and store directory. */
  restart(): Promise<void>;
}

/**
 * Starts a real nats-server on 127.0.0.1 with its own temporary directory.
 * Resolves once it accepts connections; rejects with its output if it exits first.
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const dir = await mkdtemp(join(tmpdir(), "taskwire-nats-"));
  const storeDir = options.storeDir ?? join(dir, "store");
  const rest = [
    options.jetstream === false
      ? ""
      : `jetstream { store_dir: "${storeDir}"${options.syncAlways ? ", sync_interval: always" : ""} }`,
    options.config ?? "",
  ].join("\n");
  // Port -1 lets the server pick; the port it took is then written into the
  // config so restart() comes back on the same one.
  const configFile = join(dir, "nats.conf");
  await writeFile(configFile, `listen: 127.0.0.1:${options.port ?? -1}\n${rest}`);
  const first = await launch(configFile, dir);
  let child = first.child;
  const port = first.port;
  await writeFile(configFile, `listen: 127.0.0.1:${port}\n${rest}`);
  let stopped: Promise<void> | undefined;
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    get pid() {
      return child.pid ?? 0;
    },
    async kill(signal = "SIGKILL") {
      await exitOf(child, signal);
    },
    async restart() {
      await exitOf(child, "SIGTERM");
      child = (await launch(configFile, dir)).child;
    },
    stop() {
      stopped ??= (async () => {
        await exitOf(child, "SIGTERM");
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
  return server;
}

/** A JetStream cluster of nats-servers on loopback. */
export interface NatsCluster {
  readonly servers: NatsServer[];
  /** Every server's client URL. */
  readonly urls: string[];
  stop(): Promise<void>;
}

/** Starts `size` servers clustered over loopback; resolves once JetStream answers. */
export async function startNatsCluster(size = 3, options: NatsServerOptions = {}): Promise<NatsCluster> {
  const routes = await Promise.all(Array.from({ length: size }, () => freePort()));
  const name = `taskwire-${process.pid}-${routes[0]}`;
  const servers = await Promise.all(
    routes.map((routePort, i) =>
      startNatsServer({
        ...options,
        config: [
          `server_name: n${i}`,
          `cluster { name: ${name}, listen: 127.0.0.1:${routePort}, routes: [${routes.map((p) => `nats-route://127.0.0.1:${p}`).join(", ")}] }`,
          options.config ?? "",
        ].join("\n"),
      }),
    ),
  );
  const urls = servers.map((s) => s.url);
  const nc = await connect({ servers: urls });
  try {
    // Until the cluster elects a meta leader, JetStream requests time out.
    await poll(async () => (await jetstreamManager(nc, { timeout: 1000 })).getAccountInfo(), 30_000, 200);
  } finally {
    await nc.close();
  }
  return { servers, urls, stop: async () => void (await Promise.all(servers.map((s) => s.stop()))) };
}

async function launch(configFile: string, dir: string): Promise<{ child: ChildProcess; port: number }> {
  const portsDir = join(dir, "ports");
  await rm(portsDir, { recursive: true, force: true });
  await mkdir(portsDir);
  const child = spawn(natsServerBinary(), ["-c", configFile, "--ports_file_dir", portsDir], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let output = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8000);
  });
  // The server writes <name>_<pid>.ports once it listens; an early exit means it failed.
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code, signal) =>
      reject(new Error(`nats-server exited (${signal ?? code}) before it was ready:\n${output}`)),
    ),
  );
  const ready = poll(
    async () => {
      const files = await readdir(portsDir).catch(() => []);
      const file = files.find((f) => f.endsWith(`_${child.pid}.ports`));
      if (!file) return undefined;
      return JSON.parse(await readFile(join(portsDir, file), "utf8")) as { nats: string[] };
    },
    15_000,
    20,
  );
  let ports: { nats: string[] };
  try {
    ports = await Promise.race([ready, exited]);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  exited.catch(() => undefined);
  const url = ports.nats[0];
  if (!url) throw new Error(`nats-server reported no client port:\n${output}`);
  return { child, port: Number(new URL(url).port) };
}

function exitOf(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const force = setTimeout(() => child.kill("SIGKILL"), 10_000);
    child.once("exit", () => {
      clearTimeout(force);
      resolve();
    });
    child.kill(signal);
  });
}

/** A TCP port that was free a moment ago (the OS picked it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

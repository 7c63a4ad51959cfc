import { type ChildProcess, spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { type Socket, connect as tcpConnect } from "node:net";
import { availableParallelism } from "node:os";
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
  const child = spawn(binary, ["-js", "-sd", dataDir, "-a", hostname, "-p", port || "4222"], {
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

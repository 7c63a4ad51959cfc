import { join } from "node:path";
import { type NatsServer, type NatsServerOptions, startNatsServer } from "../test/support/nats-server.ts";
import { type BenchChild, type ChildOptions, peakRssBytes, type RunProcess, startChild } from "./processes.ts";
import { type RedisServer, startRedisServer } from "./redis-server.ts";

/**
 * How every benchmark runs nats-server: JetStream on file storage (default sync),
 * with one thread running Go code (`GOMAXPROCS=1`). The machine's two cores are
 * shared by the server, its clients and its workers; with a thread per core, Go's
 * scheduler hands goroutines between threads and spins while it waits for work,
 * which took about a third of the server's CPU per task (measured in A/B runs of
 * `--only raw,direct`: 52-57 against 38-41 µs per Taskwire task, 23-30 against
 * 18-20 µs per raw one). Redis, for BullMQ, runs its commands on one thread too.
 */
export const benchNatsServer: NatsServerOptions = { threads: 1 };

/** The processes of a run, by what they do. */
export type Role = "client" | "worker" | "gateway" | "server";

/**
 * The processes of one run: started one by one, stopped together in reverse
 * order (clients before workers, workers before their server).
 */
export class Deployment {
  private readonly processes: { role: Role; process: RunProcess }[] = [];

  private readonly runId: string;
  private readonly cpuProfDir: string | undefined;
  private readonly env: Readonly<Record<string, string>> | undefined;
  constructor(runId: string, cpuProfDir: string | undefined, env?: Readonly<Record<string, string>>) {
    this.runId = runId;
    this.cpuProfDir = cpuProfDir;
    this.env = env;
  }

  /** A nats-server as {@link benchNatsServer} runs it, on a random port. */
  async nats(): Promise<NatsServer> {
    return this.add("server", await startNatsServer(benchNatsServer));
  }

  async redis(): Promise<RedisServer> {
    return this.add("server", await startRedisServer());
  }

  /** Starts a benchmark child process; see {@link startChild}. */
  async child(role: Role, script: string, options: Omit<ChildOptions, "cpuProfDir"> = {}): Promise<BenchChild> {
    const cpuProfDir = this.cpuProfDir && join(this.cpuProfDir, `${this.runId}-${role}`);
    const env = this.env || options.env ? { ...this.env, ...options.env } : undefined;
    return this.add(role, await startChild(script, { ...options, env, cpuProfDir }));
  }

  /** The process ids of each role started so far. */
  pids(): Partial<Record<Role, number[]>> {
    const pids: Partial<Record<Role, number[]>> = {};
    for (const { role, process } of this.processes) pids[role] = [...(pids[role] ?? []), process.pid];
    return pids;
  }

  /** The peak resident memory of each role's process, in bytes (summed if a role has several). */
  async peakRss(): Promise<Partial<Record<Role, number>>> {
    const peaks: Partial<Record<Role, number>> = {};
    for (const { role, process } of this.processes)
      peaks[role] = (peaks[role] ?? 0) + (await peakRssBytes(process.pid));
    return peaks;
  }

  async stop(): Promise<void> {
    for (const { process } of this.processes.toReversed()) await process.stop();
  }

  private add<P extends RunProcess>(role: Role, process: P): P {
    this.processes.push({ role, process });
    return process;
  }
}

import { join } from "node:path";
import { type NatsServer, startNatsServer } from "../test/support/nats-server.js";
import { type BenchChild, type ChildOptions, peakRssBytes, type RunProcess, startChild } from "./processes.js";
import { type RedisServer, startRedisServer } from "./redis-server.js";

/** The processes of a run, by what they do. */
export type Role = "client" | "worker" | "gateway" | "server";

/**
 * The processes of one run: started one by one, stopped together in reverse
 * order (clients before workers, workers before their server).
 */
export class Deployment {
  private readonly processes: { role: Role; process: RunProcess }[] = [];

  constructor(
    private readonly runId: string,
    private readonly cpuProfDir: string | undefined,
  ) {}

  /** A nats-server with JetStream on file storage (default sync), on a random port. */
  async nats(): Promise<NatsServer> {
    return this.add("server", await startNatsServer());
  }

  async redis(): Promise<RedisServer> {
    return this.add("server", await startRedisServer());
  }

  /** Starts a benchmark child process; see {@link startChild}. */
  async child(role: Role, script: string, options: Omit<ChildOptions, "cpuProfDir"> = {}): Promise<BenchChild> {
    const cpuProfDir = this.cpuProfDir && join(this.cpuProfDir, `${this.runId}-${role}`);
    return this.add(role, await startChild(script, { ...options, cpuProfDir }));
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

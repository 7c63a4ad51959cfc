import { execFileSync } from "node:child_process";
import { availableParallelism, cpus, release, totalmem } from "node:os";
import { natsServerBinary } from "../test/support/tools.ts";
import { redisServerBinary } from "./redis-server.ts";

/** What the figures were taken on. */
export interface Machine {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly natsServer: string;
  readonly redis: string;
  readonly date: string;
}

export function describeMachine(): Machine {
  const version = (binary: string, pattern: RegExp) =>
    pattern.exec(execFileSync(binary, ["--version"], { encoding: "utf8" }))?.[1] ?? "unknown";
  return {
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGiB: totalmem() / 2 ** 30,
    kernel: `Linux ${release()}`,
    node: process.version,
    natsServer: version(natsServerBinary(), /(v\d+\.\d+\.\d+)/),
    redis: version(redisServerBinary, /v=(\d+\.\d+\.\d+)/),
    date: new Date().toISOString(),
  };
}

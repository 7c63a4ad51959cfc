import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../test/support/nats-server.ts";
import { repoRoot } from "../test/support/tools.ts";
import { type RunProcess, terminate } from "./processes.ts";

/** Debian's redis-server, installed by bench/install-redis.sh. */
export const redisServerBinary = "/usr/bin/redis-server";

/** A redis-server on 127.0.0.1, without persistence. */
export interface RedisServer extends RunProcess {
  readonly port: number;
}

/** Installs redis-server with bench/install-redis.sh unless it is there. */
export function ensureRedisServer(): void {
  if (existsSync(redisServerBinary)) return;
  execFileSync("bash", [join(repoRoot, "bench", "install-redis.sh")], { stdio: "inherit" });
}

/** Starts redis-server on a random loopback port, RDB and AOF off, in a temporary directory. */
export async function startRedisServer(): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), "taskwire-bench-redis-"));
  const port = await freePort();
  const child = spawn(
    redisServerBinary,
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let output = "";
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout?.on("data", (chunk: Buffer) => {
        output = (output + chunk.toString()).slice(-8_000);
        if (output.includes("Ready to accept connections")) resolve();
      });
      child.once("error", reject);
      child.once("exit", (code) =>
        reject(new Error(`redis-server exited (code ${code}) before it was ready:\n${output}`)),
      );
    });
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  let stopped: Promise<void> | undefined;
  return {
    port,
    pid: child.pid ?? 0,
    stop() {
      stopped ??= terminate(child).then(() => rm(dir, { recursive: true, force: true }));
      return stopped;
    },
  };
}

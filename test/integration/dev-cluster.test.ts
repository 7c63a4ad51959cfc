import { execFile, spawn } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exampleDigest } from "../support/deployment.ts";
import { follow } from "../support/follow.ts";
import { freePort } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);
const taskwireArgs = (...args: string[]) => ["--conditions=taskwire-source", join(repoRoot, "cli/main.ts"), ...args];

/** Whether a TCP port on 127.0.0.1 can be listened on now. */
const isFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });

/** The first of `count` consecutive free ports (a cluster's client and route ports). */
async function freePorts(count: number): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    const ports = Array.from({ length: count }, (_, i) => base + i);
    if ((await Promise.all(ports.map(isFree))).every(Boolean)) return base;
  }
  throw new Error(`no ${count} consecutive free ports found`);
}

/** The pid of the nats-server whose data directory is `dir`, from /proc. */
async function natsServerOf(dir: string): Promise<number> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const args = (await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")).split("\0");
    if (args[0]?.endsWith("nats-server") && args.includes(dir)) return Number(entry);
  }
  throw new Error(`no nats-server with data in ${dir}`);
}

describe("`taskwire dev --cluster 3`", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-dev-cluster-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("runs three nats-servers, the gateway and the workers, with R3 streams; a task runs with a node down", async () => {
    const base = await freePorts(6);
    const config = join(dir, "taskwire.yaml");
    await writeFile(
      config,
      `nats:
  url: nats://127.0.0.1:${base}
  dataDir: ${join(dir, "nats")}
gateway:
  port: ${await freePort()}
  services: [${join(repoRoot, "examples/gen/example/v1/hash_taskwire.ts")}]
worker:
  pools:
    - name: hasher
      module: ${join(repoRoot, "examples/hash/hash-worker.ts")}
`,
    );
    const dev = follow(
      spawn(process.execPath, taskwireArgs("dev", "--cluster", "3", "--config", config), { cwd: dir }),
    );
    try {
      const urls = [0, 1, 2].map((i) => `nats://127.0.0.1:${base + i}`);
      await dev.until(`nats-server cluster of 3 on ${urls.join(", ")}`);
      await dev.until("workers ready: hasher (1 process: hasher)", 90_000);
      const submit = (text: string) =>
        run(
          process.execPath,
          taskwireArgs(
            "submit",
            "hasher/Digest",
            "--json",
            JSON.stringify({ text, rounds: 2 }),
            "--wait",
            "--config",
            config,
          ),
          { cwd: dir, timeout: 60_000 },
        );
      expect(JSON.parse((await submit("first")).stdout)).toMatchObject({ hex: exampleDigest("first", 2) });

      const nc = await connect({ servers: urls });
      try {
        const jsm = await jetstreamManager(nc);
        for (const stream of ["TASKS_hasher", "KV_taskwire_status", "INDEX_hasher", "KV_taskwire_workers"]) {
          expect({ stream, replicas: (await jsm.streams.info(stream)).config.num_replicas }).toEqual({
            stream,
            replicas: 3,
          });
        }
      } finally {
        await nc.close();
      }
      // One node of three down: a majority remains, and tasks still run. A gateway or worker
      // that was on it reconnects to another; meanwhile a submit is UNAVAILABLE, nothing
      // done, and is sent again as any client would.
      process.kill(await natsServerOf(join(dir, "nats", "n2")), "SIGKILL");
      const second = await poll(
        () =>
          submit("second").catch((error: { stderr?: string }) => {
            if (/is unavailable/.test(error.stderr ?? "")) return undefined;
            throw error;
          }),
        60_000,
        500,
      );
      expect(JSON.parse(second.stdout)).toMatchObject({ hex: exampleDigest("second", 2) });
    } finally {
      dev.kill();
      // Its nats-servers stop before it exits: then their data may be removed.
      await dev.exited;
    }
    expect(await dev.exited, dev.output()).toEqual({ code: 0, signal: null });
  }, 180_000);
});

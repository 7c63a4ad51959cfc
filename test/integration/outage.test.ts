import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHashServiceClient, hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { createClient } from "../../sdk/client/create-client.ts";
import { follow } from "../support/follow.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";
import { repoRoot } from "../support/tools.ts";

const taskwireArgs = (...args: string[]) => ["--conditions=taskwire-source", join(repoRoot, "cli/main.ts"), ...args];

/** How long NATS stays down while the gateway and the workers start: as long as a deploy's restart. */
const outageMs = 40_000;

/** The gateway's health over Connect JSON: "SERVING", "NOT_SERVING", or why it did not answer. */
async function health(url: string): Promise<string> {
  try {
    const response = await fetch(`${url}/grpc.health.v1.Health/Check`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    return ((await response.json()) as { status?: string }).status ?? "SERVING";
  } catch (error) {
    return `unanswered: ${(error as Error).message}`;
  }
}

/**
 * A deploy that starts the gateway and the workers while nats-server is down:
 * they wait for it, say so, and serve once it is back; none of it is a crash.
 * A supervisor that does give a pool up exits non-zero, so that a service
 * manager starts it again.
 */
describe("processes ride out a NATS outage", () => {
  let nats: NatsServer;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-outage-"));
    nats = await startNatsServer();
  }, 30_000);

  afterAll(async () => {
    await nats?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it("a gateway and workers started while NATS is down wait for it, then serve; no crash is counted", async () => {
    await nats.kill("SIGTERM");
    const config = join(dir, "taskwire.yaml");
    await writeFile(
      config,
      `nats:
  url: ${nats.url}
gateway:
  port: 0
  services: [${join(repoRoot, "examples/gen/example/v1/hash_taskwire.ts")}]
worker:
  crashLoopLimit: 0 # a single crash would give the pool up
  pools:
    - name: hasher
      module: ${join(repoRoot, "examples/hash/hash-worker.ts")}
      processes: 2
`,
    );
    const gateway = follow(spawn(process.execPath, taskwireArgs("gateway", "--config", config), { cwd: dir }));
    const workers = follow(spawn(process.execPath, taskwireArgs("worker", "--config", config), { cwd: dir }));
    try {
      const listening = (await gateway.until(/taskwire gateway on (http:\/\/\S+)/)) as RegExpExecArray;
      const url = listening[1] as string;
      await gateway.until(`taskwire gateway: waiting for NATS at ${nats.url}: connection refused`);
      await workers.until(`worker hasher-0: waiting for NATS at ${nats.url}: connection refused`);
      await workers.until(`worker hasher-1: waiting for NATS at ${nats.url}: connection refused`);
      expect(await health(url)).toBe("NOT_SERVING");

      await sleep(outageMs);
      expect(await health(url)).toBe("NOT_SERVING");
      await nats.restart();

      await poll(async () => ((await health(url)) === "SERVING" ? true : undefined), 30_000);
      await workers.until("taskwire worker: ready: hasher (2 processes: hasher)", 30_000);
      const client = await createClient({ gateway: url, services: [hashService] });
      try {
        const task = await createHashServiceClient(client).digest({ text: "after the outage" });
        expect((await task.result()).hex).toMatch(/^[0-9a-f]{64}$/);
      } finally {
        await client.close();
      }
      expect(workers.output()).not.toMatch(/exited with|restarting|crashed/);
    } finally {
      gateway.kill();
      workers.kill();
    }
    expect(await gateway.exited).toEqual({ code: 0, signal: null });
    expect(await workers.exited).toEqual({ code: 0, signal: null });
  }, 120_000);

  it("a supervisor that gives a pool up stops and exits 1, naming the pool and why", async () => {
    // A server that refuses these workers: each start fails (a crash), unlike one that does not answer.
    const guarded = await startNatsServer({
      config: 'authorization { users = [ { user: app, password: "not-given" } ] }',
    });
    try {
      const config = join(dir, "refused.yaml");
      await writeFile(
        config,
        `nats:
  url: ${guarded.url}
worker:
  restartBackoffMs: 50
  crashLoopLimit: 2
  crashLoopWindowMs: 60000
  pools:
    - name: hasher
      module: ${join(repoRoot, "examples/hash/hash-worker.ts")}
`,
      );
      const workers = follow(spawn(process.execPath, taskwireArgs("worker", "--config", config), { cwd: dir }));
      expect(await workers.exited, workers.output()).toEqual({ code: 1, signal: null });
      const output = workers.output();
      expect(output).toContain("worker hasher-0: could not start: [unavailable] cannot connect to NATS at");
      expect(output.match(/restarting hasher-0/g)).toHaveLength(2);
      expect(output).toContain(
        'taskwire: pool "hasher": hasher-0 crashed 3 times within 60000 ms: it is not restarted',
      );
    } finally {
      await guarded.stop();
    }
  }, 60_000);
});

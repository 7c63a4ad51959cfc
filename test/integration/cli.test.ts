import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect as connectTcp } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { implementReportService, reportService } from "../../examples/gen/example/v1/report_taskwire.ts";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import type { TaskHandle } from "../../sdk/core/task-client.ts";
import { createWorker } from "../../worker-runtime/create-worker.ts";
import { freePort, type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";
import { environmentVariable, processWithArgs } from "../support/proc.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);
/** node's arguments to run the taskwire command from source. */
const taskwireArgs = (...args: string[]) => ["--conditions=taskwire-source", "cli/main.ts", ...args];
const examples = (path: string) => join(repoRoot, path);

/** A taskwire.yaml in a temporary directory, on free ports. */
async function writeConfig(dir: string, nats: string, options: { processes: number; concurrency?: number }) {
  const gatewayPort = await freePort();
  const path = join(dir, "taskwire.yaml");
  await writeFile(
    path,
    `nats:
  url: ${nats}
  dataDir: ${join(dir, "nats")}
gateway:
  host: 127.0.0.1
  port: ${gatewayPort}
  services:
    - ${examples("examples/gen/example/v1/hash_taskwire.ts")}
    - ${examples("examples/gen/example/v1/report_taskwire.ts")}
worker:
  shutdownGraceMs: 10000
  pools:
    - name: hasher
      module: ${examples("examples/hash/hash-worker.ts")}
      processes: ${options.processes}
    - name: reports
      module: ${examples("examples/report/report-worker.ts")}
      processes: ${options.processes}${options.concurrency ? `\n      concurrency: ${options.concurrency}` : ""}
`,
  );
  return { path, gatewayUrl: `http://127.0.0.1:${gatewayPort}` };
}

/** Collects a child's output and resolves `until(text)` once it has printed `text`. */
function follow(child: ChildProcess) {
  let output = "";
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal })),
  );
  return {
    exited,
    output: () => output,
    until: (text: string) =>
      poll(async () => {
        if (child.exitCode !== null) throw new Error(`exited early:\n${output}`);
        return output.includes(text) ? true : undefined;
      }, 60_000),
  };
}

const isListening = (url: string) =>
  new Promise<boolean>((resolve) => {
    const { hostname, port } = new URL(url);
    const socket = connectTcp(Number(port), hostname);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });

describe("the taskwire command", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-cli-"));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("`npm start` runs nats-server, the gateway and the workers; submit, watch and status work against it", async () => {
    const natsUrl = `nats://127.0.0.1:${await freePort()}`;
    const config = await writeConfig(dir, natsUrl, { processes: 1 });
    // Its own process group, as in a terminal: Ctrl-C signals the whole group.
    const dev = spawn("npm", ["start", "--", "--config", config.path], { cwd: repoRoot, detached: true });
    const devOut = follow(dev);
    try {
      await devOut.until("curl -s");
      // It names its pools and their worker types, and suggests a task of the configuration's own.
      expect(devOut.output()).toContain(
        'workers ready: hasher (1 process: hasher), reports (1 process: reports)\nTry:\n  npm run taskwire -- submit hasher/Digest --json \'{"text":"hello"}\' --wait',
      );
      // It shares the machine with the gateway and workers: Go code on half the cores.
      const server = await processWithArgs("-js", "-p", new URL(natsUrl).port);
      expect(await environmentVariable(server, "GOMAXPROCS")).toBe(
        process.env.GOMAXPROCS ?? String(Math.max(1, Math.floor(availableParallelism() / 2))),
      );
      const taskwire = (...args: string[]) =>
        run("npm", ["run", "--silent", "taskwire", "--", ...args, "--config", config.path], { cwd: repoRoot });

      const waited = await taskwire("submit", "hasher/Digest", "--json", '{"text":"hello"}', "--wait");
      expect(JSON.parse(waited.stdout)).toEqual({
        hex: createHash("sha256").update("hello").digest("hex"),
        rounds: 1,
      });

      const submitted = await taskwire("submit", "reports/Generate", "--json", '{"title":"cli","sections":2}');
      const id = submitted.stdout.trim();
      expect(id).toMatch(/^reports\.[0-9A-Z]{26}$/);
      const watched = await taskwire("watch", id);
      expect(watched.stdout.trim().split("\n").at(-1)).toMatch(/ SUCCEEDED 100%/);
      const status = JSON.parse((await taskwire("status", id)).stdout) as {
        state: string;
        result: { sections: number };
      };
      expect(status.state).toBe("TASK_STATE_SUCCEEDED");
      expect(status.result.sections).toBe(2);

      await expect(taskwire("submit", "hasher/Digest", "--json", "{not json")).rejects.toThrow(
        /--json is not valid JSON/,
      );

      // From a directory with no taskwire.yaml, the gateway alone: it describes its task
      // types through reflection.
      const empty = await mkdtemp(join(dir, "empty-"));
      const bare = (...args: string[]) =>
        run(process.execPath, [`--conditions=taskwire-source`, join(repoRoot, "cli/main.ts"), ...args], { cwd: empty });
      const gw = ["--gateway", config.gatewayUrl];
      const viaGateway = await bare("submit", "hasher/Digest", "--json", '{"text":"gw"}', "--wait", ...gw);
      expect(JSON.parse(viaGateway.stdout)).toEqual({
        hex: createHash("sha256").update("gw").digest("hex"),
        rounds: 1,
      });
      const gwId = (
        await bare("submit", "reports/Generate", "--json", '{"title":"gw","sections":1}', ...gw)
      ).stdout.trim();
      expect((await bare("watch", gwId, ...gw)).stdout.trim().split("\n").at(-1)).toMatch(/ SUCCEEDED 100%/);
      const gwStatus = JSON.parse((await bare("status", gwId, ...gw)).stdout);
      expect(gwStatus).toMatchObject({
        state: "TASK_STATE_SUCCEEDED",
        result: { "@type": "type.googleapis.com/example.v1.GenerateResponse", sections: 1 },
      });
      await expect(bare("submit", "hasher/Digst", "--json", "{}", ...gw)).rejects.toMatchObject({
        stderr: `taskwire: the gateway at ${config.gatewayUrl} serves no task "hasher/Digst"; the tasks it serves: hasher/Digest, reports/Generate\n`,
      });
      await expect(bare("status", gwId)).rejects.toMatchObject({
        stderr: `taskwire: no taskwire.yaml in ${empty}: pass --gateway <url> (e.g. http://127.0.0.1:8080) or --config <file>, or write a new project with "taskwire init"\n`,
      });

      // A JSONL file, one request per line, resumable under a checkpoint.
      const file = join(dir, "tasks.jsonl");
      await writeFile(file, Array.from({ length: 300 }, (_, i) => `{"text":"line-${i}"}\n`).join(""));
      const bulk = await taskwire("submit", "hasher/Digest", "--from", file, "--checkpoint", "cli-load");
      expect(bulk.stdout).toMatch(/^submitted 300 of 300 tasks in [\d.]+s \(0 duplicates, 0 refused\)$/m);
      expect(bulk.stderr).toContain("300 of 300 submitted"); // plain lines: stderr is not a terminal
      const rerun = await taskwire("submit", "hasher/Digest", "--from", file, "--checkpoint", "cli-load");
      expect(rerun.stdout).toMatch(/submitted 0 of 300 tasks .*resumed after line 300/);
      const broken = join(dir, "broken.jsonl");
      await writeFile(broken, '{"text":"fine"}\n{oops\n');
      await expect(taskwire("submit", "hasher/Digest", "--from", broken)).rejects.toThrow(
        /broken.jsonl:2: not valid JSON.*; nothing was submitted/,
      );
    } catch (error) {
      if (dev.pid) process.kill(-dev.pid, "SIGINT");
      throw error;
    }
    // Ctrl-C while a task runs: the workers finish and record it before nats-server stops.
    const direct = await createClient({ nats: natsUrl, services: [reportService] });
    let interrupted = false;
    try {
      const task = await direct.submitTask(reportService.methods.generate, {
        title: "ctrl-c",
        sections: 4,
        sectionMs: 250,
      });
      await poll(async () => ((await task.status()).state === TaskState.RUNNING ? true : undefined));
      if (dev.pid) process.kill(-dev.pid, "SIGINT");
      interrupted = true;
      const result = await Promise.race([
        task.result(),
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error(`no result after Ctrl-C; output:\n${devOut.output()}`)), 30_000),
        ),
      ]);
      expect(result.sections).toBe(4);
    } finally {
      if (!interrupted && dev.pid) process.kill(-dev.pid, "SIGINT");
      await direct.close();
    }
    // npm itself exits at once on SIGINT; taskwire goes on stopping its parts, then says so.
    await devOut.exited;
    await poll(async () => (devOut.output().includes("taskwire: stopped") ? true : undefined)).catch((error) => {
      throw new Error(`${error.message}; output:\n${devOut.output()}`);
    });
    expect(await isListening(natsUrl.replace("nats:", "http:"))).toBe(false);
    expect(await isListening(config.gatewayUrl)).toBe(false);
  }, 120_000);

  it("says NATS is unreachable, and how to start it, when nothing listens at nats.url", async () => {
    const config = await writeConfig(dir, `nats://127.0.0.1:${await freePort()}`, { processes: 1 });
    const gateway = run(process.execPath, taskwireArgs("gateway", "--config", config.path), { cwd: repoRoot });
    await expect(gateway).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringMatching(
        /taskwire: cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+: .*\(is nats-server running\? "taskwire dev" starts one\)/,
      ),
    });
  }, 30_000);

  it("says nats-server is missing, and how to get it", async () => {
    const config = await writeConfig(dir, `nats://127.0.0.1:${await freePort()}`, { processes: 1 });
    const dev = run(process.execPath, taskwireArgs("dev", "--config", config.path), {
      cwd: repoRoot,
      env: { ...process.env, TASKWIRE_NATS_SERVER: join(dir, "no-such-nats-server") },
    });
    await expect(dev).rejects.toMatchObject({
      code: 1,
      stderr: expect.stringContaining(
        `taskwire: TASKWIRE_NATS_SERVER=${join(dir, "no-such-nats-server")} is not an executable file`,
      ),
    });
  }, 30_000);

  describe("`taskwire worker` on SIGTERM", () => {
    let nats: NatsServer;
    let client: TaskwireClient;

    beforeAll(async () => {
      nats = await startNatsServer();
      client = await createClient({ nats: nats.url, services: [reportService] });
    });

    afterAll(async () => {
      await client?.close();
      await nats?.stop();
    });

    it("finishes the tasks in flight, fetches nothing new and exits within the grace period", async () => {
      const config = await writeConfig(dir, nats.url, { processes: 1, concurrency: 2 });
      const supervisor = spawn(process.execPath, taskwireArgs("worker", "--config", config.path), { cwd: repoRoot });
      const out = follow(supervisor);
      // It says when it is ready, with each pool's processes and worker types.
      await out.until("taskwire worker: ready: hasher (1 process: hasher), reports (1 process: reports)");
      // Six one-second tasks for two slots: two run, four wait.
      const tasks: TaskHandle<typeof reportService.methods.generate.output>[] = [];
      for (let i = 0; i < 6; i++)
        tasks.push(
          await client.submitTask(reportService.methods.generate, { title: `t${i}`, sections: 5, sectionMs: 200 }),
        );
      const running = await poll(async () => {
        const statuses = await Promise.all(tasks.map((t) => t.status()));
        const ids = statuses.filter((s) => s.state === TaskState.RUNNING).map((s) => s.taskId);
        return ids.length === 2 ? ids : undefined;
      });

      supervisor.kill("SIGTERM");
      // No wall-clock bound on the drain: the records below say that it ended within the
      // grace period (10 s), for a task still running at its end is aborted and given back
      // (PENDING again, no worker), not SUCCEEDED on its first attempt.
      const exit = await out.exited;
      expect(exit, out.output()).toEqual({ code: 0, signal: null });

      const after = await Promise.all(tasks.map((t) => t.status()));
      for (const status of after) {
        if (running.includes(status.taskId)) {
          expect(status).toMatchObject({ state: TaskState.SUCCEEDED, attempt: 1, workerId: "reports-0" });
        } else {
          expect(status).toMatchObject({ state: TaskState.PENDING, workerId: "" });
        }
      }

      // Nothing was lost: another worker runs the rest.
      const worker = await createWorker({
        nats: nats.url,
        services: [implementReportService({ generate: async ({ title, sections }) => ({ body: title, sections }) })],
      });
      try {
        const results = await Promise.all(tasks.map((t) => t.result()));
        expect(results.map((r) => r.sections)).toEqual([5, 5, 5, 5, 5, 5]);
      } finally {
        await worker.close();
      }
    }, 60_000);
  });
});

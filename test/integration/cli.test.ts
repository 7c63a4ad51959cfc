import { execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { connect as connectTcp } from "node:net";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { implementReportService, reportService } from "../../examples/gen/example/v1/report_taskwire.ts";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import type { TaskHandle } from "../../sdk/core/task-client.ts";
import { createGateway } from "../../server/create-gateway.ts";
import { FakeTaskBackend } from "../../server/test-support/fake-task-backend.ts";
import { createWorker } from "../../worker-runtime/create-worker.ts";
import { follow } from "../support/follow.ts";
import { freePort, type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";
import { environmentVariable, processWithArgs } from "../support/proc.ts";
import { natsServerBinary, repoRoot } from "../support/tools.ts";

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

/** A process as /proc shows it: its parent, state and start time (to tell a reused pid). */
async function processTable(): Promise<Map<number, { ppid: number; state: string; start: string; args: string }>> {
  const table = new Map<number, { ppid: number; state: string; start: string; args: string }>();
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields.length < 20) continue;
    const args = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    table.set(Number(entry), {
      ppid: Number(fields[1]),
      state: fields[0] ?? "",
      start: fields[19] ?? "",
      args: args.split("\0").join(" ").trim(),
    });
  }
  return table;
}

/** `pid` and every process descending from it, with their start times. */
async function processTree(pid: number): Promise<Map<number, { start: string; args: string }>> {
  const table = await processTable();
  const tree = new Map<number, { start: string; args: string }>();
  const visit = (parent: number) => {
    const own = table.get(parent);
    if (!own || tree.has(parent)) return;
    tree.set(parent, own);
    for (const [child, info] of table) if (info.ppid === parent) visit(child);
  };
  visit(pid);
  return tree;
}

/** Those of `tree` still running: neither gone, nor a zombie, nor their pid reused. */
async function stillRunning(tree: Map<number, { start: string; args: string }>): Promise<string[]> {
  const table = await processTable();
  return [...tree]
    .filter(([pid, { start }]) => {
      const now = table.get(pid);
      return now !== undefined && now.state !== "Z" && now.start === start;
    })
    .map(([pid, { args }]) => `${pid} ${args}`);
}

/** Waits until none of `tree` runs; on failure, SIGKILLs those left and names them. */
async function allGone(tree: Map<number, { start: string; args: string }>, output: () => string) {
  try {
    await poll(async () => ((await stillRunning(tree)).length === 0 ? true : undefined), 30_000, 200);
  } catch (error) {
    const left = await stillRunning(tree);
    for (const line of left) process.kill(Number(line.split(" ")[0]), "SIGKILL");
    throw new Error(`${(error as Error).message}; still running:\n${left.join("\n")}\noutput:\n${output()}`);
  }
}

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
      // It serves the web console on the gateway's port (built on first use), and says where.
      expect(devOut.output()).toContain(`\nconsole: ${config.gatewayUrl}/\n`);
      const page = await fetch(`${config.gatewayUrl}/`);
      expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
      expect(await page.text()).toContain('<div id="app"></div>');
      // It serves the workers' metrics (on a free port: the config names none), and says where, with the gateway's.
      const metrics = /^metrics: (\S+) \(gateway\), (\S+) \(workers\)$/m.exec(devOut.output());
      expect(metrics?.[1]).toBe(`${config.gatewayUrl}/metrics`);
      expect(await (await fetch(metrics?.[2] ?? "")).text()).toMatch(
        /^taskwire_tasks_started_total\{worker_type="hasher",method="Digest"\} 0$/m,
      );
      expect(await (await fetch(metrics?.[1] ?? "")).text()).toMatch(
        /^taskwire_tasks_submitted_total\{worker_type="reports",method="Generate"\} 0$/m,
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

  it("with --gateway alone, names the gateway that cannot answer, and why", async () => {
    const empty = await mkdtemp(join(dir, "no-gateway-"));
    const bare = (...args: string[]) =>
      run(process.execPath, ["--conditions=taskwire-source", join(repoRoot, "cli/main.ts"), ...args], { cwd: empty });
    const nobody = `http://127.0.0.1:${await freePort()}`;
    await expect(bare("submit", "hasher/Digest", "--json", "{}", "--gateway", nobody)).rejects.toMatchObject({
      stderr: expect.stringMatching(
        new RegExp(`^taskwire: cannot ask the gateway at ${nobody} for its task types: connect ECONNREFUSED`),
      ),
    });
    await expect(bare("watch", "hasher.X", "--gateway", nobody)).rejects.toMatchObject({
      stderr: expect.stringMatching(
        new RegExp(`^taskwire: the gateway at ${nobody} is unavailable: connect ECONNREFUSED`),
      ),
    });
    await expect(bare("status", "hasher.X", "--gateway", "127.0.0.1:8080")).rejects.toMatchObject({
      stderr: 'taskwire: --gateway "127.0.0.1:8080" is not an http:// or https:// URL, e.g. http://127.0.0.1:8080\n',
    });
    const gateway = await createGateway({ backend: new FakeTaskBackend(), reflection: false });
    try {
      await expect(bare("status", "hasher.X", "--gateway", gateway.url)).rejects.toMatchObject({
        stderr: `taskwire: cannot ask the gateway at ${gateway.url} for its task types: it serves no gRPC reflection (createGateway's reflection: false); without --gateway, the generated modules of taskwire.yaml name the task types\n`,
      });
    } finally {
      await gateway.close();
    }
  });

  it("a SIGKILL of `taskwire worker` while a handler module loads leaves no worker process", async () => {
    const root = await mkdtemp(join(dir, "loading-"));
    // A module whose import never ends, as one awaiting a database at load time.
    await writeFile(join(root, "slow-worker.ts"), "setInterval(() => {}, 1000);\nawait new Promise(() => {});\n");
    const config = join(root, "taskwire.yaml");
    await writeFile(
      config,
      `nats:\n  url: nats://127.0.0.1:${await freePort()}\nworker:\n  pools:\n    - name: slow\n      module: ${join(root, "slow-worker.ts")}\n      processes: 2\n`,
    );
    const supervisor = spawn(process.execPath, taskwireArgs("worker", "--config", config), { cwd: repoRoot });
    const out = follow(supervisor);
    const tree = await poll(async () => {
      const found = await processTree(supervisor.pid ?? 0);
      const workers = [...found.values()].filter(({ args }) => args.includes("worker-process.ts"));
      return workers.length === 2 ? found : undefined;
    });
    supervisor.kill("SIGKILL");
    await allGone(tree, out.output);
  }, 60_000);

  describe("run by npx, the way an installed package runs", () => {
    /**
     * `npm exec -- taskwire dev` in a project whose node_modules/.bin/taskwire runs this
     * repository's command; resolves once the workers are ready, with every process
     * that descends from npm's.
     */
    async function npxDev() {
      const root = await mkdtemp(join(dir, "npx-"));
      await writeConfig(root, `nats://127.0.0.1:${await freePort()}`, { processes: 1 });
      await writeFile(join(root, "package.json"), '{"name":"npx-project","version":"1.0.0","private":true}\n');
      await mkdir(join(root, "node_modules/.bin"), { recursive: true });
      const bin = join(root, "node_modules/.bin/taskwire");
      const main = join(repoRoot, "cli/main.ts");
      await writeFile(bin, `#!/bin/sh\nexec '${process.execPath}' --conditions=taskwire-source '${main}' "$@"\n`);
      await chmod(bin, 0o755);
      const npx = spawn("npm", ["exec", "--", "taskwire", "dev"], {
        cwd: root,
        env: { ...process.env, TASKWIRE_NATS_SERVER: natsServerBinary() },
      });
      const out = follow(npx);
      await out.until("workers ready:");
      const tree = await processTree(npx.pid ?? 0);
      const commands = [...tree.values()].map(({ args }) => args);
      // npm runs the bin through `sh -c`; dash (Debian's sh) stays between npm and taskwire.
      expect(commands).toEqual(
        expect.arrayContaining([
          expect.stringContaining(`${main} dev`),
          expect.stringContaining("nats-server -js"),
          expect.stringContaining("worker-process.ts"),
        ]),
      );
      expect(commands.filter((args) => args.includes("worker-process.ts"))).toHaveLength(2);
      const taskwire = [...tree].find(([, { args }]) => args.includes(`${main} dev`))?.[0] ?? 0;
      return { npx, out, tree, taskwire };
    }

    it("`kill <npx pid>` stops taskwire, its workers and its nats-server", async () => {
      const { npx, out, tree } = await npxDev();
      // npm passes SIGTERM on to `sh -c`, which dies of it without passing it on.
      npx.kill("SIGTERM");
      await allGone(tree, out.output);
      expect(out.output()).toContain("taskwire: stopped");
    }, 120_000);

    it("SIGKILL of taskwire leaves neither its workers nor its nats-server", async () => {
      const { out, tree, taskwire } = await npxDev();
      process.kill(taskwire, "SIGKILL");
      await allGone(tree, out.output);
    }, 120_000);
  });
});

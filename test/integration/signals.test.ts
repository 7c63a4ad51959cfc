import { type ChildProcess, spawn } from "node:child_process";
import { chmod, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { freePort, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";
import { repoRoot } from "../support/tools.ts";

/** A process as /proc shows it: its id, its start time (so that a reused id is told apart) and its command line. */
interface Proc {
  readonly pid: number;
  readonly started: string;
  readonly command: string;
}

/** The process, or undefined once it is gone (a zombie counts as gone: it runs nothing). */
async function procOf(pid: number): Promise<Proc | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // After "pid (comm) ": state, ppid, ... ; the start time is field 22.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (fields[0] === "Z" || fields[0] === "X") return undefined;
    const command = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").join(" ").trim();
    return { pid, started: fields[19] as string, command };
  } catch {
    return undefined;
  }
}

/** Every live descendant of `pid` (Linux' /proc/<pid>/task/<tid>/children). */
async function descendants(pid: number): Promise<Proc[]> {
  const found: Proc[] = [];
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => []);
  for (const task of tasks) {
    const children = await readFile(`/proc/${pid}/task/${task}/children`, "utf8").catch(() => "");
    for (const child of children.split(" ").filter(Boolean).map(Number)) {
      const proc = await procOf(child);
      if (proc) found.push(proc, ...(await descendants(child)));
    }
  }
  return found;
}

const stillRunning = async (procs: readonly Proc[]) => {
  const left: Proc[] = [];
  for (const proc of procs) if ((await procOf(proc.pid))?.started === proc.started) left.push(proc);
  return left;
};

/** Waits until none of `procs` runs; the error names those that still do. */
async function allGone(procs: readonly Proc[], timeoutMs: number): Promise<void> {
  await poll(async () => ((await stillRunning(procs)).length === 0 ? true : undefined), timeoutMs).catch(
    async (error: Error) => {
      const left = await stillRunning(procs);
      throw new Error(`${error.message}; still running:\n${left.map((p) => `  ${p.pid} ${p.command}`).join("\n")}`);
    },
  );
}

/** A child's output, kept for error messages. */
function outputOf(child: ChildProcess): () => string {
  let output = "";
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  return () => output;
}

const taskwire = (...args: string[]) => ["--conditions=taskwire-source", join(repoRoot, "cli/main.ts"), ...args];

/**
 * What the supervisor does for its workers, and `taskwire dev` for its nats-server, when
 * they are killed where no handler runs (SIGKILL). npm's part (`kill <npx pid>`) is in
 * cli.test.ts.
 */
describe("processes whose starter is killed end too", () => {
  let dir: string;
  /** Everything a test saw running, SIGKILLed after it if still there, so that a failure leaks nothing. */
  let seen: Proc[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-signals-"));
  });

  afterEach(async () => {
    for (const proc of await stillRunning(seen)) process.kill(proc.pid, "SIGKILL");
    seen = [];
  });

  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("workers of a SIGKILLed supervisor end within the grace period, even when NATS does not answer", async () => {
    const nats = await startNatsServer();
    try {
      const config = join(dir, "worker.yaml");
      await writeFile(
        config,
        `nats:
  url: ${nats.url}
worker:
  shutdownGraceMs: 2000
  pools:
    - name: hasher
      module: ${join(repoRoot, "examples/hash/hash-worker.ts")}
      processes: 2
`,
      );
      const supervisor = spawn(process.execPath, taskwire("worker", "--config", config), { cwd: dir });
      const output = outputOf(supervisor);
      await poll(async () => {
        if (supervisor.exitCode !== null) throw new Error(`exited:\n${output()}`);
        return output().includes("ready:") ? true : undefined;
      }, 60_000);
      const workers = await descendants(supervisor.pid as number);
      seen = workers;
      expect(workers.filter((p) => p.command.includes("worker-process.ts"))).toHaveLength(2);
      // A partition: the connection stays open, nothing answers. Their drain would wait minutes.
      await nats.kill("SIGSTOP");
      supervisor.kill("SIGKILL");
      const killedAt = Date.now();
      await allGone(workers, 15_000);
      // The grace period (2 s) and a second, as the supervisor would have allowed them.
      expect(Date.now() - killedAt).toBeGreaterThanOrEqual(2_500);
      expect(output()).toContain("its supervisor is gone and draining took over 3000ms: exiting");
    } finally {
      await nats.kill("SIGCONT");
      await nats.stop();
    }
  }, 90_000);

  it("a SIGKILL of `taskwire dev` while its nats-server starts stops that nats-server", async () => {
    // A nats-server that never listens: `taskwire dev` waits for it until it is killed.
    const fake = join(dir, "slow-nats-server");
    await writeFile(fake, "#!/bin/sh\nexec sleep 600\n");
    await chmod(fake, 0o755);
    const config = join(dir, "dev.yaml");
    await writeFile(
      config,
      `nats:
  url: nats://127.0.0.1:${await freePort()}
  dataDir: ${join(dir, "nats")}
gateway:
  host: 127.0.0.1
  port: ${await freePort()}
  services:
    - ${join(repoRoot, "examples/gen/example/v1/hash_taskwire.ts")}
worker:
  pools:
    - name: hasher
      module: ${join(repoRoot, "examples/hash/hash-worker.ts")}
`,
    );
    const dev = spawn(process.execPath, taskwire("dev", "--config", config), {
      cwd: dir,
      env: { ...process.env, TASKWIRE_NATS_SERVER: fake },
    });
    const output = outputOf(dev);
    const natsServer = await poll(async () => {
      if (dev.exitCode !== null) throw new Error(`exited:\n${output()}`);
      return (await descendants(dev.pid as number)).find((p) => p.command === "sleep 600");
    });
    seen = [natsServer];
    dev.kill("SIGKILL");
    await allGone([natsServer], 10_000);
  }, 60_000);

  it("`kill <npm pid>` of a script run through scripts/run.mjs stops the script's command", async () => {
    // As `npm start` in this repository: npm, then `sh -c`, then run.mjs, then the command.
    await writeFile(
      join(dir, "package.json"),
      JSON.stringify({
        name: "hold",
        private: true,
        scripts: { hold: `node ${join(repoRoot, "scripts/run.mjs")} sleep 600` },
      }),
    );
    const npm = spawn("npm", ["run", "--silent", "hold"], { cwd: dir });
    const output = outputOf(npm);
    const command = await poll(async () => {
      if (npm.exitCode !== null) throw new Error(`exited:\n${output()}`);
      return (await descendants(npm.pid as number)).find((p) => p.command === "sleep 600");
    }, 30_000);
    seen = await descendants(npm.pid as number);
    npm.kill("SIGTERM");
    await allGone([command], 10_000);
  }, 60_000);
});

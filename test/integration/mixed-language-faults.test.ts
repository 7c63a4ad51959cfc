import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { provisionWorkerType } from "../../sdk/nats/provisioning.ts";
import { createSupervisor, type Supervisor } from "../../worker-runtime/create-supervisor.ts";
import { noShortfalls, shortfalls } from "../support/fault-accounting.ts";
import { runFaultSuite } from "../support/fault-suite.ts";
import { goTool } from "../support/find-binary.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { repoRoot } from "../support/tools.ts";

const tasks = 1500;
const languages = ["typescript", "python", "go"] as const;

/**
 * The fault suite (test/integration/faults.test.ts) with one worker type served
 * at once by TypeScript, Python and Go worker processes, all started by the
 * supervisor from pools with `language:`: every acknowledged task must end
 * SUCCEEDED while processes of every language and nats-server are killed with
 * SIGKILL, and every language must have run some of them and been killed. Each
 * pool logs its executions to a file of its own.
 */
describe("mixed-language fault suite: TypeScript, Python and Go workers under kill -9", () => {
  let nats: NatsServer;
  let supervisor: Supervisor;
  let client: TaskwireClient;
  let dir: string;
  const logOf = (language: string) => join(dir, `${language}.log`);
  const kills = new Map<string, number>(); // pool -> its processes ended by SIGKILL

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-mixed-faults-"));
    const goWorker = join(dir, "fault-worker");
    await promisify(execFile)(goTool(), ["build", "-o", goWorker, "./cmd/fault-worker"], {
      cwd: join(repoRoot, "test/go"),
    });
    nats = await startNatsServer({ syncAlways: true });
    // Provisioned as a deployment's gateway would, with taskwire.yaml's worker.ackWaitMs: Python
    // and Go workers provision nothing, and a task of a killed worker comes back after 1 s.
    const nc = await connect({ servers: nats.url });
    await provisionWorkerType(await jetstreamManager(nc), hashService, { ackWaitMs: 1000 });
    await nc.close();
    client = await createClient({ nats: nats.url, services: [hashService] });
    supervisor = createSupervisor({
      nats: nats.url,
      ackWaitMs: 1000,
      shutdownGraceMs: 2000,
      restartBackoffMs: 50,
      maxRestartBackoffMs: 200,
      crashLoopLimit: 1_000_000,
      pools: [
        {
          name: "typescript",
          module: "test/fixtures/fault-worker.ts",
          processes: 2,
          concurrency: 32,
          env: { FAULT_LOG: logOf("typescript") },
        },
        {
          name: "python",
          language: "python",
          command: [join(repoRoot, ".tools/venv/bin/python"), "-m", "taskwire.worker_process"],
          module: "test/fixtures/fault_worker.py",
          processes: 2,
          concurrency: 32,
          env: {
            FAULT_LOG: logOf("python"),
            PYTHONPATH: [join(repoRoot, "python"), join(repoRoot, "test/gen/python")].join(delimiter),
            // No __pycache__ beside the generated code: scripts/check-generated.sh compares those folders.
            PYTHONDONTWRITEBYTECODE: "1",
          },
        },
        {
          name: "go",
          language: "go",
          command: [goWorker],
          processes: 2,
          concurrency: 32,
          env: { FAULT_LOG: logOf("go") },
        },
      ],
      onEvent: (event) => {
        if (event.type !== "exited" || event.signal !== "SIGKILL") return;
        const pool = event.workerId.slice(0, event.workerId.lastIndexOf("-"));
        kills.set(pool, (kills.get(pool) ?? 0) + 1);
      },
    });
    await supervisor.ready;
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await supervisor?.stop();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("loses no acknowledged task, runs no unexpected one, and every language runs some", async () => {
    const run = await runFaultSuite({ nats, supervisor, client, tasks, logs: languages.map(logOf) });
    const byLanguage = await Promise.all(
      languages.map(async (language) => {
        const lines = (await readFile(logOf(language), "utf8").catch(() => "")).split("\n");
        return { language, executions: lines.filter(Boolean).length, kills: kills.get(language) ?? 0 };
      }),
    );
    const languageSummary = byLanguage.map((l) => `${l.language} ${l.executions} executions, ${l.kills} kills`);
    console.log(`mixed-language fault suite: ${run.summary}; ${languageSummary.join("; ")}`);
    expect(run.acknowledged).toBe(tasks);
    expect(run.natsRestarts).toBeGreaterThan(0);
    expect(run.workerKills).toBeGreaterThan(0);
    expect(shortfalls(run.account)).toEqual(noShortfalls);
    for (const { language, executions, kills } of byLanguage) {
      expect({ language, ran: executions > 0, killed: kills > 0 }).toEqual({ language, ran: true, killed: true });
    }
  }, 120_000);
});

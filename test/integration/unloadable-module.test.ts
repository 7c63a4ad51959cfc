import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSupervisor, type SupervisorEvent } from "../../worker-runtime/create-supervisor.ts";
import { poll } from "../support/poll.ts";
import { repoRoot } from "../support/tools.ts";

const workerProcess = join(repoRoot, "worker-runtime/worker-process.ts");

/** A pool whose handler module can never load stops at once, saying why: no restarts. */
describe("a handler module that cannot load", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-unloadable-"));
    // A TypeScript enum: not erasable, so Node's type stripping refuses the module.
    await writeFile(join(dir, "enum-worker.ts"), "enum Color { Red }\nexport const color = Color.Red;\n");
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const supervise = async (module: string) => {
    const events: SupervisorEvent[] = [];
    // Nothing listens at this NATS address: a process that got past loading its module would
    // fail to connect and be restarted, which the events would show.
    const supervisor = createSupervisor({
      nats: "nats://127.0.0.1:1",
      pools: [{ name: "broken", module, processes: 2 }],
      restartBackoffMs: 10,
      onEvent: (event) => events.push(event),
    });
    const failure = await supervisor.ready.then(
      () => undefined,
      (error: Error) => error,
    );
    await poll(async () => (events.filter((e) => e.type === "exited").length === 2 ? true : undefined));
    await supervisor.stop();
    return { failure, events };
  };

  it("is not restarted, and ready rejects naming the pool and the module", async () => {
    const { failure, events } = await supervise(join(dir, "no-such-worker.ts"));
    expect(failure?.message).toBe(
      `pool "broken": its handler module ${join(dir, "no-such-worker.ts")} cannot load (see above)`,
    );
    expect(events.filter((e) => e.type === "restarting")).toEqual([]);
    // Both processes, in whichever order they exited.
    const unloadable = events.filter((e) => e.type === "unloadable").map((e) => e.workerId);
    expect(unloadable.sort()).toEqual(["broken-0", "broken-1"]);
  });

  it("says how to run TypeScript that Node's type stripping refuses", async () => {
    const { failure, events } = await supervise(join(dir, "enum-worker.ts"));
    expect(failure?.message).toMatch(/cannot load/);
    expect(events.filter((e) => e.type === "restarting")).toEqual([]);
    // What the worker process itself says (the supervisor passes its stderr through).
    const refused = await promisify(execFile)(process.execPath, ["--conditions=taskwire-source", workerProcess], {
      env: {
        ...process.env,
        TASKWIRE_NATS: "nats://127.0.0.1:1",
        TASKWIRE_WORKER_ID: "w",
        TASKWIRE_WORKER_MODULE: join(dir, "enum-worker.ts"),
      },
    }).catch((error: { code: number; stderr: string }) => error);
    expect(refused).toMatchObject({ code: 78 });
    expect((refused as { stderr: string }).stderr).toContain(
      "TypeScript enum is not supported in strip-only mode (Node runs erasable TypeScript only",
    );
  });
});

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { declaredInConfig } from "../../cli/commands.ts";
import { loadConfig } from "../../cli/load-config.ts";
import { createTaskRegistry } from "../../sdk/core/task-registry.ts";
import { startScheduling } from "../../sdk/nats/scheduling.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { clockService, implementClockService } from "../gen/clock/v1/clock_taskwire.ts";
import { probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

/** Schedules declared in protos (applied by workers) and in taskwire.yaml (applied by gateways). */
describe("declared schedules", () => {
  let dir: string;
  let nats: NatsServer;
  let nc: NatsConnection;
  const workers: Worker[] = [];
  const notes: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-declared-"));
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
  }, 30_000);

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await nc?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const startClock = async () => {
    const worker = await createWorker({
      nats: nats.url,
      services: [
        implementClockService({
          async tick({ note }) {
            notes.push(note);
            return { note };
          },
        }),
      ],
    });
    workers.push(worker);
  };

  it("a worker creates its protos' schedules, and another worker starting leaves them as they are", async () => {
    await startClock();
    const scheduling = await startScheduling(nc, createTaskRegistry([clockService]), { onError: () => {} });
    try {
      const { store } = scheduling;
      const listed = await store.listSchedules("clock");
      expect(listed.map((s) => [s.schedule?.scheduleId, s.declaredIn])).toEqual([
        ["every-second", "proto"],
        ["mornings", "proto"],
      ]);
      await poll(async () => (notes.length >= 2 ? true : undefined));
      expect(new Set(notes)).toEqual(new Set(["declared"]));
      const before = await store.getSchedule("clock", "mornings");
      await startClock();
      const after = await store.getSchedule("clock", "mornings");
      expect(after.revision).toBe(before.revision);
      expect(after.generation).toBe(1n);
    } finally {
      await scheduling.close();
    }
  });

  it("taskwire.yaml's schedules are checked at start, applied, and removed when no longer declared", async () => {
    const write = async (schedules: string) => {
      const path = join(dir, "taskwire.yaml");
      await writeFile(path, `nats:\n  url: ${nats.url}\nschedules:\n${schedules}`);
      return loadConfig(path);
    };
    const registry = createTaskRegistry([probeService]);
    const entry = (id: string) =>
      `  - id: ${id}\n    task: probe/Run\n    cron: "0 6 * * *"\n    timeZone: America/New_York\n    payload: { label: ${id} }\n`;
    const apply = async (text: string) => {
      const scheduling = await startScheduling(nc, registry, {
        declared: declaredInConfig(await write(text), registry),
        onError: () => {},
      });
      const listed = await scheduling.store.listSchedules("probe");
      await scheduling.close();
      return listed;
    };
    const both = await apply(entry("early") + entry("late"));
    expect(both.map((s) => [s.schedule?.scheduleId, s.declaredIn])).toEqual([
      ["early", "taskwire.yaml"],
      ["late", "taskwire.yaml"],
    ]);
    expect((await apply(entry("late"))).map((s) => s.schedule?.scheduleId)).toEqual(["late"]);

    await expect(async () =>
      declaredInConfig(await write(entry("x").replace("probe/Run", "probe/Nope")), registry),
    ).rejects.toThrow(/taskwire\.yaml: schedules\[0\]: unknown method "Nope"/);
    await expect(async () =>
      declaredInConfig(await write(entry("x").replace("0 6", "0 6 6 6 6 6 6")), registry),
    ).rejects.toThrow(/schedules\[0\]: spec\..*cron/);
    await expect(write(entry("x").replace("task: probe/Run", "task: Run"))).rejects.toThrow(
      /schedules\[0\]\.task must be "<worker type>\/<Method>"/,
    );
  });
});

import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { anyPack, durationFromMs, timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type Schedule, ScheduleSchema } from "../../gen/taskwire/v1/schedule_service_pb.ts";
import { OverlapPolicy } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import type { TaskError } from "../../sdk/core/task-error.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { RunRequestSchema } from "../gen/probe/v1/probe_pb.ts";
import { implementProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

/** One run of a scheduled task, as its handler saw it. */
interface Run {
  readonly schedule: string;
  readonly time: string;
  readonly startedAt: number;
  readonly endedAt: number;
}

/** Recurring schedules: fired once per time by whichever worker pulls the tick, with their policies. */
describe("recurring schedules", () => {
  let nats: NatsServer;
  const clients: TaskwireClient[] = [];
  let client: TaskwireClient;
  const workers: Worker[] = [];
  const runs: Run[] = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    client = await createClient({ nats: nats.url, services: [probeService] });
    clients.push(client);
  }, 30_000);

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close()));
    for (const info of await client.schedules.listSchedules("probe"))
      await client.schedules.deleteSchedule("probe", info.schedule?.scheduleId ?? "");
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await nats?.stop();
  });

  const startWorker = async () => {
    const worker = await createWorker({
      nats: nats.url,
      concurrency: 4,
      services: [
        implementProbeService({
          async run({ sleepMs }, ctx) {
            const startedAt = Date.now();
            await new Promise((resolve) => setTimeout(resolve, sleepMs));
            runs.push({
              schedule: ctx.metadata["taskwire-schedule"] ?? "",
              time: ctx.metadata["taskwire-scheduled-time"] ?? "",
              startedAt,
              endedAt: Date.now(),
            });
            return { label: "", attempt: ctx.attempt, workerId: ctx.workerId };
          },
        }),
      ],
    });
    workers.push(worker);
    return worker;
  };

  const every = (
    scheduleId: string,
    ms: number,
    more: MessageInitShape<typeof ScheduleSchema> = {},
    sleepMs = 0,
  ): Schedule =>
    create(ScheduleSchema, {
      workerType: "probe",
      scheduleId,
      spec: { every: durationFromMs(ms) },
      task: { method: "Run", payload: anyPack(RunRequestSchema, create(RunRequestSchema, { sleepMs })) },
      ...more,
    } as MessageInitShape<typeof ScheduleSchema>);
  const runsOf = (scheduleId: string) => runs.filter((r) => r.schedule === scheduleId);

  it("fires each time once, with three workers pulling its ticks", async () => {
    await Promise.all([startWorker(), startWorker(), startWorker()]);
    const info = await client.schedules.createSchedule(every("each-once", 1_000, { overlap: OverlapPolicy.ALLOW_ALL }));
    expect(info.nextTime).toBeDefined();
    await poll(async () => (runsOf("each-once").length >= 6 ? true : undefined), 20_000);
    const times = runsOf("each-once").map((r) => r.time);
    // Each time once; consecutive seconds.
    expect(new Set(times).size).toBe(times.length);
    const ms = [...times].sort().map((t) => Date.parse(t));
    for (let i = 1; i < ms.length; i++) expect((ms[i] as number) - (ms[i - 1] as number)).toBe(1_000);
    const stored = await client.schedules.getSchedule("probe", "each-once");
    expect(stored.fired).toBeGreaterThanOrEqual(6n);
    expect(stored.lastTaskId).toMatch(/^probe\./);
  });

  it("refuses a bad definition, naming the field", async () => {
    const refusal = (schedule: Schedule) =>
      client.schedules.createSchedule(schedule).then(
        () => undefined,
        (error: TaskError) => [error.code, error.rawMessage] as const,
      );
    expect(await refusal(every("bad-cron", 1_000, { spec: { cron: "61 * * * *" } }))).toEqual([
      Code.InvalidArgument,
      expect.stringMatching(/^spec\..*minute.*61/),
    ]);
    expect(await refusal(every("bad id!", 1_000))).toEqual([
      Code.InvalidArgument,
      expect.stringMatching(/schedule_id/),
    ]);
    const keyed = every("keyed", 1_000);
    if (keyed.task) keyed.task.idempotencyKey = "k";
    expect(await refusal(keyed)).toEqual([Code.InvalidArgument, expect.stringMatching(/task\.idempotency_key/)]);
    const unknown = every("unknown-method", 1_000);
    if (unknown.task) unknown.task.method = "Nope";
    expect(await refusal(unknown)).toEqual([Code.NotFound, expect.stringMatching(/unknown method "Nope"/)]);
    expect(await refusal(every("short-catchup", 1_000, { catchupWindow: durationFromMs(1_000) }))).toEqual([
      Code.InvalidArgument,
      expect.stringMatching(/catchup_window/),
    ]);
    expect(await client.schedules.listSchedules("probe")).toEqual([]);
  });

  it("creates once, upserts idempotently under races, updates by revision, pauses, resumes, triggers, deletes", async () => {
    const definition = every("lifecycle", 3_600_000, { spec: { cron: "0 9 * * 1-5", timeZone: "Europe/Paris" } });
    // Four processes upsert the same declaration at once (a deploy of four instances): one schedule.
    const racers = await Promise.all(
      Array.from({ length: 3 }, () => createClient({ nats: nats.url, services: [probeService] })),
    );
    clients.push(...racers);
    const upserted = await Promise.all(
      [client, ...racers].map((c) => c.schedules.createSchedule(definition, { upsert: true })),
    );
    expect(new Set(upserted.map((u) => u.revision)).size).toBe(1);
    expect(upserted[0]?.generation).toBe(1n);
    await expect(client.schedules.createSchedule(definition)).rejects.toMatchObject({ code: Code.AlreadyExists });

    const preview = await client.schedules.previewSchedule({ workerType: "probe", scheduleId: "lifecycle" }, 3);
    expect(preview).toHaveLength(3);
    expect(timestampDate(upserted[0]?.nextTime ?? timestampFromDate(new Date(0)))).toEqual(preview[0]);
    for (const time of preview)
      expect(
        new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Paris", hour: "2-digit", minute: "2-digit" }).format(time),
      ).toBe("09:00");

    const stale = upserted[0]?.revision ?? 0n;
    const changed = await client.schedules.updateSchedule(every("lifecycle", 60_000, { description: "hourly now" }), {
      revision: stale,
    });
    expect(changed.generation).toBe(2n);
    await expect(
      client.schedules.updateSchedule(every("lifecycle", 60_000), { revision: stale }),
    ).rejects.toMatchObject({ code: Code.Aborted });

    const paused = await client.schedules.pauseSchedule("probe", "lifecycle", { note: "maintenance" });
    expect(paused).toMatchObject({ paused: true, pauseNote: "maintenance", nextTime: undefined });
    await startWorker();
    const taskId = await client.schedules.triggerSchedule("probe", "lifecycle");
    expect((await client.task(taskId, probeService.methods.run.output).result()).attempt).toBe(1);
    expect((await client.schedules.getSchedule("probe", "lifecycle")).lastTaskId).toBe(taskId);
    const resumed = await client.schedules.resumeSchedule("probe", "lifecycle");
    expect(resumed.paused).toBe(false);
    expect(resumed.nextTime).toBeDefined();
    await client.schedules.deleteSchedule("probe", "lifecycle");
    await expect(client.schedules.getSchedule("probe", "lifecycle")).rejects.toMatchObject({ code: Code.NotFound });
  });

  it("SKIP skips a time while the previous task runs; BUFFER_ONE runs one after it", async () => {
    await startWorker();
    await client.schedules.createSchedule(every("skips", 1_000, { overlap: OverlapPolicy.SKIP }, 2_500));
    await client.schedules.createSchedule(every("buffers", 1_000, { overlap: OverlapPolicy.BUFFER_ONE }, 2_500));
    await poll(async () => (runsOf("skips").length >= 2 && runsOf("buffers").length >= 2 ? true : undefined), 30_000);
    for (const id of ["skips", "buffers"]) {
      const list = runsOf(id).sort((a, b) => a.startedAt - b.startedAt);
      // Never two at once.
      for (let i = 1; i < list.length; i++)
        expect(list[i]?.startedAt).toBeGreaterThanOrEqual((list[i - 1] as Run).endedAt);
      expect((await client.schedules.getSchedule("probe", id)).skipped).toBeGreaterThan(0n);
    }
    // A buffered time starts soon after the task before it ends (it looks again every second).
    const buffered = runsOf("buffers").sort((a, b) => a.startedAt - b.startedAt);
    expect((buffered[1] as Run).startedAt - (buffered[0] as Run).endedAt).toBeLessThan(2_500);
  });

  it("after downtime, fires the times within the catch-up window once each and skips older ones", async () => {
    const created = await client.schedules.createSchedule(
      every("catch-up", 2_000, { overlap: OverlapPolicy.ALLOW_ALL, catchupWindow: durationFromMs(10_000) }),
    );
    const first = timestampDate(created.nextTime ?? timestampFromDate(new Date()));
    // No worker runs for 15 s: 7 or 8 times pass.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, first.getTime() + 14_000 - Date.now())));
    const back = Date.now();
    await startWorker();
    await poll(async () => {
      const info = await client.schedules.getSchedule("probe", "catch-up");
      return info.nextTime && timestampDate(info.nextTime).getTime() > Date.now() ? info : undefined;
    }, 20_000);
    const fired = runsOf("catch-up").map((r) => Date.parse(r.time));
    expect(new Set(fired).size).toBe(fired.length);
    // Those fired late were all within 10 s of when firing resumed; the older ones were skipped.
    for (const t of fired) expect(t).toBeGreaterThanOrEqual(back - 10_000 - 1_000);
    const info = await client.schedules.getSchedule("probe", "catch-up");
    expect(info.skipped).toBeGreaterThan(0n);
    expect(Number(info.fired + info.skipped)).toBeGreaterThanOrEqual(7);
  }, 60_000);
});

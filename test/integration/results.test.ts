import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { type TaskResult, TaskResultSchema } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import type { TaskMiddleware } from "../../worker-runtime/middleware.ts";
import type { WorkerOptions } from "../../worker-runtime/worker-options.ts";
import { probeHandler } from "../fixtures/probe-worker.ts";
import { RunResponseSchema } from "../gen/probe/v1/probe_pb.ts";
import { implementProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

const run = probeService.methods.run;

/** Result routing: TaskResult events, the onResult hook, and middleware around handlers. */
describe("result events and middleware", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let client: TaskwireClient;
  const workers: Worker[] = [];
  const subscriptions: Subscription[] = [];

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    client = await createClient({ nats: nats.url, services: [probeService] });
  }, 30_000);

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close()));
    for (const s of subscriptions.splice(0)) s.unsubscribe();
  });

  afterAll(async () => {
    await client?.close();
    await nc?.close();
    await nats?.stop();
  });

  const startWorker = async (options: Partial<WorkerOptions> = {}) => {
    const worker = await createWorker({
      nats: nats.url,
      ...options,
      services: [implementProbeService({ run: probeHandler() })],
    });
    workers.push(worker);
  };
  /** Every TaskResult published on `subject` from now on. */
  const collect = async (subject: string) => {
    const events: TaskResult[] = [];
    subscriptions.push(
      nc.subscribe(subject, {
        callback: (_, msg) => {
          events.push(fromBinary(TaskResultSchema, msg.data));
        },
      }),
    );
    await nc.flush();
    return events;
  };

  it("publishes a TaskResult for every outcome on taskwire.result.<type>", async () => {
    const events = await collect("taskwire.result.probe");
    await startWorker({ workerId: "events" });
    const ok = await client.submitTask(run, { label: "ok" });
    const bad = await client.submitTask(run, { label: "bad", nonRetryable: true });
    await ok.result();
    await expect(bad.result()).rejects.toThrow();
    await poll(async () => (events.length >= 2 ? true : undefined));
    const byId = new Map(events.map((e) => [e.taskId, e]));
    const success = byId.get(ok.id);
    expect(success).toMatchObject({ attempt: 1, workerId: "events", workerType: "probe", method: "Run" });
    expect(success?.outcome.case).toBe("result");
    const response =
      success?.outcome.case === "result" ? anyUnpack(success.outcome.value, RunResponseSchema) : undefined;
    expect(response?.label).toBe("ok");
    const failure = byId.get(bad.id);
    expect(failure?.outcome.case === "error" && failure.outcome.value.message).toBe("bad cannot work");
    expect(events).toHaveLength(2);
  });

  it("onResult replaces or suppresses events, on a subject of one's choosing", async () => {
    const events = await collect("results.custom.probe");
    await startWorker({
      results: {
        subject: (type) => `results.custom.${type}`,
        onResult: async (result) => {
          const unpacked =
            result.outcome.case === "result" ? anyUnpack(result.outcome.value, RunResponseSchema) : undefined;
          if (unpacked?.label === "secret") return null;
          return { ...result, workerId: `hooked:${result.workerId}` };
        },
      },
    });
    // One after the other: the same worker connection publishes in order, so a
    // wrongly published "secret" event would arrive before the "open" one.
    const secret = await client.submitTask(run, { label: "secret" });
    await secret.result();
    const open = await client.submitTask(run, { label: "open" });
    await open.result();
    await poll(async () => (events.length >= 1 ? true : undefined));
    expect(events.map((e) => e.taskId)).toEqual([open.id]);
    expect(events[0]?.workerId).toMatch(/^hooked:/);
  });

  it("publishes no events with results: false", async () => {
    const events = await collect("taskwire.result.probe");
    await startWorker({ results: false });
    const quiet = await client.submitTask(run, { label: "quiet" });
    await quiet.result();
    await Promise.all(workers.splice(0).map((w) => w.close()));
    await startWorker();
    const loud = await client.submitTask(run, { label: "loud" });
    await loud.result();
    await poll(async () => (events.length >= 1 ? true : undefined));
    expect(events.map((e) => e.taskId)).toEqual([loud.id]);
  });

  it("runs middleware around handlers, outermost first; it may change the result", async () => {
    const trail: string[] = [];
    const logging: TaskMiddleware = async (_request, ctx, next) => {
      trail.push(`outer before ${ctx.method}`);
      try {
        return await next();
      } finally {
        trail.push("outer after");
      }
    };
    const rewriting: TaskMiddleware = async (request, _ctx, next) => {
      trail.push(`inner before ${(request as { label: string }).label}`);
      const result = (await next()) as { label: string };
      trail.push("inner after");
      return { ...result, label: result.label.toUpperCase() };
    };
    await startWorker({ middleware: [logging, rewriting] });
    const task = await client.submitTask(run, { label: "wrapped" });
    expect((await task.result()).label).toBe("WRAPPED");
    expect(trail).toEqual(["outer before Run", "inner before wrapped", "inner after", "outer after"]);

    trail.length = 0;
    const failing = await client.submitTask(run, { label: "failing", nonRetryable: true });
    await expect(failing.result()).rejects.toThrow(/failing cannot work/);
    expect(trail).toEqual(["outer before Run", "inner before failing", "outer after"]);
  });
});

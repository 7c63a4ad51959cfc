import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { NonRetryableError } from "../../sdk/core/task-error.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { taskGraph } from "../../worker-runtime/task-graph.ts";
import {
  familyService,
  implementFamilyService,
  implementStepService,
  stepService,
} from "../gen/family/v1/family_taskwire.ts";
import { RunResponseSchema } from "../gen/probe/v1/probe_pb.ts";
import { implementProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

const fan = familyService.methods.fan;
const { parse, count, report } = stepService.methods;

/** The graphs of FamilyService.Pipeline, by the request's on_failure: Parse, Count, Report. */
const graphs = {
  fail: taskGraph(parse)
    .next(count)
    .next(report, (counted) => ({ line: `${counted.count} words` })),
  ignore: taskGraph(parse, { onFailure: "ignore", fallback: { words: ["fallback"] } })
    .next(count)
    .next(report, (counted) => ({ line: `${counted.count} words` })),
  continue: taskGraph(parse, { onFailure: "continue", recover: (error) => ({ words: error.message.split(" ") }) })
    .next(count)
    .next(report, (counted) => ({ line: `${counted.count} words` })),
  // Count twice at once, then one report of both.
  parallel: taskGraph(parse).all([count, count], report, ([a, b]) => ({ line: `${a.count}+${b.count}` })),
};

/** Parent tasks that spawn children and wait for them, against a real nats-server. */
describe("child tasks", () => {
  let nats: NatsServer;
  let client: TaskwireClient;
  const workers: Worker[] = [];
  /** Runs of each child label, per parent. */
  const childRuns = new Map<string, number>();
  /** Runs of each step kind. */
  const stepRuns = new Map<string, number>();
  /** Runs of each parent, and when each run started and ended. */
  const parentRuns = new Map<string, { started: number; ended: number }[]>();

  beforeAll(async () => {
    nats = await startNatsServer();
    client = await createClient({ nats: nats.url, services: [familyService, probeService] });
    workers.push(
      await createWorker({
        nats: nats.url,
        concurrency: 4,
        services: [
          implementProbeService({
            async run({ label, sleepMs, nonRetryable }, ctx) {
              const key = `${ctx.metadata.parent}/${label}`;
              childRuns.set(key, (childRuns.get(key) ?? 0) + 1);
              if (nonRetryable) throw new NonRetryableError(`${label} cannot work`);
              await sleep(sleepMs, undefined, { signal: ctx.signal });
              return { label, attempt: ctx.attempt, workerId: ctx.workerId };
            },
          }),
        ],
      }),
      // Concurrency 1 (the service's): a parent that held its slot while waiting would block the next.
      await createWorker({
        nats: nats.url,
        services: [
          implementFamilyService({
            pipeline: (request, ctx) => {
              parentRuns.set(ctx.taskId, [...(parentRuns.get(ctx.taskId) ?? []), { started: Date.now(), ended: 0 }]);
              return graphs[(request.onFailure || "fail") as keyof typeof graphs].handler()(request, ctx);
            },
            async fan(request, ctx) {
              const runs = parentRuns.get(ctx.taskId) ?? [];
              parentRuns.set(ctx.taskId, runs);
              const run = { started: Date.now(), ended: 0 };
              runs.push(run);
              try {
                const onFailure = (request.onFailure || "fail") as "fail" | "continue" | "ignore";
                const spawn = (i: number) =>
                  ctx.spawn(
                    probeService.methods.run,
                    { label: `c${i}`, sleepMs: request.sleepMs, nonRetryable: i + 1 === request.failingChild },
                    { onFailure, metadata: { parent: ctx.taskId } },
                  );
                const all = Array.from({ length: request.children }, (_, i) => i);
                const half = Math.floor(request.children / 2);
                if (request.crashMidway && ctx.attempt === 1) {
                  await Promise.all(all.slice(0, half).map(spawn));
                  throw new Error("the parent crashed midway");
                }
                if (request.twoWaves) {
                  await Promise.all(all.slice(0, half).map(spawn));
                  await ctx.waitForChildren();
                  await Promise.all(all.slice(half).map(spawn));
                } else await Promise.all(all.map(spawn));
                const counts = await ctx.waitForChildren();
                const labels: string[] = [];
                for await (const page of ctx.children(RunResponseSchema))
                  for (const outcome of page) if (outcome.result) labels.push(outcome.result.label);
                return {
                  spawned: BigInt(counts.spawned),
                  ended: BigInt(counts.ended),
                  failed: BigInt(counts.failed),
                  labels: labels.join(","),
                  runs: runs.length,
                };
              } finally {
                run.ended = Date.now();
              }
            },
          }),
        ],
      }),
    );
    const step = (name: string) => stepRuns.set(name, (stepRuns.get(name) ?? 0) + 1);
    workers.push(
      await createWorker({
        nats: nats.url,
        services: [
          implementStepService({
            async parse({ text }) {
              step("parse");
              if (text === "fail") throw new NonRetryableError("cannot parse fail");
              return { words: text.split(" ") };
            },
            async count({ words }) {
              step("count");
              return { count: words.length };
            },
            async report({ line }) {
              step("report");
              return { line };
            },
          }),
        ],
      }),
    );
  }, 30_000);

  afterAll(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await client?.close();
    await nats?.stop();
  });

  const labels = (n: number) => Array.from({ length: n }, (_, i) => `c${i}`).join(",");
  const runsOf = (parent: string, n: number) =>
    Array.from({ length: n }, (_, i) => childRuns.get(`${parent}/c${i}`) ?? 0);

  it("a parent waits for its children without its slot, WAITING, and runs again once they ended", async () => {
    const first = await client.submitTask(fan, { children: 20, sleepMs: 300 });
    await poll(async () => ((await client.getTask(first.id)).state === TaskState.WAITING ? true : undefined));
    const waiting = await client.getTask(first.id);
    expect(waiting.children?.spawned).toBe(20n);
    // The family worker runs one handler at once: the second parent starts while the first waits.
    const second = await client.submitTask(fan, { children: 5, sleepMs: 0 });
    const [a, b] = await Promise.all([first.result(), second.result()]);
    expect(a).toMatchObject({ spawned: 20n, ended: 20n, failed: 0n, labels: labels(20), runs: 2 });
    expect(b).toMatchObject({ spawned: 5n, ended: 5n, labels: labels(5) });
    expect(parentRuns.get(second.id)?.[0]?.started).toBeLessThan(parentRuns.get(first.id)?.[1]?.started ?? 0);
    expect(runsOf(first.id, 20)).toEqual(Array(20).fill(1));
    const done = await client.getTask(first.id);
    expect(done.children).toMatchObject({ spawned: 20n, ended: 20n, failed: 0n });
    const child = (await client.listTasks({ workerType: "probe", pageSize: 1 })).tasks[0];
    expect(child?.parentTaskId).toMatch(/^family\./);
  });

  it("a parent that fails midway and runs again spawns no child twice", async () => {
    const parent = await client.submitTask(fan, { children: 20, crashMidway: true });
    expect(await parent.result()).toMatchObject({ spawned: 20n, ended: 20n, labels: labels(20) });
    expect((await client.getTask(parent.id)).attempt).toBe(2);
    expect(runsOf(parent.id, 20)).toEqual(Array(20).fill(1));
  });

  it("waits twice: a second wave after the first", async () => {
    const parent = await client.submitTask(fan, { children: 10, twoWaves: true, sleepMs: 50 });
    expect(await parent.result()).toMatchObject({ spawned: 10n, ended: 10n, labels: labels(10), runs: 3 });
    expect(runsOf(parent.id, 10)).toEqual(Array(10).fill(1));
  });

  it("fail: a failed child fails the parent at once, naming it, and its other children are cancelled", async () => {
    const parent = await client.submitTask(fan, { children: 6, failingChild: 3, sleepMs: 20_000 });
    await expect(parent.result()).rejects.toThrow(/child task probe\.\S+ failed: c2 cannot work/);
    const cancelled = await poll(async () => {
      const listed = await client.listTasks({ workerType: "probe", pageSize: 1000 });
      const mine = listed.tasks.filter((t) => t.parentTaskId === parent.id);
      return mine.filter((t) => t.state === TaskState.CANCELLED).length === 5 ? mine : undefined;
    });
    expect(cancelled.filter((t) => t.state === TaskState.FAILED)).toHaveLength(1);
  });

  it("continue counts a failed child; ignore does not", async () => {
    const continued = await client.submitTask(fan, { children: 4, failingChild: 2, onFailure: "continue" });
    expect(await continued.result()).toMatchObject({ spawned: 4n, ended: 4n, failed: 1n, labels: "c0,c2,c3" });
    const ignored = await client.submitTask(fan, { children: 4, failingChild: 2, onFailure: "ignore" });
    expect(await ignored.result()).toMatchObject({ spawned: 4n, ended: 4n, failed: 0n, labels: "c0,c2,c3" });
  });

  it("cancelling a waiting parent cancels its children", async () => {
    const parent = await client.submitTask(fan, { children: 5, sleepMs: 30_000 });
    await poll(async () => ((await client.getTask(parent.id)).state === TaskState.WAITING ? true : undefined));
    await client.cancelTask(parent.id, "enough");
    const children = await poll(async () => {
      const mine = (await client.listTasks({ workerType: "probe", pageSize: 1000 })).tasks.filter(
        (t) => t.parentTaskId === parent.id,
      );
      return mine.length === 5 && mine.every((t) => t.state === TaskState.CANCELLED) ? mine : undefined;
    });
    expect(children[0]?.error?.message).toBe(`its parent ${parent.id} was cancelled`);
    expect((await client.getTask(parent.id)).state).toBe(TaskState.CANCELLED);
  });

  it("runs a typed graph step by step, each step a child task that runs once", async () => {
    stepRuns.clear();
    const task = await client.submitTask(familyService.methods.pipeline, { text: "one two three" });
    expect((await task.result()).line).toBe("3 words");
    expect(Object.fromEntries(stepRuns)).toEqual({ parse: 1, count: 1, report: 1 });
    // At most the first run and one per step: a step that ended before its wait read the counts needs none.
    expect(parentRuns.get(task.id)?.length).toBeLessThanOrEqual(4);
    expect((await client.getTask(task.id)).children).toMatchObject({ spawned: 3n, ended: 3n, failed: 0n });
  });

  it("runs parallel steps and joins their outputs", async () => {
    const task = await client.submitTask(familyService.methods.pipeline, { text: "a b", onFailure: "parallel" });
    expect((await task.result()).line).toBe("2+2");
  });

  it("fails the graph at a failed step, names it; ignore and continue go on", async () => {
    const failed = await client.submitTask(familyService.methods.pipeline, { text: "fail" });
    await expect(failed.result()).rejects.toThrow(
      /step 1 \(steps\/Parse, task steps\.\S+\) ended FAILED: cannot parse fail/,
    );
    const ignored = await client.submitTask(familyService.methods.pipeline, { text: "fail", onFailure: "ignore" });
    expect((await ignored.result()).line).toBe("1 words");
    const continued = await client.submitTask(familyService.methods.pipeline, { text: "fail", onFailure: "continue" });
    expect((await continued.result()).line).toBe("3 words");
  });
});

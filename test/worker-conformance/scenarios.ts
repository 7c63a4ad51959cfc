import { expect } from "vitest";
import { ErrorCode, TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import type { TaskwireClient } from "../../sdk/client/create-client.ts";
import { TaskError } from "../../sdk/core/task-error.ts";
import { limitedProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { poll } from "../support/poll.ts";
import type { RunningWorker } from "./workers.ts";

const run = probeService.methods.run;

/** What a scenario has: a client, and worker processes of the implementation under test. */
export interface ScenarioContext {
  readonly client: TaskwireClient;
  /** Starts one more worker of the implementation, with extra environment. */
  startWorker(env?: Readonly<Record<string, string>>): Promise<RunningWorker>;
}

/** One behaviour every worker implementation must have (docs/worker-conformance.md). */
export interface Scenario {
  readonly name: string;
  run(ctx: ScenarioContext): Promise<void>;
}

const statusOf = (client: TaskwireClient, id: string) => client.getTask(id);
const until = (client: TaskwireClient, id: string, state: TaskState) =>
  poll(async () => ((await statusOf(client, id)).state === state ? true : undefined), 30_000);

/** The scenarios, in the order of the docs' table. */
export const scenarios: readonly Scenario[] = [
  {
    name: "typed result",
    async run({ client, startWorker }) {
      const worker = await startWorker();
      const task = await client.submitTask(run, { label: "typed" });
      expect(await task.result()).toMatchObject({ label: "typed", attempt: 1, workerId: worker.id });
    },
  },
  {
    name: "retry, then success",
    async run({ client, startWorker }) {
      await startWorker();
      const task = await client.submitTask(run, { label: "flaky", failAttempts: 2 });
      expect((await task.result()).attempt).toBe(3);
      expect((await task.status()).errorHistory).toHaveLength(2);
    },
  },
  {
    name: "non-retryable error, dead letter",
    async run({ client, startWorker }) {
      await startWorker();
      const task = await client.submitTask(run, { label: "broken", nonRetryable: true });
      await expect(task.result()).rejects.toThrow(/broken cannot work/);
      expect((await task.status()).attempt).toBe(1);
      // Dead-lettered before its message is acked, after its record (which the result comes from).
      const letter = await poll(() => client.queues.getDeadLetter(task.id).catch(() => undefined), 30_000);
      expect(letter.status?.state).toBe(TaskState.FAILED);
    },
  },
  {
    name: "deadline",
    async run({ client, startWorker }) {
      await startWorker();
      const task = await client.submitTask(
        run,
        { label: "slow", sleepMs: 20_000 },
        { timeoutMs: 300, retry: { maxAttempts: 1 } },
      );
      const failure = await task.result().then(
        () => undefined,
        (error: TaskError) => error,
      );
      expect(failure).toBeInstanceOf(TaskError);
      expect((await task.status()).error?.code).toBe(ErrorCode.DEADLINE_EXCEEDED);
    },
  },
  {
    name: "cancel while running",
    async run({ client, startWorker }) {
      // One slot: the next task runs only once the cancelled handler has stopped.
      await startWorker({ TASKWIRE_CONCURRENCY: "1" });
      const long = await client.submitTask(run, { label: "long", sleepMs: 120_000 });
      await until(client, long.id, TaskState.RUNNING);
      await client.cancelTask(long.id, "enough");
      const next = await client.submitTask(run, { label: "next" });
      expect((await next.result()).label).toBe("next");
      expect((await statusOf(client, long.id)).state).toBe(TaskState.CANCELLED);
    },
  },
  {
    name: "kill -9, redelivery",
    async run({ client, startWorker }) {
      const first = await startWorker();
      const task = await client.submitTask(run, { label: "survivor", sleepMs: 1_500 });
      await until(client, task.id, TaskState.RUNNING);
      await first.kill();
      await startWorker();
      // Its first attempt died with its worker: the second ran it.
      expect((await task.result()).attempt).toBe(2);
    },
  },
  {
    name: "drain on SIGTERM",
    async run({ client, startWorker }) {
      const worker = await startWorker();
      const task = await client.submitTask(run, { label: "draining", sleepMs: 1_000 });
      await until(client, task.id, TaskState.RUNNING);
      expect(await worker.stop()).toBe(0);
      expect((await statusOf(client, task.id)).state).toBe(TaskState.SUCCEEDED);
      expect((await statusOf(client, task.id)).attempt).toBe(1);
    },
  },
  {
    name: "broadcast",
    async run({ client, startWorker }) {
      const [a, b] = [await startWorker(), await startWorker()];
      const task = await client.submitTask(run, { label: "everyone" }, { delivery: "broadcast" });
      await task.result();
      const endpoints = (await task.status()).endpoints.map((e) => [e.endpoint, e.state]);
      expect(endpoints.sort()).toEqual(
        [
          [a.id, TaskState.SUCCEEDED],
          [b.id, TaskState.SUCCEEDED],
        ].sort(),
      );
    },
  },
  {
    name: "limits across workers",
    async run({ client, startWorker }) {
      await startWorker();
      await startWorker();
      // max_concurrency 2 for the type, whatever the number of workers and their slots.
      const handles = await client.submitBatch(
        limitedProbeService.methods.run,
        Array.from({ length: 6 }, (_, i) => ({ request: { label: `l${i}`, sleepMs: 300 } })),
      );
      const spans: [number, number][] = [];
      for (const handle of handles) {
        if (handle instanceof TaskError) throw handle;
        const { startedMs, finishedMs } = await handle.result();
        spans.push([startedMs, finishedMs]);
      }
      // The handlers' own times: at no start were more than two running.
      const most = Math.max(...spans.map(([start]) => spans.filter(([s, f]) => s <= start && start < f).length));
      expect(most).toBeLessThanOrEqual(2);
    },
  },
  {
    name: "result size limit",
    async run({ client, startWorker }) {
      // The deployment's retention.maxResultBytes, as the supervisor passes it: a larger result fails for good.
      await startWorker({ TASKWIRE_RETENTION: JSON.stringify({ maxResultBytes: 64 }) });
      const task = await client.submitTask(run, { label: "x".repeat(100) });
      await expect(task.result()).rejects.toThrow(TaskError);
      const status = await task.status();
      expect({ code: status.error?.code, attempt: status.attempt }).toEqual({
        code: ErrorCode.RESOURCE_EXHAUSTED,
        attempt: 1,
      });
      expect((await client.submitTask(run, { label: "small" }).then((t) => t.result())).label).toBe("small");
    },
  },
  {
    name: "pause and resume",
    async run({ client, startWorker }) {
      await startWorker();
      await client.queues.pauseQueue("probe");
      try {
        const held = await client.submitTask(run, { label: "held" });
        // The worker runs another type's task meanwhile: it is alive and pulling, and starts nothing paused.
        await (await client.submitTask(limitedProbeService.methods.run, { label: "meanwhile" })).result();
        expect((await statusOf(client, held.id)).state).toBe(TaskState.PENDING);
        await client.queues.resumeQueue("probe");
        expect((await held.result()).label).toBe("held");
      } finally {
        await client.queues.resumeQueue("probe");
      }
    },
  },
];

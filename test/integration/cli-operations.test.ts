import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { NonRetryableError } from "../../sdk/core/task-error.ts";
import { createTaskRegistry } from "../../sdk/core/task-registry.ts";
import { createNatsQueueBackend } from "../../sdk/nats/nats-queue-backend.ts";
import { createNatsTaskBackend } from "../../sdk/nats/nats-task-backend.ts";
import { ScheduleStore } from "../../sdk/nats/schedule-store.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import { apiKeyHash } from "../../server/gateway-auth.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { implementProbeService, probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { follow } from "../support/follow.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";
import { spawnAtTerminal } from "../support/pty.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);
const operatorKey = "tw_cli_operations_operator_key_0123456789";
const viewerKey = "tw_cli_operations_viewer_key_0123456789";
const runProbe = probeService.methods.run;

/** What the taskwire command did: its exit code and output. */
interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * `taskwire tasks|queues|dlq|workers` as a child process with pipes (no terminal),
 * against a real gateway over HTTP/2 with NATS behind it and a real worker.
 */
describe("taskwire tasks, queues, dlq, workers and schedules", () => {
  let dir: string;
  let nats: NatsServer;
  let nc: NatsConnection;
  let gateway: Gateway;
  let client: TaskwireClient;
  let worker: Worker;
  /** Labels whose attempts succeed from now on, whatever their request says. */
  const healed = new Set<string>();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-cli-operations-"));
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    const registry = createTaskRegistry([probeService]);
    const tasks = await createNatsTaskBackend({ nc, registry });
    gateway = await createGateway({
      backend: tasks,
      queues: await createNatsQueueBackend({ nc, tasks }),
      schedules: new ScheduleStore(nc, registry, tasks),
      services: [probeService],
      auth: {
        apiKeys: [
          { name: "operator", sha256: apiKeyHash(operatorKey), permissions: ["admin"] },
          { name: "viewer", sha256: apiKeyHash(viewerKey), permissions: ["read:*"] },
        ],
      },
      auditLog: () => {},
    });
    await writeFile(join(dir, "operator.key"), `${operatorKey}\n`);
    await writeFile(join(dir, "viewer.key"), `${viewerKey}\n`);
    client = await createClient({ gateway: gateway.url, token: operatorKey });
    worker = await createWorker({
      nats: nats.url,
      workerId: "cli-probe",
      services: [
        implementProbeService({
          async run({ label, nonRetryable, sleepMs }, ctx) {
            if (nonRetryable && !healed.has(label)) throw new NonRetryableError(`${label} cannot work`);
            if (sleepMs > 0) await sleep(sleepMs, undefined, { signal: ctx.signal });
            return { label, attempt: ctx.attempt, workerId: ctx.workerId };
          },
        }),
      ],
    });
  }, 60_000);

  afterEach(async () => {
    await client.queues.resumeQueue("probe");
  });

  afterAll(async () => {
    await worker?.close();
    await client?.close();
    await gateway?.close();
    await nc?.close();
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The command's arguments: the CLI from source, the test's gateway, the operator's key unless others are given. */
  const argsOf = (args: string[]) => [
    "--conditions=taskwire-source",
    join(repoRoot, "cli/main.ts"),
    ...args,
    ...(args.includes("--config") ? [] : ["--gateway", gateway.url]),
    ...(args.includes("--token-file") ? [] : ["--token-file", join(dir, "operator.key")]),
  ];

  /** Runs the command with pipes for stdin and stdout (no terminal); resolves whether or not it failed. */
  async function taskwire(...args: string[]): Promise<Outcome> {
    try {
      const { stdout, stderr } = await run(process.execPath, argsOf(args), { cwd: dir, timeout: 60_000 });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as Outcome;
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  }

  /** Runs the command and parses its stdout as JSON; it must succeed. */
  async function taskwireJson<T>(...args: string[]): Promise<T> {
    const outcome = await taskwire(...args, "--json");
    expect(outcome.code, outcome.stderr).toBe(0);
    return JSON.parse(outcome.stdout) as T;
  }

  /** Runs the command at a terminal of its own; once it asks `question`, types `answer`. */
  async function atTerminal(question: string, answer: string, ...args: string[]) {
    const child = spawnAtTerminal(process.execPath, argsOf(args), { cwd: dir });
    const screen = follow(child);
    await screen.until(question);
    child.stdin?.write(`${answer}\n`);
    const { code } = await screen.exited;
    return { code, screen: screen.output() };
  }

  it("tasks list, get and cancel", async () => {
    const ok = await client.submitTask(runProbe, { label: "ok" });
    const bad = await client.submitTask(runProbe, { label: "bad", nonRetryable: true });
    const long = await client.submitTask(runProbe, { label: "long", sleepMs: 60_000 });
    await ok.result();
    await expect(bad.result()).rejects.toThrow(/bad cannot work/);
    await poll(async () => ((await long.status()).state === TaskState.RUNNING ? true : undefined));

    const table = await taskwire("tasks", "list", "--type", "probe");
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID +METHOD +STATE +ATTEMPT +AGE +NOTE$/);
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(new RegExp(`^${long.id} +Run +RUNNING +1/3 +\\S+$`)),
      expect.stringMatching(new RegExp(`^${bad.id} +Run +FAILED +1/3 +\\S+ +bad cannot work$`)),
      expect.stringMatching(new RegExp(`^${ok.id} +Run +SUCCEEDED +1/3 +\\S+$`)),
    ]);

    const failed = await taskwireJson<{ tasks: { taskId: string; state: string }[] }>(
      "tasks",
      "list",
      "--type",
      "probe",
      "--state",
      "failed,cancelled",
      "--since",
      "1h",
    );
    expect(failed.tasks.map((task) => [task.taskId, task.state])).toEqual([[bad.id, "TASK_STATE_FAILED"]]);
    // Pages of --limit: the newest two, and the token of what is left.
    const two = await taskwireJson<{ tasks: { taskId: string }[]; nextPageToken: string }>(
      "tasks",
      "list",
      "--limit",
      "2",
    );
    expect(two.tasks.map((task) => task.taskId)).toEqual([long.id, bad.id]);
    expect(two.nextPageToken).not.toBe("");
    const limited = await taskwire("tasks", "list", "--limit", "2");
    expect(limited.stderr).toContain("(the first 2; more match: raise --limit or narrow the filters)");

    const shown = await taskwire("tasks", "get", ok.id);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(
      new RegExp(`^task +${ok.id}\nstate +SUCCEEDED\nmethod +probe/Run\nattempts +1 of 3\n`),
    );
    expect(shown.stdout).toMatch(/^submitted +\d{4}-\d\d-\d\dT\S+Z \(\d+s ago\) by operator$/m);
    expect(shown.stdout).toMatch(/^result +\{\n +"label": "ok",\n +"attempt": 1,\n +"workerId": "cli-probe"\n +\}$/m);
    const badJson = await taskwireJson<Record<string, unknown>>("tasks", "get", bad.id);
    expect(badJson).toMatchObject({
      taskId: bad.id,
      state: "TASK_STATE_FAILED",
      error: { code: "ERROR_CODE_FAILED_PRECONDITION", message: "bad cannot work" },
    });
    expect((await taskwire("tasks", "get", bad.id)).stdout).toMatch(/^error +FAILED_PRECONDITION: bad cannot work$/m);

    // Cancel is destructive: without a terminal, only with --yes.
    const refused = await taskwire("tasks", "cancel", long.id);
    expect(refused).toMatchObject({
      code: 2,
      stderr: `taskwire: refusing to cancel task ${long.id} without confirmation: pass --yes (stdin or stdout is not a terminal to ask on)\n`,
    });
    expect((await long.status()).state).toBe(TaskState.RUNNING);
    const cancelled = await taskwire("tasks", "cancel", long.id, ok.id, "--reason", "not needed", "--yes");
    expect(cancelled).toMatchObject({
      code: 0,
      stdout: `cancelled ${long.id}\nnot cancelled ${ok.id}: it had ended SUCCEEDED\n`,
    });
    expect(await long.status()).toMatchObject({ state: TaskState.CANCELLED, error: { message: "not needed" } });
    const partly = await taskwire("tasks", "cancel", "probe.NOSUCHTASK0000000000000000", "--yes", "--json");
    expect(partly.code).toBe(1);
    expect(JSON.parse(partly.stdout)).toEqual({});
    expect(partly.stderr).toContain("taskwire: 1 of 1 task not cancelled\n");

    // Bad flags: which one, and what it accepts; exit code 2.
    expect(await taskwire("tasks", "list", "--state", "done")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining('--state "done" is not a task state; the states: pending, scheduled,'),
    });
    expect(await taskwire("tasks", "list", "--limit", "0")).toMatchObject({
      code: 2,
      stderr: 'taskwire: --limit must be a whole number from 1 up, got "0"\n',
    });
    expect(await taskwire("tasks", "frobnicate")).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/^taskwire: unknown command "tasks frobnicate"\n\nusage: taskwire tasks/),
    });
    expect(await taskwire("tasks", "list", "--colour")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("Unknown option '--colour'"),
    });
  }, 180_000);

  it("queues list, pause, resume and purge; purge asks at a terminal", async () => {
    // The task cancelled above has ended on its worker: nothing runs.
    await poll(async () => ((await client.queues.getQueue("probe")).running === 0n ? true : undefined));
    const paused = await taskwire("queues", "pause", "probe", "--until", "1h");
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toMatch(/^paused probe until \S+Z \(in (59m\d+s|1h)\)\n$/);
    const queued = [];
    for (const label of ["q1", "q2", "q3"]) queued.push(await client.submitTask(runProbe, { label }));

    const { queues } = await taskwireJson<{ queues: Record<string, unknown>[] }>("queues", "list");
    expect(queues).toEqual([expect.objectContaining({ workerType: "probe", queued: "3", paused: true, workers: 1 })]);
    expect(queues[0]).toHaveProperty("pausedUntil");
    expect(queues[0]).toHaveProperty("oldestQueuedAt");
    const table = await taskwire("queues", "list");
    expect(table.stdout).toMatch(
      /^TYPE +QUEUED +SCHEDULED +RUNNING +DEAD +PAUSED +OLDEST +WORKERS\nprobe +3 +0 +0 +\d+ +for (59m\d*s?|1h) +\S+ +1\n$/,
    );

    // No terminal, no --yes: refused, with the count, and nothing purged.
    const refused = await taskwire("queues", "purge", "probe");
    expect(refused).toMatchObject({
      code: 2,
      stderr:
        "taskwire: refusing to purge 3 unfinished tasks of probe (3 queued, 0 scheduled, 0 running) without confirmation: pass --yes (stdin or stdout is not a terminal to ask on)\n",
    });
    const question = "Purge 3 unfinished tasks of probe (3 queued, 0 scheduled, 0 running)? [y/N]";
    const declined = await atTerminal(question, "n", "queues", "purge", "probe");
    expect(declined.code, declined.screen).toBe(2);
    expect(declined.screen).toContain("taskwire: not confirmed: did not purge 3 unfinished tasks of probe");
    expect((await client.queues.getQueue("probe")).queued).toBe(3n);
    const confirmed = await atTerminal(question, "y", "queues", "purge", "probe", "--reason", "cleanup");
    expect(confirmed.code, confirmed.screen).toBe(0);
    expect(confirmed.screen).toContain("purged probe: 3 tasks cancelled");
    for (const task of queued) {
      expect(await task.status()).toMatchObject({ state: TaskState.CANCELLED, error: { message: "cleanup" } });
    }

    const resumed = await taskwireJson<{ queue: { paused?: boolean; workerType: string } }>(
      "queues",
      "resume",
      "probe",
    );
    expect(resumed.queue).toMatchObject({ workerType: "probe" });
    expect(resumed.queue.paused).toBeUndefined();
    expect((await client.submitTask(runProbe, { label: "after" }).then((task) => task.result())).label).toBe("after");

    // The gateway's own words: an unknown type, a missing permission.
    expect(await taskwire("queues", "pause", "nope")).toMatchObject({
      code: 1,
      stderr: 'taskwire: unknown worker type "nope"\n',
    });
    expect(await taskwire("queues", "pause", "probe", "--token-file", join(dir, "viewer.key"))).toMatchObject({
      code: 1,
      stderr: 'taskwire: viewer may not do this: it needs permission "operate:probe"\n',
    });
    expect(await taskwire("queues", "pause", "probe", "--until", "soon")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining(
        '--until "soon" is not a duration (e.g. 90s, 15m, 1h30m, 7d) or an ISO 8601 time',
      ),
    });
    expect(await taskwire("queues", "resume", "probe", "--until", "1h")).toMatchObject({
      code: 2,
      stderr: "taskwire: --until is not a flag of queues resume\n",
    });
    // A viewer may list.
    const viewed = await taskwire("queues", "list", "--token-file", join(dir, "viewer.key"));
    expect(viewed.code, viewed.stderr).toBe(0);
  }, 180_000);

  it("dlq list, show, retry and purge", async () => {
    await client.queues.purgeDeadLetters("probe");
    const dead = [];
    for (const label of ["dead-1", "dead-2", "dead-3"]) {
      const task = await client.submitTask(runProbe, { label, nonRetryable: true });
      await expect(task.result()).rejects.toThrow(/cannot work/);
      dead.push(task.id);
    }
    const [first, second, third] = dead as [string, string, string];
    await poll(async () => ((await client.queues.getQueue("probe")).deadLetters === 3n ? true : undefined));

    const table = await taskwire("dlq", "list", "probe");
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.trimEnd().split("\n")).toEqual([
      expect.stringMatching(/^ID +METHOD +ATTEMPT +DEAD +ERROR$/),
      expect.stringMatching(new RegExp(`^${first} +Run +1/3 +\\S+ +dead-1 cannot work$`)),
      expect.stringMatching(new RegExp(`^${second} +Run +1/3 +\\S+ +dead-2 cannot work$`)),
      expect.stringMatching(new RegExp(`^${third} +Run +1/3 +\\S+ +dead-3 cannot work$`)),
    ]);
    const page = await taskwireJson<{ deadLetters: { status: { taskId: string } }[]; nextPageToken: string }>(
      "dlq",
      "list",
      "probe",
      "--limit",
      "2",
    );
    expect(page.deadLetters.map((deadLetter) => deadLetter.status.taskId)).toEqual([first, second]);
    expect(page.nextPageToken).not.toBe("");

    const shown = await taskwire("dlq", "show", first);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^state +FAILED$/m);
    expect(shown.stdout).toMatch(/^error +FAILED_PRECONDITION: dead-1 cannot work$/m);
    expect(shown.stdout).toMatch(/^dead +\S+Z \(\d+s ago\)$/m);
    expect(shown.stdout).toMatch(/^payload +\{\n +"label": "dead-1",\n +"nonRetryable": true\n +\}$/m);
    expect(await taskwireJson("dlq", "show", first)).toMatchObject({
      deadLetter: { status: { taskId: first }, workItem: { taskId: first, payloadType: "probe.v1.RunRequest" } },
    });
    expect(await taskwire("dlq", "show", "probe.01JZ3X7Q8R9S0T1V2W3X4Y5Z6A")).toMatchObject({
      code: 1,
      stderr: "taskwire: task probe.01JZ3X7Q8R9S0T1V2W3X4Y5Z6A has no dead letter\n",
    });

    // One retry needs no confirmation; a type is not an id.
    healed.add("dead-1");
    expect(await taskwire("dlq", "retry", "probe")).toMatchObject({
      code: 2,
      stderr: 'taskwire: "probe" is a worker type, not a task id: retry all its dead letters with --all\n',
    });
    expect(await taskwire("dlq", "retry", first)).toMatchObject({ code: 0, stdout: `retried ${first}: PENDING\n` });
    await poll(async () => ((await client.getTask(first)).state === TaskState.SUCCEEDED ? true : undefined));

    // --all and purge are destructive: refused without --yes, nothing done.
    expect(await taskwire("dlq", "retry", "probe", "--all")).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("refusing to retry 2 dead letters of probe without confirmation: pass --yes"),
    });
    expect(await taskwire("dlq", "purge", "probe", third)).toMatchObject({
      code: 2,
      stderr: expect.stringContaining("refusing to purge 1 dead letter of probe without confirmation: pass --yes"),
    });
    expect((await client.queues.getQueue("probe")).deadLetters).toBe(2n);
    expect(await taskwire("dlq", "purge", "probe", third, "--yes")).toMatchObject({
      code: 0,
      stdout: "purged 1 dead letter of probe\n",
    });
    healed.add("dead-2");
    const retried = await taskwireJson<{ tasks: { taskId: string; state: string }[] }>(
      "dlq",
      "retry",
      "probe",
      "--all",
      "--yes",
    );
    expect(retried.tasks).toEqual([expect.objectContaining({ taskId: second, state: "TASK_STATE_PENDING" })]);
    await poll(async () => ((await client.getTask(second)).state === TaskState.SUCCEEDED ? true : undefined));
    expect(await taskwireJson("dlq", "purge", "probe", "--yes")).toEqual({});
    expect((await client.queues.getQueue("probe")).deadLetters).toBe(0n);
    expect(await taskwire("dlq", "list", "probe")).toMatchObject({
      code: 0,
      stdout: "",
      stderr: "no dead letters of probe\n",
    });
  }, 180_000);

  it("workers, and the configuration's gateway instead of --gateway", async () => {
    const table = await taskwire("workers");
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(
      /^WORKER +HOST +PID +TYPES +HEARTBEAT +RUNTIME\ncli-probe +\S+ +\d+ +probe 0\/4 +\d+s ago +node \S+\n$/,
    );
    const { workers } = await taskwireJson<{ workers: Record<string, unknown>[] }>("workers", "--type", "probe");
    expect(workers).toEqual([
      expect.objectContaining({
        workerId: "cli-probe",
        pid: process.pid,
        types: [{ workerType: "probe", concurrency: 4 }],
      }),
    ]);

    const { port } = new URL(gateway.url);
    await writeFile(
      join(dir, "taskwire.yaml"),
      `nats:\n  url: ${nats.url}\ngateway:\n  host: 127.0.0.1\n  port: ${port}\n  services:\n    - ${join(repoRoot, "test/gen/probe/v1/probe_taskwire.ts")}\n`,
    );
    const task = await client.submitTask(runProbe, { label: "configured" });
    await task.result();
    const shown = await taskwire("tasks", "get", task.id, "--config", join(dir, "taskwire.yaml"));
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^result +\{\n +"label": "configured",/m);
  }, 120_000);

  it("schedules create, list, preview, trigger, pause, resume and delete; bad usage exits 2", async () => {
    const created = await taskwire(
      ...["schedules", "create", "probe/heartbeat", "--method", "Run", "--every", "1s"],
      ...["--payload", '{"label":"beat"}', "--overlap", "allow_all", "--description", "a beat a second"],
    );
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^probe\/heartbeat: next \d{4}-\d\d-\d\dT/);
    await poll(async () => ((await client.schedules.getSchedule("probe", "heartbeat")).fired >= 2n ? true : undefined));
    const table = await taskwire("schedules", "list");
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(
      /^SCHEDULE +WHEN +NEXT +LAST +FIRED +SKIPPED +PAUSED\nprobe\/heartbeat +every 1s +\S+ +\S+ +\d+ +\d+ +no\n$/,
    );
    const preview = await taskwireJson<{ times: string[] }>(
      ...["schedules", "preview", "--cron", "0 9 * * 1-5", "--tz", "Europe/Paris", "--count", "3"],
    );
    expect(preview.times).toHaveLength(3);
    const triggered = await taskwire("schedules", "trigger", "probe/heartbeat");
    expect(triggered.code, triggered.stderr).toBe(0);
    expect((await client.task(triggered.stdout.trim(), runProbe.output).result()).label).toBe("beat");
    expect((await taskwire("schedules", "pause", "probe/heartbeat", "--note", "quiet")).code).toBe(0);
    const shown = await taskwireJson<{ schedule: { paused: boolean; pauseNote: string } }>(
      ...["schedules", "show", "probe/heartbeat"],
    );
    expect(shown.schedule).toMatchObject({ paused: true, pauseNote: "quiet" });
    expect((await taskwire("schedules", "resume", "probe/heartbeat")).stdout).toMatch(/next \d{4}-/);
    // A viewer may read schedules, not change them.
    const refused = await taskwire(
      ...["schedules", "pause", "probe/heartbeat", "--token-file", join(dir, "viewer.key")],
    );
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/operate:probe/);
    // Without a terminal, delete refuses unless --yes.
    expect((await taskwire("schedules", "delete", "probe/heartbeat")).code).toBe(2);
    expect((await taskwire("schedules", "delete", "probe/heartbeat", "--yes")).code).toBe(0);
    expect((await taskwire("schedules", "list")).stderr).toMatch(/no schedules/);
    const usage = await taskwire("schedules", "create", "probe/x", "--method", "Run");
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/either --cron EXPR .* or --every D/);
    const bad = await taskwire("schedules", "create", "probe/x", "--method", "Run", "--cron", "0 25 * * *");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/spec\..*hour.*25/);
  }, 120_000);
});

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { createTaskRegistry } from "../../sdk/core/task-registry.ts";
import { createNatsQueueBackend } from "../../sdk/nats/nats-queue-backend.ts";
import { createNatsTaskBackend } from "../../sdk/nats/nats-task-backend.ts";
import { createGateway } from "../../server/create-gateway.ts";
import { type AuditEntry, apiKeyHash } from "../../server/gateway-auth.ts";
import { type MetricsServer, serveSupervisorMetrics } from "../../worker-runtime/supervisor-metrics.ts";
import { probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { startDeployment, type TestDeployment } from "../support/deployment.ts";
import { poll } from "../support/poll.ts";
import { repoRoot } from "../support/tools.ts";

const run = probeService.methods.run;
const probeRun = { worker_type: "probe", method: "Run" };

/** One sample of Prometheus' text format. */
interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** The samples of a scrape, comments left out. */
function samples(text: string): Sample[] {
  const found: Sample[] = [];
  for (const line of text.split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[key as string] = value as string;
    }
    found.push({ name: match[1] as string, labels, value: Number(match[3]) });
  }
  return found;
}

/** The value of the first sample named `name` that has every label of `labels`. */
function sampleValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  return samples(text).find(
    (sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
  )?.value;
}

/** Every `taskwire_*` name in a PromQL expression. */
const metricNamesIn = (expression: string) => expression.match(/\btaskwire_[a-z0-9_]+/g) ?? [];

/**
 * Prometheus metrics of a real deployment: a gateway and a supervisor of two
 * worker processes on a real nats-server, scraped over HTTP; the dashboard and
 * alert rules in docs/ checked against what the scrapes hold.
 */
describe("Prometheus metrics", () => {
  let deployment: TestDeployment;
  let workerMetrics: MetricsServer;
  let client: TaskwireClient;

  beforeAll(async () => {
    deployment = await startDeployment(
      [probeService],
      [{ name: "probe", module: "test/fixtures/probe-worker.ts", processes: 2 }],
    );
    workerMetrics = await serveSupervisorMetrics(deployment.supervisor);
    client = await createClient({ gateway: deployment.gateway.url });
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    await workerMetrics?.close();
    await deployment?.stop();
  });

  const scrape = async (url: string, token?: string) => {
    const response = await fetch(url, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    return response.text();
  };
  const scrapeGateway = () => scrape(`${deployment.gateway.url}/metrics`);
  const scrapeWorkers = () => scrape(workerMetrics.url);

  /** What the workers count once the three tasks of the first test have ended. */
  const workerCounts = {
    started: 4, // ok, retried twice, doomed
    succeeded: 2,
    retrying: 1,
    failed: 1,
    retries: 1,
    durations: 4,
    waits: 3, // first deliveries only: a retry waited for its backoff too
  };
  const countsOf = (text: string) => ({
    started: sampleValue(text, "taskwire_tasks_started_total", probeRun),
    succeeded: sampleValue(text, "taskwire_tasks_finished_total", { ...probeRun, outcome: "succeeded" }),
    retrying: sampleValue(text, "taskwire_tasks_finished_total", { ...probeRun, outcome: "retrying" }),
    failed: sampleValue(text, "taskwire_tasks_finished_total", { ...probeRun, outcome: "failed" }),
    retries: sampleValue(text, "taskwire_task_retries_total", probeRun),
    durations: sampleValue(text, "taskwire_attempt_duration_seconds_count", probeRun),
    waits: sampleValue(text, "taskwire_queue_wait_seconds_count", probeRun),
  });

  it("counts tasks on the gateway and across the worker processes, by worker type, method and outcome", async () => {
    // Known before any task: a rate over them starts from zero.
    const before = await scrapeWorkers();
    expect(sampleValue(before, "taskwire_tasks_started_total", probeRun)).toBe(0);
    expect(sampleValue(before, "taskwire_tasks_finished_total", { ...probeRun, outcome: "failed" })).toBe(0);
    expect(sampleValue(await scrapeGateway(), "taskwire_tasks_submitted_total", probeRun)).toBe(0);

    const ok = await client.submitTask(run, { label: "ok", sleepMs: 50 });
    const retried = await client.submitTask(run, { label: "retried", failAttempts: 1 });
    const doomed = await client.submitTask(run, { label: "doomed", nonRetryable: true });
    expect((await ok.result()).label).toBe("ok");
    expect((await retried.result()).attempt).toBe(2);
    await expect(doomed.result()).rejects.toThrow(/doomed cannot work/);

    // A worker reports an attempt once its outcome is stored, which may be after its submitter heard.
    const workers = await poll(async () => {
      const text = await scrapeWorkers();
      return countsOf(text).failed === 1 && countsOf(text).succeeded === 2 ? text : undefined;
    });
    expect(countsOf(workers)).toEqual(workerCounts);
    expect(sampleValue(workers, "taskwire_attempt_duration_seconds_bucket", { ...probeRun, le: "+Inf" })).toBe(4);
    // The 50 ms attempt is in no bucket up to 25 ms.
    expect(sampleValue(workers, "taskwire_attempt_duration_seconds_bucket", { ...probeRun, le: "0.025" })).toBeLessThan(
      4,
    );
    expect(sampleValue(workers, "taskwire_attempt_duration_seconds_sum", probeRun)).toBeGreaterThanOrEqual(0.05);
    expect(sampleValue(workers, "taskwire_tasks_in_flight", probeRun)).toBe(0);
    expect(sampleValue(workers, "taskwire_nats_connected")).toBe(1);
    expect(sampleValue(workers, "process_cpu_user_seconds_total")).toBeGreaterThan(0);
    // Labels are the worker type, the method and the outcome, and nothing else.
    for (const sample of samples(workers).filter((s) => s.name.startsWith("taskwire_"))) {
      for (const label of Object.keys(sample.labels))
        expect(["worker_type", "method", "outcome", "le"]).toContain(label);
    }

    const gateway = await poll(async () => {
      const text = await scrapeGateway();
      return sampleValue(text, "taskwire_dead_letters", { worker_type: "probe" }) === 1 &&
        sampleValue(text, "taskwire_queue_running", { worker_type: "probe" }) === 0
        ? text
        : undefined;
    });
    expect(sampleValue(gateway, "taskwire_tasks_submitted_total", probeRun)).toBe(3);
    expect(sampleValue(gateway, "taskwire_queue_depth", { worker_type: "probe" })).toBe(0);
    expect(sampleValue(gateway, "taskwire_queue_oldest_age_seconds", { worker_type: "probe" })).toBe(0);
    expect(sampleValue(gateway, "taskwire_queue_paused", { worker_type: "probe" })).toBe(0);
    expect(sampleValue(gateway, "taskwire_queue_scheduled", { worker_type: "probe" })).toBe(0);
    expect(sampleValue(gateway, "taskwire_workers", { worker_type: "probe" })).toBe(2);
    expect(sampleValue(gateway, "taskwire_nats_connected")).toBe(1);
    expect(sampleValue(gateway, "process_cpu_user_seconds_total")).toBeGreaterThan(0);

    // A repeat of an idempotency key is the same task: counted once.
    const keyed = { idempotencyKey: "metrics-once" };
    await client.submitTask(run, { label: "keyed" }, keyed);
    await client.submitTask(run, { label: "keyed" }, keyed);
    expect(sampleValue(await scrapeGateway(), "taskwire_tasks_submitted_total", probeRun)).toBe(4);
    await poll(async () =>
      sampleValue(await scrapeWorkers(), "taskwire_tasks_finished_total", { ...probeRun, outcome: "succeeded" }) === 3
        ? true
        : undefined,
    );
  }, 60_000);

  it("keeps what a worker process counted once it is killed and restarted: the sums never go back", async () => {
    const counted = countsOf(await scrapeWorkers());
    expect(counted.started).toBe(5);
    const killed = [...deployment.supervisor.processes.values()];
    for (const child of killed) child.kill("SIGKILL");
    // The supervisor starts each again; the new processes have counted nothing yet.
    await poll(async () => {
      const pids = [...deployment.supervisor.processes.values()].map((child) => child.pid);
      return pids.length === 2 && killed.every((child) => !pids.includes(child.pid)) ? true : undefined;
    }, 30_000);
    expect(countsOf(await scrapeWorkers())).toEqual(counted);
    // Once the new processes run their workers, their gauges show (the killed ones' ended with them).
    const after = await poll(async () => {
      const text = await scrapeWorkers();
      return sampleValue(text, "taskwire_nats_connected") === 1 ? text : undefined;
    }, 30_000);
    expect(countsOf(after)).toEqual(counted);
    expect(sampleValue(after, "taskwire_tasks_in_flight", probeRun)).toBe(0);
  }, 60_000);

  it("shows the tasks a paused queue holds, and how long the oldest has waited", async () => {
    await client.queues.pauseQueue("probe");
    try {
      const submittedAt = Date.now();
      const held = await client.submitTask(run, { label: "held" });
      const gateway = await poll(async () => {
        const text = await scrapeGateway();
        return (sampleValue(text, "taskwire_queue_oldest_age_seconds", { worker_type: "probe" }) ?? 0) > 0.2
          ? text
          : undefined;
      });
      expect(sampleValue(gateway, "taskwire_queue_paused", { worker_type: "probe" })).toBe(1);
      expect(sampleValue(gateway, "taskwire_queue_depth", { worker_type: "probe" })).toBe(1);
      expect(sampleValue(gateway, "taskwire_queue_oldest_age_seconds", { worker_type: "probe" })).toBeLessThanOrEqual(
        (Date.now() - submittedAt) / 1000 + 1,
      );
      // Emptied while still paused: nothing waits any more.
      expect(await client.queues.purgeQueue("probe", "the metrics test is done with it")).toBe(1);
      await expect(held.result()).rejects.toThrow(/the metrics test is done with it/);
      await client.queues.resumeQueue("probe");
      const emptied = await scrapeGateway();
      expect(sampleValue(emptied, "taskwire_queue_paused", { worker_type: "probe" })).toBe(0);
      expect(sampleValue(emptied, "taskwire_queue_depth", { worker_type: "probe" })).toBe(0);
      expect(sampleValue(emptied, "taskwire_queue_oldest_age_seconds", { worker_type: "probe" })).toBe(0);
    } finally {
      await client.queues.resumeQueue("probe");
    }
  }, 30_000);

  it("serves /metrics behind the gateway's authentication to callers who may read every worker type", async () => {
    const keys = {
      reader: "tw_reader_0123456789abcdefghijklmnopqrstu",
      narrow: "tw_narrow_0123456789abcdefghijklmnopqrstu",
    };
    const audit: AuditEntry[] = [];
    const backend = await createNatsTaskBackend({ nc: deployment.nc, registry: createTaskRegistry([probeService]) });
    const secured = await createGateway({
      backend,
      queues: await createNatsQueueBackend({ nc: deployment.nc, tasks: backend }),
      services: [probeService],
      auth: {
        apiKeys: [
          { name: "prometheus", sha256: apiKeyHash(keys.reader), permissions: ["read:*"] },
          { name: "probe-reader", sha256: apiKeyHash(keys.narrow), permissions: ["read:probe", "submit:probe"] },
        ],
      },
      auditLog: (entry) => audit.push(entry),
    });
    try {
      const url = `${secured.url}/metrics`;
      const anonymous = await fetch(url);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get("www-authenticate")).toBe('Bearer realm="taskwire"');
      expect(await anonymous.text()).toBe(
        'this gateway requires credentials: send "authorization: Bearer <an API key>"\n',
      );
      const narrow = await fetch(url, { headers: { authorization: `Bearer ${keys.narrow}` } });
      expect(narrow.status).toBe(403);
      expect(await narrow.text()).toBe('probe-reader may not do this: it needs permission "read:*"\n');
      const wrong = await fetch(url, { headers: { authorization: "Bearer tw_unknown_0123456789abcdefghijklmnopqr" } });
      expect(wrong.status).toBe(401);
      expect(await wrong.text()).not.toContain("tw_unknown");

      const text = await scrape(url, keys.reader);
      expect(sampleValue(text, "taskwire_dead_letters", { worker_type: "probe" })).toBe(1);
      expect(audit).toEqual([
        expect.objectContaining({
          principal: "anonymous",
          method: "/metrics",
          action: "read",
          workerTypes: ["*"],
          outcome: "refused",
          code: "Unauthenticated",
        }),
        expect.objectContaining({
          principal: "probe-reader",
          via: "api-key",
          method: "/metrics",
          outcome: "refused",
          code: "PermissionDenied",
          reason: 'probe-reader may not do this: it needs permission "read:*"',
        }),
        expect.objectContaining({ principal: "anonymous", method: "/metrics", code: "Unauthenticated" }),
      ]);
      const post = await fetch(url, { method: "POST", headers: { authorization: `Bearer ${keys.reader}` } });
      expect(post.status).toBe(405);
    } finally {
      await secured.close();
      await backend.close();
    }
  }, 30_000);

  it("ships a Grafana dashboard and Prometheus alert rules that name only metrics the scrapes hold", async () => {
    const dashboard = JSON.parse(await readFile(join(repoRoot, "docs/grafana/taskwire.json"), "utf8")) as {
      title: string;
      panels: { title: string; targets?: { expr: string }[] }[];
      templating: { list: { query?: string | { query: string } }[] };
    };
    const alerts = parse(await readFile(join(repoRoot, "docs/prometheus/alerts.yml"), "utf8")) as {
      groups: { name: string; rules: Record<string, unknown>[] }[];
    };
    const expressions: string[] = [];
    expect(dashboard.title).toBe("Taskwire");
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) expressions.push(target.expr);
    }
    for (const variable of dashboard.templating.list) {
      const query = typeof variable.query === "object" ? variable.query.query : variable.query;
      if (query) expressions.push(query);
    }
    const alertNames: string[] = [];
    for (const group of alerts.groups) {
      expect(group.name).toBeTypeOf("string");
      for (const rule of group.rules) {
        expect(rule).toEqual({
          alert: expect.any(String),
          expr: expect.any(String),
          for: expect.stringMatching(/^\d+[smh]$/),
          labels: { severity: expect.stringMatching(/^(warning|critical)$/) },
          annotations: { summary: expect.any(String), description: expect.any(String) },
        });
        alertNames.push(rule.alert as string);
        expressions.push(rule.expr as string);
      }
    }
    expect(alertNames).toEqual(
      expect.arrayContaining([
        "TaskwireBacklogGrowing",
        "TaskwireOldestTaskTooOld",
        "TaskwireFailureRatioHigh",
        "TaskwireNoLiveWorkers",
      ]),
    );
    const named = new Set(expressions.flatMap(metricNamesIn));
    // The dashboard shows what the issue asks for, the alerts what they watch.
    for (const name of [
      "taskwire_queue_depth",
      "taskwire_queue_oldest_age_seconds",
      "taskwire_tasks_finished_total",
      "taskwire_attempt_duration_seconds_bucket",
      "taskwire_queue_wait_seconds_bucket",
      "taskwire_tasks_in_flight",
      "taskwire_workers",
      "taskwire_nats_connected",
    ]) {
      expect(named).toContain(name);
    }
    const scraped = new Set(samples(`${await scrapeGateway()}\n${await scrapeWorkers()}`).map((s) => s.name));
    expect([...named].filter((name) => !scraped.has(name))).toEqual([]);
  });
});

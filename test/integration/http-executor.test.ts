import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../cli/load-config.ts";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import type { TaskError } from "../../sdk/core/task-error.ts";
import { createSupervisor } from "../../worker-runtime/create-supervisor.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { implementHttpService } from "../../worker-runtime/http-executor.ts";
import { probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { repoRoot } from "../support/tools.ts";

const run = probeService.methods.run;

/** The HTTP push executor against a real local HTTP server that fails the first attempts. */
describe("HTTP push executor", () => {
  let nats: NatsServer;
  let client: TaskwireClient;
  let server: Server;
  let worker: Worker;
  let url: string;
  const seen: Array<{ headers: IncomingHttpHeaders; body: string }> = [];

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (chunk) => (body += chunk));
      req.on("end", () => {
        seen.push({ headers: req.headers, body });
        const attempt = Number(req.headers["taskwire-attempt"]);
        const { label, failAttempts, sleepMs } = JSON.parse(body) as {
          label: string;
          failAttempts?: number;
          sleepMs?: number;
        };
        if (attempt <= (failAttempts ?? 0)) {
          res.writeHead(503).end(`not yet (attempt ${attempt})`);
          return;
        }
        setTimeout(() => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(JSON.stringify({ label: label.toUpperCase(), attempt, workerId: "http" }));
        }, sleepMs ?? 0);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/run`;
    nats = await startNatsServer();
    client = await createClient({ nats: nats.url, services: [probeService] });
    worker = await createWorker({ nats: nats.url, services: [implementHttpService(probeService, { Run: url })] });
  }, 30_000);

  afterAll(async () => {
    await worker?.close();
    await client?.close();
    await nats?.stop();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  it("POSTs the request as Connect JSON with the task's headers; non-2xx answers are retried", async () => {
    const task = await client.submitTask(run, { label: "pushed", failAttempts: 2 }, { metadata: { tenant: "acme" } });
    expect(await task.result()).toMatchObject({ label: "PUSHED", attempt: 3, workerId: "http" });
    const requests = seen.filter((r) => r.headers["taskwire-task-id"] === task.id);
    expect(requests.map((r) => r.headers["taskwire-attempt"])).toEqual(["1", "2", "3"]);
    expect(requests[0]?.headers).toMatchObject({
      "content-type": "application/json",
      "taskwire-worker-type": "probe",
      "taskwire-method": "Run",
      "taskwire-meta-tenant": "acme",
    });
    expect(JSON.parse(requests[0]?.body ?? "")).toEqual({ label: "pushed", failAttempts: 2 });
    const status = await task.status();
    expect(status.errorHistory.map((e) => e.message)).toEqual([
      expect.stringMatching(/answered 503: not yet \(attempt 1\)/),
      expect.stringMatching(/answered 503: not yet \(attempt 2\)/),
    ]);
  });

  it("an answer later than the attempt's deadline fails the attempt", async () => {
    const task = await client.submitTask(
      run,
      { label: "late", sleepMs: 1_000 },
      { timeoutMs: 200, retry: { maxAttempts: 2 } },
    );
    const error = await task.result().then(
      () => undefined,
      (e: TaskError) => e,
    );
    expect(error?.code).toBe(Code.DeadlineExceeded);
    expect((await task.status()).state).toBe(TaskState.FAILED);
  });

  it("runs as a supervised pool configured in taskwire.yaml (worker.pools[].http)", async () => {
    const dir = await mkdtemp(join(tmpdir(), "taskwire-http-"));
    const file = join(dir, "taskwire.yaml");
    await writeFile(
      file,
      `gateway:
  services: [${join(repoRoot, "test/gen/probe/v1/probe_taskwire.ts")}]
worker:
  pools:
    - name: pusher
      http:
        probe/Run: ${url}
`,
    );
    const config = await loadConfig(file);
    await worker.close(); // only the pool's process serves the type now
    const supervisor = createSupervisor({ nats: nats.url, pools: config.worker.pools, onEvent: () => {} });
    try {
      await supervisor.ready;
      const task = await client.submitTask(run, { label: "configured" });
      expect((await task.result()).label).toBe("CONFIGURED");
      await writeFile(
        file,
        "worker:\n  pools:\n    - name: bad\n      module: x.ts\n      http: { probe/Run: http://x }\n",
      );
      await expect(loadConfig(file)).rejects.toThrow(/worker.pools\[0\] has http with module, language or command/);
    } finally {
      await supervisor.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses a target for an rpc the service does not have, or a malformed URL", () => {
    expect(() => implementHttpService(probeService, { Nope: "http://127.0.0.1:1/" })).toThrow(/has no rpc Nope/);
    expect(() => implementHttpService(probeService, { Run: "not a url" })).toThrow(/"not a url" is not a URL/);
  });
});

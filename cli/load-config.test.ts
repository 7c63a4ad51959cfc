import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "./load-config.ts";

describe("loadConfig", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-config-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const load = async (yaml: string) => {
    const file = join(dir, "taskwire.yaml");
    await writeFile(file, yaml);
    return loadConfig(file);
  };

  it("refuses a key it does not know, naming where and the keys it knows", async () => {
    await expect(load("wroker:\n  pools: []\n")).rejects.toThrow(
      'taskwire.yaml: the document has an unknown key "wroker" (known: nats, gateway, worker, retention, schedules)',
    );
    await expect(load("worker:\n  crashLoopLimt: 3\n")).rejects.toThrow(/worker has an unknown key "crashLoopLimt"/);
    await expect(load("gateway:\n  prot: 8080\n")).rejects.toThrow(/gateway has an unknown key "prot"/);
    await expect(load("worker:\n  pools:\n    - name: a\n      module: m.ts\n      proceses: 2\n")).rejects.toThrow(
      /worker.pools\[0\] has an unknown key "proceses"/,
    );
  });

  it("reads pools in Python and Go: their module, command and env; refuses what a pool cannot have", async () => {
    const pools = (yaml: string) => load(`worker:\n  pools:\n${yaml}`).then((c) => c.worker.pools);
    expect(
      await pools(
        "    - { name: py, language: python, module: workers/thumbs.py, command: [.venv/bin/python, -m, taskwire.worker_process] }\n" +
          "    - { name: pymod, language: python, module: shop.workers }\n" +
          "    - { name: gopher, language: go, command: ./bin/resizer }\n" +
          "    - { name: ts, module: w.ts }\n",
      ),
    ).toEqual([
      {
        name: "py",
        language: "python",
        module: join(dir, "workers/thumbs.py"),
        command: [join(dir, ".venv/bin/python"), "-m", "taskwire.worker_process"],
        processes: 1,
      },
      { name: "pymod", language: "python", module: "shop.workers", processes: 1 },
      { name: "gopher", language: "go", command: [join(dir, "bin/resizer")], processes: 1 },
      { name: "ts", module: join(dir, "w.ts"), processes: 1 },
    ]);
    expect(
      await pools(
        "    - { name: py, language: python, module: w.py, env: { PYTHONPATH: gen/python, RETRIES: 3 } }\n" +
          "    - { name: web, http: { hasher/Digest: http://127.0.0.1:9000/digest }, env: { TOKEN_FILE: /run/t } }\n",
      ),
    ).toMatchObject([
      { name: "py", env: { PYTHONPATH: "gen/python", RETRIES: "3" } },
      { name: "web", env: { TOKEN_FILE: "/run/t", TASKWIRE_HTTP_TARGETS: expect.any(String) } },
    ]);
    await expect(pools("    - { name: a, module: w.ts, env: { TASKWIRE_WORKER_ID: x } }\n")).rejects.toThrow(
      /worker.pools\[0\].env.TASKWIRE_WORKER_ID is set by the supervisor itself/,
    );
    await expect(pools('    - { name: a, module: w.ts, env: { "A-B": x } }\n')).rejects.toThrow(
      /worker.pools\[0\].env has "A-B", which is not a variable name/,
    );
    await expect(pools("    - { name: a, language: rust, module: m.rs }\n")).rejects.toThrow(
      /worker.pools\[0\].language must be typescript, python or go, got "rust"/,
    );
    await expect(pools("    - { name: a, language: go, module: m.go }\n")).rejects.toThrow(
      /worker.pools\[0\].module a Go pool has no module/,
    );
    await expect(pools("    - { name: a, language: go }\n")).rejects.toThrow(
      /worker.pools\[0\].command a Go pool needs the worker binary/,
    );
    await expect(pools("    - { name: a, language: python }\n")).rejects.toThrow(
      /worker.pools\[0\].module a Python pool needs its handler module/,
    );
    await expect(pools("    - { name: a, module: w.ts, command: [x] }\n")).rejects.toThrow(
      /worker.pools\[0\].command is for Python and Go pools/,
    );
  });

  it("serves the console unless gateway.console is false, and refuses another value", async () => {
    expect((await load("gateway:\n  port: 8080\n")).gateway.console).toBe(true);
    expect((await load("gateway:\n  console: false\n")).gateway.console).toBe(false);
    await expect(load("gateway:\n  console: off\n")).rejects.toThrow(
      /gateway.console must be true or false \(false: the gateway serves no console\)/,
    );
  });

  it("reads the supervisor's restart settings, leaving the unset ones to its defaults", async () => {
    const config = await load("worker:\n  crashLoopLimit: 0\n  restartBackoffMs: 50\n");
    expect(config.worker.restarts).toEqual({ crashLoopLimit: 0, restartBackoffMs: 50 });
    expect(config.worker.ackWaitMs).toBeUndefined();
  });

  it("reads where the supervisor serves metrics, and refuses a bad port or host, naming the key", async () => {
    expect((await load("worker:\n  pools: []\n")).worker.metrics).toBeUndefined();
    expect((await load("worker:\n  metrics:\n    port: 9464\n")).worker.metrics).toEqual({
      host: "127.0.0.1",
      port: 9464,
    });
    expect((await load("worker:\n  metrics: { host: 0.0.0.0, port: 0 }\n")).worker.metrics).toEqual({
      host: "0.0.0.0",
      port: 0,
    });
    await expect(load("worker:\n  metrics:\n    host: 0.0.0.0\n")).rejects.toThrow(
      /worker.metrics.port is required: the port Prometheus scrapes, e.g. 9464/,
    );
    await expect(load("worker:\n  metrics:\n    port: 70000\n")).rejects.toThrow(
      /worker.metrics.port must be a port from 0 to 65535, got 70000/,
    );
    await expect(load("worker:\n  metrics:\n    port: http\n")).rejects.toThrow(
      /worker.metrics.port must be an integer >= 0/,
    );
    await expect(load("worker:\n  metrics:\n    port: 9464\n    path: /m\n")).rejects.toThrow(
      /worker.metrics has an unknown key "path"/,
    );
    await expect(load('worker:\n  metrics:\n    host: ""\n    port: 9464\n')).rejects.toThrow(
      /worker.metrics.host must be a non-empty string/,
    );
  });

  it("reads retention as durations, and refuses what is not one, naming the key", async () => {
    const config = await load("retention:\n  status: 12h\n  deadLetters: 0\n  maxResultBytes: 65536\n");
    expect(config.retention).toEqual({ statusTtlMs: 43_200_000, deadLetterTtlMs: 0, maxResultBytes: 65_536 });
    expect((await load("worker:\n  pools: []\n")).retention).toEqual({});
    await expect(load("retention:\n  status: 7 days\n")).rejects.toThrow(
      /retention.status must be a duration such as "30s", "15m", "12h" or "7d" \(0: forever\), got "7 days"/,
    );
    await expect(load("retention:\n  maxResultBytes: 0\n")).rejects.toThrow(
      /retention.maxResultBytes must be an integer >= 1/,
    );
    await expect(load("retention:\n  results: 1\n")).rejects.toThrow(/retention has an unknown key "results"/);
  });
});

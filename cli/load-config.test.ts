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
      'taskwire.yaml: the document has an unknown key "wroker" (known: nats, gateway, worker, retention)',
    );
    await expect(load("worker:\n  crashLoopLimt: 3\n")).rejects.toThrow(/worker has an unknown key "crashLoopLimt"/);
    await expect(load("gateway:\n  prot: 8080\n")).rejects.toThrow(/gateway has an unknown key "prot"/);
    await expect(load("worker:\n  pools:\n    - name: a\n      module: m.ts\n      proceses: 2\n")).rejects.toThrow(
      /worker.pools\[0\] has an unknown key "proceses"/,
    );
  });

  it("reads the supervisor's restart settings, leaving the unset ones to its defaults", async () => {
    const config = await load("worker:\n  crashLoopLimit: 0\n  restartBackoffMs: 50\n");
    expect(config.worker.restarts).toEqual({ crashLoopLimit: 0, restartBackoffMs: 50 });
    expect(config.worker.ackWaitMs).toBeUndefined();
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

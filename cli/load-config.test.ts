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
      'taskwire.yaml: the document has an unknown key "wroker" (known: nats, gateway, worker)',
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
});

import { execFile, spawnSync } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import type { FaultAccount } from "../support/fault-accounting.ts";
import { describeAccount, noShortfalls, shortfalls } from "../support/fault-accounting.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);

/** Whether this machine lets an unprivileged user make a user and network namespace. */
const namespaces = spawnSync("unshare", ["-rn", "true"]).status === 0;

/**
 * A network partition of one node of three, made with network namespaces: the
 * scenario (test/fixtures/partition-scenario.ts) runs as root of a namespace of
 * its own, each nats-server in a namespace joined by a veth, and cuts the node
 * leading the task stream off by taking its link down. Where namespaces are
 * not permitted, cluster-faults.test.ts's freeze of a node stands in for it.
 */
describe("a partition of one node of three", () => {
  it.skipIf(!namespaces)(
    "loses no acknowledged task: the majority elects a leader and takes tasks; the cut node catches up",
    async () => {
      const { stdout } = await run(
        "unshare",
        [
          "-rn",
          process.execPath,
          "--conditions=taskwire-source",
          join(repoRoot, "test/fixtures/partition-scenario.ts"),
        ],
        { cwd: repoRoot, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      );
      const result = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as {
        acknowledged: number;
        duringPartition: number;
        cut: string;
        newLeader: string;
        electedMs: number;
        caughtUpMs: number | undefined;
        account: FaultAccount;
      };
      console.log(
        `partition: ${result.cut}, leader of TASKS_hasher, cut off; ${result.newLeader} led after ${result.electedMs} ms; ` +
          `${result.acknowledged} tasks acknowledged, ${result.duringPartition - 300} during the partition; ` +
          `its copy current ${result.caughtUpMs} ms after it was back; ` +
          describeAccount(result.account),
      );
      expect(result.acknowledged).toBe(900);
      expect(result.duringPartition).toBe(600);
      expect(result.newLeader).not.toBe(result.cut);
      expect(result.caughtUpMs).toBeDefined();
      expect(shortfalls(result.account)).toEqual(noShortfalls);
    },
    300_000,
  );
});

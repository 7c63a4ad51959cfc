import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { repoRoot } from "./support/tools.ts";

const script = join(repoRoot, "scripts/test-summary.mjs");

/** Runs the CI summary on a report; its stdout line and exit code. */
async function summary(report: object | undefined, startedMs: number, dir: string) {
  const path = join(dir, `report-${Math.random().toString(36).slice(2)}.json`);
  if (report) await writeFile(path, JSON.stringify(report));
  const ran = await promisify(execFile)(process.execPath, [script, path, String(startedMs)]).then(
    (done) => ({ ...done, code: 0 }),
    (failed: { stdout: string; stderr: string; code: number }) => failed,
  );
  return { line: ran.stdout.trim(), code: ran.code, stderr: ran.stderr };
}

const report = (changes: object) => ({
  startTime: 2_000,
  success: true,
  numPassedTests: 7,
  numFailedTests: 0,
  numPendingTests: 0,
  numTodoTests: 0,
  testResults: [],
  ...changes,
});

describe("CI's summary line (scripts/test-summary.mjs)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-summary-"));
  });
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("counts this run's report", async () => {
    expect(await summary(report({}), 1_000, dir)).toMatchObject({ line: "7 passed, 0 failed", code: 0 });
  });

  it("fails on a report written before the run started", async () => {
    const stale = await summary(report({}), 3_000, dir);
    expect(stale).toMatchObject({ line: "0 passed, 1 failed", code: 1 });
    expect(stale.stderr).toMatch(/from an earlier run/);
  });

  it("fails when there is no report", async () => {
    expect(await summary(undefined, 1_000, dir)).toMatchObject({ line: "0 passed, 1 failed", code: 1 });
  });

  it("counts unhandled errors (vitest's unsuccessful run with no failed test) as a failure", async () => {
    const unhandled = await summary(report({ success: false }), 1_000, dir);
    expect(unhandled).toMatchObject({ line: "7 passed, 1 failed", code: 1 });
    expect(unhandled.stderr).toMatch(/unhandled errors/);
  });

  it("counts a file that failed to load", async () => {
    const broken = report({
      success: false,
      testResults: [{ status: "failed", assertionResults: [] }],
    });
    expect(await summary(broken, 1_000, dir)).toMatchObject({ line: "7 passed, 1 failed", code: 1 });
  });
});

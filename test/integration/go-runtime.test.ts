import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect, it } from "vitest";
import { goTool } from "../support/find-binary.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);

/**
 * The Go worker runtime's own unit tests (go/taskwire/*_test.go: the attempt
 * rules, backoff, priority slots), so that the suite runs them; the worker
 * conformance suite runs the runtime itself.
 */
it("the Go worker runtime's unit tests pass (go vet, go test)", async () => {
  const go = goTool();
  const cwd = join(repoRoot, "go");
  await run(go, ["vet", "./..."], { cwd });
  const { stdout } = await run(go, ["test", "-count=1", "./..."], { cwd });
  expect(stdout).toMatch(/^ok\s+taskwire\/go\/taskwire\s/m);
}, 150_000);

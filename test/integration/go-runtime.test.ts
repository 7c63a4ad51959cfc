import { execFile } from "node:child_process";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { expect, it } from "vitest";
import { isExecutable } from "../support/find-binary.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);

/** `go` from PATH, else from /usr/local/go/bin as scripts/install-tools.sh looks for it. */
function goBinary(): string {
  const directories = [...(process.env.PATH ?? "").split(delimiter), "/usr/local/go/bin"];
  const found = directories.map((d) => join(d, "go")).find(isExecutable);
  if (!found) throw new Error('go not found on PATH nor in /usr/local/go/bin: install Go, then run "npm test" again');
  return found;
}

/**
 * The Go worker runtime's own unit tests (go/taskwire/*_test.go: the attempt
 * rules, backoff, priority slots), so that the suite runs them; the worker
 * conformance suite runs the runtime itself.
 */
it("the Go worker runtime's unit tests pass (go vet, go test)", async () => {
  const go = goBinary();
  const cwd = join(repoRoot, "go");
  await run(go, ["vet", "./..."], { cwd });
  const { stdout } = await run(go, ["test", "-count=1", "./..."], { cwd });
  expect(stdout).toMatch(/^ok\s+taskwire\/go\/taskwire\s/m);
}, 150_000);

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { connectConformanceBinary, repoRoot } from "./support/tools.ts";

/**
 * The official Connect conformance suite (connectrpc.com/conformance v1.0.7), run
 * against the gateway's HTTP layer (its fast path included) as a server and against
 * the SDK's gateway transport as a client, for what each serves and speaks
 * (test/conformance/*.yaml; docs/conformance.md lists what is left out, and why).
 */
describe("the Connect conformance suite", () => {
  const suite = async (mode: "server" | "client", ...flags: string[]) => {
    const args = [
      "--mode",
      mode,
      "--conf",
      `test/conformance/${mode}.yaml`,
      ...flags,
      "--",
      process.execPath,
      "--conditions=taskwire-source",
      `test/conformance/${mode}.ts`,
    ];
    // It exits non-zero, naming each failed case, when any case fails unexpectedly.
    const { stdout, stderr } = await promisify(execFile)(connectConformanceBinary(), args, {
      cwd: repoRoot,
      timeout: 240_000,
      maxBuffer: 64 * 1024 * 1024,
    }).catch((error: { stdout: string; stderr: string }) => {
      throw new Error(`connectconformance --mode ${mode} failed:\n${error.stdout}\n${error.stderr}`);
    });
    return `${stdout}\n${stderr}`;
  };

  it("the gateway passes every server case of the protocols, codecs and calls it serves", async () => {
    const output = await suite("server", "--known-flaky", "@test/conformance/known-flaky-server.txt");
    const [, passed] = output.match(/^(\d+) passed, 0 failed$/m) ?? [];
    expect(Number(passed)).toBeGreaterThanOrEqual(697);
  }, 300_000);

  it("the SDK's gateway transport passes every client case of what it speaks, but those connect-node fails too", async () => {
    const output = await suite("client", "--known-failing", "@test/conformance/known-failing-client.txt");
    const [, passed] = output.match(/^(\d+) passed, 0 failed$/m) ?? [];
    expect(Number(passed)).toBeGreaterThanOrEqual(422);
    expect(output).toMatch(/Another 10 failed as expected/);
  }, 300_000);
});

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort, type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);
const taskwireArgs = (...args: string[]) => ["--conditions=taskwire-source", join(repoRoot, "cli/main.ts"), ...args];

/** Runs the taskwire command; resolves with its exit code and output whether or not it failed. */
async function taskwire(cwd: string, env: NodeJS.ProcessEnv, ...args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, taskwireArgs(...args), {
      cwd,
      env: { ...process.env, ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/**
 * An API key from `taskwire key create` to a gateway started from taskwire.yaml,
 * and the CLI's calls with and without it.
 */
describe("gateway credentials from the command line", () => {
  let dir: string;
  let nats: NatsServer;
  let gateway: ChildProcess | undefined;
  let gatewayUrl: string;
  let output = "";

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-cli-auth-"));
    nats = await startNatsServer();
  }, 30_000);

  /** A taskwire.yaml in the test's directory: the hasher's gateway on `port`, then `gatewayKeys` under gateway:. */
  const writeGatewayConfig = (name: string, port: number, gatewayKeys: string) =>
    writeFile(
      join(dir, name),
      `nats:
  url: ${nats.url}
gateway:
  port: ${port}
  services:
    - ${join(repoRoot, "examples/gen/example/v1/hash_taskwire.ts")}
${gatewayKeys}`,
    );

  afterAll(async () => {
    gateway?.kill("SIGKILL");
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("key create writes the key to a file of its own and prints only its hash", async () => {
    const created = await taskwire(
      dir,
      {},
      "key",
      "create",
      "--name",
      "billing",
      "--permission",
      "submit:hasher",
      "--permission",
      "read:hasher",
      "--out",
      join(dir, "billing.key"),
    );
    expect(created.code, created.stderr).toBe(0);
    const key = (await readFile(join(dir, "billing.key"), "utf8")).trim();
    expect(key).toMatch(/^tw_[A-Za-z0-9_-]{43}$/);
    expect((await stat(join(dir, "billing.key"))).mode & 0o777).toBe(0o600);
    expect(created.stdout + created.stderr).not.toContain(key);
    const entry = created.stdout.slice(created.stdout.indexOf("  - name: billing"));
    expect(entry).toMatch(/sha256: "[0-9a-f]{64}"\n {4}permissions: \["submit:hasher", "read:hasher"\]/);

    // Not over an existing file, and not with a permission that is none.
    const again = await taskwire(
      dir,
      {},
      "key",
      "create",
      "--name",
      "billing",
      "--permission",
      "read:hasher",
      "--out",
      join(dir, "billing.key"),
    );
    expect(again.stderr).toContain("exists: choose another --out");
    const bad = await taskwire(dir, {}, "key", "create", "--name", "x", "--permission", "write:hasher");
    expect(bad.stderr).toContain('--permission[0] "write:hasher" has no known action');

    const port = await freePort();
    gatewayUrl = `http://127.0.0.1:${port}`;
    await writeGatewayConfig(
      "taskwire.yaml",
      port,
      `  auth:
    apiKeys:
${entry
  .split("\n")
  .filter((line) => line.startsWith("  "))
  .map((line) => `    ${line}`)
  .join("\n")}
`,
    );
    gateway = spawn(process.execPath, taskwireArgs("gateway"), { cwd: dir });
    gateway.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    gateway.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    await poll(async () => {
      if (gateway?.exitCode !== null) throw new Error(`gateway exited:\n${output}`);
      // Listening, and connected to NATS: it serves.
      return output.includes("taskwire gateway: connected to NATS") ? true : undefined;
    }, 60_000);
  }, 90_000);

  it("submit and status need the key: --token-file or TASKWIRE_TOKEN", async () => {
    const submit = ["submit", "hasher/Digest", "--json", '{"text":"cli"}', "--gateway", gatewayUrl];
    const anonymous = await taskwire(dir, { TASKWIRE_TOKEN: "" }, ...submit);
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toContain('requires credentials: send "authorization: Bearer <an API key>"');

    const submitted = await taskwire(dir, {}, ...submit, "--token-file", join(dir, "billing.key"));
    expect(submitted.code, submitted.stderr).toBe(0);
    const id = submitted.stdout.trim();
    expect(id).toMatch(/^hasher\./);

    const key = (await readFile(join(dir, "billing.key"), "utf8")).trim();
    const status = await taskwire(dir, { TASKWIRE_TOKEN: key }, "status", id, "--gateway", gatewayUrl);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ taskId: id, workerType: "hasher", submittedBy: "billing" });
    // The gateway's log names the refusal, and never the key.
    await poll(async () => (output.includes('"outcome":"refused"') ? true : undefined), 10_000);
    expect(output).not.toContain(key);
  });

  it("a gateway whose configuration grants an unknown permission, or sets a limit of 0, does not start", async () => {
    await writeGatewayConfig(
      "bad.yaml",
      await freePort(),
      `  auth:
    apiKeys:
      - name: x
        sha256: "${"0".repeat(64)}"
        permissions: [delete:hasher]
`,
    );
    const started = await taskwire(dir, {}, "gateway", "--config", "bad.yaml");
    expect(started.code).not.toBe(0);
    await writeGatewayConfig(
      "bad-limits.yaml",
      await freePort(),
      `  limits:
    maxStreams: 0
`,
    );
    const limited = await taskwire(dir, {}, "gateway", "--config", "bad-limits.yaml");
    expect(limited.stderr).toContain(
      `${join(dir, "bad-limits.yaml")}: gateway.limits.maxStreams must be an integer from 1 to 2147483647, got 0`,
    );
    expect(started.stderr).toContain(
      `${join(dir, "bad.yaml")}: gateway.auth.apiKeys[0].permissions[0] "delete:hasher"`,
    );
  });
});

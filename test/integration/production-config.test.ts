import { type ChildProcess, execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect as connectTcp } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { apiKeyHash } from "../../server/gateway-auth.ts";
import { makeCertificates } from "../support/certificates.ts";
import { exampleDigest } from "../support/deployment.ts";
import { freePort } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";
import { natsServerBinary, repoRoot } from "../support/tools.ts";

const run = promisify(execFile);

/** The section of docs/security.md this test runs. */
function documented() {
  const doc = readFileSync(join(repoRoot, "docs/security.md"), "utf8");
  const section = doc.slice(doc.indexOf("## Production configuration, end to end"));
  const files = new Map<string, string>();
  for (const [, name, text] of section.matchAll(/```\w+ ([\w.-]+)\n([\s\S]*?)```/g)) {
    files.set(name as string, text as string);
  }
  const roles = new Map<string, string>();
  for (const [, role, block] of doc.matchAll(/```conf\n# role: (\w+)\n([\s\S]*?)```/g)) {
    roles.set(role as string, block as string);
  }
  return { files, roles };
}

/** Whether something accepts TCP connections on the port. */
const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connectTcp(port, "127.0.0.1", () => {
      socket.destroy();
      resolve(true);
    });
    socket.on("error", () => resolve(false));
  });

/**
 * docs/security.md's production configuration, as written there: nats-server with
 * TLS and a NATS user per role (the documented permission blocks), a gateway with
 * TLS and an API key made by `taskwire key create`, workers on their own user, and
 * `taskwire submit` over https with the key. Only ports, the store directory and
 * paths into this repository are put in.
 */
describe("the production configuration of docs/security.md", () => {
  const started: ChildProcess[] = [];
  let dir: string | undefined;

  afterAll(async () => {
    for (const child of started) child.kill("SIGTERM");
    await Promise.all(
      started.map((child) =>
        child.exitCode === null && child.signalCode === null
          ? new Promise((resolve) => child.once("exit", resolve))
          : undefined,
      ),
    );
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("runs a task through it", async () => {
    const { files, roles } = documented();
    expect([...files.keys()].sort()).toEqual(["gateway.yaml", "nats-server.conf", "production", "worker.yaml"]);
    dir = await mkdtemp(join(tmpdir(), "taskwire-production-"));
    const cwd = dir;
    await makeCertificates(join(cwd, "certs"), ["nats", "gateway"]);
    await mkdir(join(cwd, "permissions"));
    await writeFile(join(cwd, "permissions/gateway.conf"), roles.get("gateway") as string);
    await writeFile(join(cwd, "permissions/worker-hasher.conf"), roles.get("worker") as string);
    const natsPort = await freePort();
    const gatewayPort = await freePort();
    const env = {
      ...process.env,
      GATEWAY_NATS_PASSWORD: "gateway-secret-7f3a",
      HASHER_NATS_PASSWORD: "hasher-secret-91c2",
    };
    const taskwire = (args: string[]) => ["--conditions=taskwire-source", join(repoRoot, "cli/main.ts"), ...args];
    const output = new Map<ChildProcess, string>();
    const background = (command: string, args: string[]) => {
      const child = spawn(command, args, { cwd, env });
      output.set(child, "");
      const collect = (chunk: Buffer) => output.set(child, `${output.get(child)}${chunk}`);
      child.stdout?.on("data", collect);
      child.stderr?.on("data", collect);
      started.push(child);
      return child;
    };
    const until = (child: ChildProcess, text: string) =>
      poll(async () => {
        if (child.exitCode !== null) throw new Error(`exited:\n${output.get(child)}`);
        return output.get(child)?.includes(text) ? true : undefined;
      }, 60_000);

    // The commands of the "sh production" block, in order.
    const lines = (files.get("production") as string)
      .replace(/\\\n\s*/g, "")
      .trim()
      .split("\n");
    for (const line of lines) {
      const words = line.replace(/ &$/, "").split(" ");
      const [program, ...rest] = words;
      const args = rest.map((word) =>
        word.replace(/^'(.*)'$/, "$1").replace("https://localhost:8443", `https://localhost:${gatewayPort}`),
      );
      if (program === "nats-server") {
        const conf = (files.get("nats-server.conf") as string)
          .replace("port: 4222", `port: ${natsPort}`)
          .replace("/var/lib/nats", join(cwd, "store"));
        await writeFile(join(cwd, "nats-server.conf"), conf);
        background(natsServerBinary(), args);
        await poll(async () => ((await listening(natsPort)) ? true : undefined), 30_000);
      } else if (args[0] === "key") {
        await run(process.execPath, taskwire(args), { cwd, env });
        const key = (await readFile(join(cwd, "billing.key"), "utf8")).trim();
        for (const name of ["gateway.yaml", "worker.yaml"]) {
          const yaml = (files.get(name) as string)
            .replace("localhost:4222", `localhost:${natsPort}`)
            .replace("port: 8443", `port: ${gatewayPort}`)
            .replace("<printed by taskwire key create>", apiKeyHash(key))
            .replaceAll("examples/", `${repoRoot}/examples/`);
          await writeFile(join(cwd, name), yaml);
        }
      } else if (args[0] === "gateway") {
        await until(background(process.execPath, taskwire(args)), "taskwire gateway: connected to NATS");
      } else if (args[0] === "worker") {
        await until(background(process.execPath, taskwire(args)), "taskwire worker: ready");
      } else {
        expect(args[0]).toBe("submit");
        const submitted = await run(process.execPath, taskwire(args), { cwd, env, timeout: 60_000 });
        expect(JSON.parse(submitted.stdout)).toMatchObject({ hex: exampleDigest("hello", 1) });
      }
    }
    // No process printed a secret.
    for (const text of output.values()) {
      expect(text).not.toContain("gateway-secret-7f3a");
      expect(text).not.toContain("hasher-secret-91c2");
    }
  }, 180_000);
});

import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { copyFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import * as https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as tls from "node:tls";
import { promisify } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { reportService } from "../../examples/gen/example/v1/report_taskwire.ts";
import { createClient } from "../../sdk/client/create-client.ts";
import { createGateway } from "../../server/create-gateway.ts";
import { apiKeyHash } from "../../server/gateway-auth.ts";
import { FakeTaskBackend } from "../../server/test-support/fake-task-backend.ts";
import { type Certificates, makeCertificates } from "../support/certificates.ts";
import { exampleDigest, startDeployment, type TestDeployment } from "../support/deployment.ts";
import { freePort } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";
import { grpcurlBinary, repoRoot } from "../support/tools.ts";

const run = promisify(execFile);
const token = "tw_tls_0123456789abcdefghijklmnopqrstuvwxyz012";
const taskwireArgs = (...args: string[]) => ["--conditions=taskwire-source", join(repoRoot, "cli/main.ts"), ...args];

/** The subject CN of the certificate a new TLS connection to `port` is shown. */
function servedName(port: number, ca: Buffer | string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, ca, servername: "localhost" }, () => {
      const subject = socket.getPeerCertificate().subject?.CN;
      socket.end();
      resolve(String(subject));
    });
    socket.on("error", reject);
  });
}

/**
 * A gateway serving TLS (HTTP/2 by ALPN and HTTP/1.1) with an API key, reached by
 * the SDK, a plain HTTPS client, grpcurl and the CLI; its certificate reloaded
 * without dropping calls in flight.
 */
describe("gateway TLS", () => {
  let dir: string;
  let certificates: Certificates;
  /** The CA's PEM, as clients take it. */
  let ca: Buffer;
  let deployment: TestDeployment;
  /** The files the gateway reads: copies, so that a reload can swap them. */
  let served: { cert: string; key: string };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-tls-"));
    certificates = await makeCertificates(join(dir, "pki"), ["gateway", "renewed", "ops", "stranger"]);
    ca = readFileSync(certificates.ca);
    served = { cert: join(dir, "served.pem"), key: join(dir, "served-key.pem") };
    await copyFile(certificates.issued.gateway?.cert as string, served.cert);
    await copyFile(certificates.issued.gateway?.key as string, served.key);
    deployment = await startDeployment(
      [hashService, reportService],
      [
        { name: "hasher", module: "examples/hash/hash-worker.ts", processes: 1 },
        { name: "reports", module: "examples/report/report-worker.ts", processes: 1 },
      ],
      {
        services: [hashService, reportService],
        tls: served,
        auth: { apiKeys: [{ name: "tls", sha256: apiKeyHash(token), permissions: ["admin"] }] },
        auditLog: () => {},
      },
    );
  }, 60_000);

  afterAll(async () => {
    await deployment?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("serves the SDK over HTTP/2 and a plain HTTPS client over HTTP/1.1, at an https:// URL", async () => {
    const { gateway } = deployment;
    expect(gateway.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const client = await createClient({ gateway: gateway.url, token, tls: { ca } });
    try {
      const handle = await client.submitTask(hashService.methods.digest, { text: "hello", rounds: 3 });
      expect((await handle.result()).hex).toBe(exampleDigest("hello", 3));
    } finally {
      await client.close();
    }
    // HTTP/1.1 (no ALPN from Node's https client), Connect JSON.
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const request = https.request(
        `${gateway.url}/taskwire.v1.TaskService/ListTasks`,
        {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
          agent: new https.Agent({ ca }),
        },
        (response) => {
          let body = "";
          response.on("data", (chunk) => {
            body += chunk;
          });
          response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
        },
      );
      request.on("error", reject);
      request.end(JSON.stringify({ workerType: "hasher" }));
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body).tasks.length).toBeGreaterThan(0);
  });

  it("serves grpcurl with -cacert, and the CLI with --ca and a token", async () => {
    const { gateway } = deployment;
    const address = gateway.url.replace("https://", "");
    const { stdout } = await run(
      grpcurlBinary(),
      ["-cacert", certificates.ca, "-H", `authorization: Bearer ${token}`, address, "list"],
      { timeout: 30_000 },
    );
    expect(stdout).toContain("example.v1.HashService");
    const tokenFile = join(dir, "token");
    await writeFile(tokenFile, token);
    const submitted = await run(
      process.execPath,
      taskwireArgs(
        "submit",
        "hasher/Digest",
        "--json",
        '{"text":"hello","rounds":3}',
        "--wait",
        "--gateway",
        gateway.url,
        "--token-file",
        tokenFile,
        "--ca",
        certificates.ca,
      ),
      { cwd: dir, timeout: 60_000 },
    );
    expect(JSON.parse(submitted.stdout)).toMatchObject({ hex: exampleDigest("hello", 3) });
    // Without the CA the certificate is not trusted, and the error says so.
    const untrusted = await run(
      process.execPath,
      taskwireArgs("status", "hasher.01JEXAMPLE0000000000000000", "--gateway", gateway.url, "--token-file", tokenFile),
      { cwd: dir, timeout: 60_000, env: { ...process.env, TASKWIRE_CA: "" } },
    ).catch((error: { stderr: string }) => error);
    expect((untrusted as { stderr: string }).stderr).toMatch(/certificate/i);
  });

  it("reloads its certificate: new connections see the new one, a call in flight finishes", async () => {
    const { gateway } = deployment;
    expect(await servedName(gateway.port, ca)).toBe("gateway");
    const client = await createClient({ gateway: gateway.url, token, tls: { ca } });
    try {
      // A call in flight across the reload, on a connection made before it: a report
      // of three sections, half a second each.
      const handle = await client.submitTask(reportService.methods.generate, {
        title: "q",
        sections: 3,
        sectionMs: 500,
      });
      const result = handle.result();
      await copyFile(certificates.issued.renewed?.cert as string, served.cert);
      await copyFile(certificates.issued.renewed?.key as string, served.key);
      gateway.reloadTls();
      expect(await servedName(gateway.port, ca)).toBe("renewed");
      expect((await result).sections).toBe(3);
      // A key that is no key: the reload fails, naming the files, and the certificate stays.
      await writeFile(served.key, "not a key");
      expect(() => gateway.reloadTls()).toThrow(/cannot be used|cannot read/);
      expect(await servedName(gateway.port, ca)).toBe("renewed");
    } finally {
      await client.close();
    }
  });

  it("authenticates a client certificate its clientCa verified, by its common name (mTLS), for the SDK, HTTPS and grpcurl", async () => {
    const backend = new FakeTaskBackend();
    const gateway = await createGateway({
      backend,
      tls: { ...(certificates.issued.gateway as { cert: string; key: string }), clientCa: certificates.ca },
      auth: { clientCerts: [{ commonName: "ops", permissions: ["submit:hasher", "read:hasher"] }] },
      auditLog: () => {},
    });
    const pem = (name: string) => ({
      cert: readFileSync(certificates.issued[name]?.cert as string),
      key: readFileSync(certificates.issued[name]?.key as string),
    });
    const as = async (tlsOptions: { ca: Buffer; cert?: Buffer; key?: Buffer }) => {
      const client = await createClient({ gateway: gateway.url, tls: tlsOptions });
      try {
        const { id } = await client.submitTask(hashService.methods.digest, { text: "x" });
        return id;
      } catch (error) {
        return ConnectError.from(error);
      } finally {
        await client.close();
      }
    };
    try {
      // The SDK's calls take the binary fast path; the principal is the certificate's CN.
      const id = await as({ ca, ...pem("ops") });
      expect(typeof id).toBe("string");
      expect(backend.tasks.get(id as string)?.task.submittedBy).toBe("ops");
      const stranger = await as({ ca, ...pem("stranger") });
      expect(stranger).toMatchObject({
        code: Code.Unauthenticated,
        rawMessage: 'client certificate "stranger" is not one this gateway accepts',
      });
      const none = await as({ ca });
      expect(none).toMatchObject({
        code: Code.Unauthenticated,
        rawMessage:
          'this gateway requires credentials: send "authorization: Bearer <credential>" or a client certificate',
      });
      // Connect JSON over HTTP/1.1 goes through connect-node: the same principal.
      const listed = await new Promise<number>((resolve, reject) => {
        const request = https.request(
          `${gateway.url}/taskwire.v1.TaskService/ListTasks`,
          {
            method: "POST",
            headers: { "content-type": "application/json" },
            agent: new https.Agent({ ca, ...pem("ops") }),
          },
          (response) => {
            response.resume();
            resolve(response.statusCode ?? 0);
          },
        );
        request.on("error", reject);
        request.end(JSON.stringify({ workerType: "hasher" }));
      });
      expect(listed).toBe(200);
      // grpcurl with the certificate: reflection needs a caller, and the CN is one.
      const address = gateway.url.replace("https://", "");
      const ops = certificates.issued.ops as { cert: string; key: string };
      const listedServices = await run(
        grpcurlBinary(),
        ["-cacert", certificates.ca, "-cert", ops.cert, "-key", ops.key, address, "list"],
        { timeout: 30_000 },
      );
      expect(listedServices.stdout).toContain("taskwire.v1.TaskService");
      const anonymous = await run(grpcurlBinary(), ["-cacert", certificates.ca, address, "list"], {
        timeout: 30_000,
      }).catch((error: { stderr: string }) => error);
      expect((anonymous as { stderr: string }).stderr).toMatch(/Unauthenticated/);
    } finally {
      await gateway.close();
    }
  });

  it("`taskwire gateway` reloads its TLS files on SIGHUP and goes on serving", async () => {
    const port = await freePort();
    const files = { cert: join(dir, "cli.pem"), key: join(dir, "cli-key.pem") };
    await copyFile(certificates.issued.gateway?.cert as string, files.cert);
    await copyFile(certificates.issued.gateway?.key as string, files.key);
    await writeFile(
      join(dir, "taskwire.yaml"),
      `nats:
  url: ${deployment.nats.url}
gateway:
  port: ${port}
  services:
    - ${join(repoRoot, "examples/gen/example/v1/hash_taskwire.ts")}
  tls:
    cert: cli.pem
    key: cli-key.pem
`,
    );
    const gateway = spawn(process.execPath, taskwireArgs("gateway"), { cwd: dir });
    let output = "";
    gateway.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    gateway.stderr.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    try {
      await poll(async () => {
        if (gateway.exitCode !== null) throw new Error(`exited:\n${output}`);
        return output.includes(`taskwire gateway on https://127.0.0.1:${port}`) &&
          output.includes("taskwire gateway: connected to NATS")
          ? true
          : undefined;
      }, 60_000);
      expect(await servedName(port, ca)).toBe("gateway");
      await copyFile(certificates.issued.renewed?.cert as string, files.cert);
      await copyFile(certificates.issued.renewed?.key as string, files.key);
      gateway.kill("SIGHUP");
      await poll(async () => (output.includes("TLS certificate reloaded") ? true : undefined), 10_000);
      expect(await servedName(port, ca)).toBe("renewed");
      expect(gateway.exitCode).toBeNull();
    } finally {
      gateway.kill("SIGTERM");
    }
  }, 90_000);
});

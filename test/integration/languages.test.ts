import { execFile } from "node:child_process";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, it } from "vitest";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { reportService } from "../../examples/gen/example/v1/report_taskwire.ts";
import { apiKeyHash } from "../../server/gateway-auth.ts";
import { type Certificates, makeCertificates } from "../support/certificates.ts";
import { exampleDigest, startDeployment, type TestDeployment } from "../support/deployment.ts";
import { goTool, isExecutable } from "../support/find-binary.ts";
import { repoRoot } from "../support/tools.ts";

const run = promisify(execFile);
const services = [hashService, reportService];
/** The API key every example sends. */
const token = "tw_examples_0123456789abcdefghijklmnopqrstu";
// Every example hashes "hello" with 3 rounds.
const expectedHex = exampleDigest("hello", 3);

/**
 * The clients of examples/python (grpcio), examples/go (connect-go) and
 * examples/grpc-js (@grpc/grpc-js with ts-proto), each run as a child process against
 * a real gateway and workers, with the Python and Go code generated fresh by buf.
 */
describe("clients in other languages", () => {
  let tmp: string;
  let deployment: TestDeployment;
  let certificates: Certificates | undefined;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "taskwire-languages-"));
    certificates = await makeCertificates(join(tmp, "pki"), ["gateway"]);
    // The code generation and the servers start side by side.
    await Promise.all([
      generate("python", "examples/python/buf.gen.yaml"),
      generate("go", "examples/go/buf.gen.yaml"),
      // A gateway with TLS and authentication: each example trusts TASKWIRE_CA and sends
      // TASKWIRE_TOKEN, or fails.
      startDeployment(services, [{ name: "hasher", module: "examples/hash/hash-worker.ts", processes: 2 }], {
        auth: {
          apiKeys: [{ name: "examples", sha256: apiKeyHash(token), permissions: ["submit:hasher", "read:hasher"] }],
        },
        auditLog: () => {},
        tls: (certificates as Certificates).issued.gateway,
      }).then((started) => {
        deployment = started;
      }),
    ]);
    // The Go example builds as a module: its files next to the code generated for it.
    await cp(join(repoRoot, "examples/go"), join(tmp, "go/examples/go"), {
      recursive: true,
      filter: (source) => source !== join(repoRoot, "examples/go/gen"),
    });
  }, 60_000);

  afterAll(async () => {
    await deployment?.stop();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  /** Runs `buf generate` with the example's template into `<tmp>/<name>`. */
  async function generate(name: string, template: string) {
    const buf = join(repoRoot, "node_modules/.bin/buf");
    await run(buf, ["generate", "--template", template, "--output", join(tmp, name)], { cwd: repoRoot });
  }

  const examples = {
    python: () => ({
      command: tool(join(repoRoot, ".tools/venv/bin/python")),
      args: [join(repoRoot, "examples/python/client.py")],
      cwd: repoRoot,
      env: { PYTHONPATH: join(tmp, "python/examples/python/gen") },
    }),
    go: () => ({
      command: goTool(),
      args: ["run", "."],
      cwd: join(tmp, "go/examples/go"),
      env: {},
    }),
    "grpc-js": () => ({
      command: process.execPath,
      args: [join(repoRoot, "examples/grpc-js/client.ts")],
      cwd: repoRoot,
      env: {},
    }),
  };

  for (const name of Object.keys(examples) as (keyof typeof examples)[]) {
    it.concurrent(`${name}: over TLS with a credential, a typed result through TaskService and the typed route; INVALID_ARGUMENT for a wrong payload`, async ({
      expect,
    }) => {
      const { command, args, cwd, env } = examples[name]();
      const { stdout } = await run(command, args, {
        cwd,
        env: {
          ...process.env,
          ...env,
          TASKWIRE_GATEWAY: `127.0.0.1:${deployment.gateway.port}`,
          TASKWIRE_TOKEN: token,
          TASKWIRE_CA: (certificates as Certificates).ca,
        },
        timeout: 120_000,
      });
      const lines = stdout
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line));
      expect(lines).toEqual([
        { via: "task_service", task_id: expect.stringMatching(/^hasher\./), hex: expectedHex, rounds: 3 },
        { via: "typed_route", hex: expectedHex, rounds: 3 },
        {
          via: "wrong_payload",
          code: "INVALID_ARGUMENT",
          // Names the method and both message types, readably (no percent-escapes).
          message: expect.stringMatching(/^hasher\/Digest .*example\.v1\.DigestRequest.*example\.v1\.GenerateRequest$/),
        },
      ]);
    }, 150_000); // A first Go build, with an empty build cache, takes about 25 s on 2 cores.
  }
});

/** `path` if it is executable; otherwise says to run the setup. */
function tool(path: string): string {
  if (!isExecutable(path)) throw new Error(`${path} not found: run "bash scripts/install-tools.sh python"`);
  return path;
}

import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsServer, startNatsServer } from "./support/nats-server.ts";
import { repoRoot } from "./support/tools.ts";

const run = promisify(execFile);
const tsc = join(repoRoot, "node_modules/typescript/bin/tsc");

/**
 * The package as a project that depends on it sees it: `npm run build` output in
 * dist/, reached through package.json "exports" by plain Node (no tsx, no source
 * condition), and its declarations type-checking a consumer's TypeScript.
 */
describe("the built package, from a project that depends on it", () => {
  let nats: NatsServer;
  let project: string;

  beforeAll(async () => {
    // As `npm run build` does: dist/ afresh, so that nothing of an older layout lingers.
    await rm(join(repoRoot, "dist"), { recursive: true, force: true });
    await run(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: repoRoot });
    nats = await startNatsServer();
    project = await mkdtemp(join(tmpdir(), "taskwire-consumer-"));
    // node_modules as npm would lay it out: taskwire, and what the consumer imports itself.
    await mkdir(join(project, "node_modules/@types"), { recursive: true });
    await symlink(repoRoot, join(project, "node_modules/taskwire"));
    await symlink(join(repoRoot, "node_modules/@bufbuild"), join(project, "node_modules/@bufbuild"));
    await symlink(join(repoRoot, "node_modules/@types/node"), join(project, "node_modules/@types/node"));
    // The consumer's generated code, as `buf generate` with protoc-gen-es (its imports of
    // taskwire/v1 mapped to the package's "taskwire/protocol/...") and protoc-gen-taskwire writes it.
    for (const file of ["example/v1/hash_pb.ts", "example/v1/hash_taskwire.ts"]) {
      await cp(join(repoRoot, "examples/gen", file), join(project, "gen", file));
    }
    await writeFile(join(project, "package.json"), JSON.stringify({ type: "module", private: true }));
    await writeFile(
      join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2023",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          // The generated code's imports name .ts files, as Node's type stripping needs.
          allowImportingTsExtensions: true,
          rewriteRelativeImportExtensions: true,
          types: ["node"],
          outDir: "out",
          rootDir: ".",
        },
        include: ["gen", "src"],
      }),
    );
    await mkdir(join(project, "src"));
    await writeFile(
      join(project, "src/hasher.ts"),
      `import { createHash } from "node:crypto";
import { NonRetryableError } from "taskwire/worker";
import { implementHashService } from "../gen/example/v1/hash_taskwire.ts";

export const hasher = implementHashService({
  async digest(request) {
    if (!request.text) throw new NonRetryableError("text is empty");
    return { hex: createHash("sha256").update(request.text).digest("hex"), rounds: 1 };
  },
});
`,
    );
    await writeFile(
      join(project, "src/main.ts"),
      `import { createClient, createNatsTaskBackend, createTaskRegistry, stateName } from "taskwire";
import { createGateway } from "taskwire/server";
import { createSupervisor } from "taskwire/worker";
import { connect } from "@nats-io/transport-node";
import { createHashServiceClient, hashService } from "../gen/example/v1/hash_taskwire.ts";

const natsUrl = process.argv[2] ?? "";
const supervisor = createSupervisor({
  nats: natsUrl,
  pools: [{ name: "hasher", module: new URL("./hasher.js", import.meta.url).pathname, processes: 1 }],
});
await supervisor.ready;
const nc = await connect({ servers: natsUrl });
const backend = await createNatsTaskBackend({ nc, registry: createTaskRegistry([hashService]) });
const gateway = await createGateway({ backend, services: [hashService] });
const client = await createClient({ gateway: gateway.url });
const task = await createHashServiceClient(client).digest({ text: "hello" });
const { hex } = await task.result();
const { state } = await task.status();
console.log(JSON.stringify({ hex, state: stateName(state) }));
await client.close();
await gateway.close();
await backend.close();
await nc.close();
await supervisor.stop();
`,
    );
    // The NATS client is the consumer's own dependency too.
    await symlink(join(repoRoot, "node_modules/@nats-io"), join(project, "node_modules/@nats-io"));
  }, 60_000);

  afterAll(async () => {
    await nats?.stop();
    if (project) await rm(project, { recursive: true, force: true });
  });

  it("ships no test support", () => {
    expect(existsSync(join(repoRoot, "dist/server/test-support"))).toBe(false);
    expect(existsSync(join(repoRoot, "dist/server/create-gateway.js"))).toBe(true);
  });

  it("type-checks a consumer against the declarations, and runs it with plain node", async () => {
    await run(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: project }).catch((error) => {
      throw new Error(`the consumer does not compile against dist/:\n${error.stdout}${error.stderr}`);
    });
    const { stdout } = await run(process.execPath, [join(project, "out/src/main.js"), nats.url], {
      cwd: project,
      timeout: 60_000,
    });
    expect(JSON.parse(stdout.trim().split("\n").at(-1) ?? "")).toEqual({
      hex: "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
      state: "SUCCEEDED",
    });
  }, 90_000);

  it("installs from its tarball beside the current releases of its peers, one copy of each", async () => {
    // A project of its own, as `npm install taskwire @bufbuild/protobuf ...` makes it: the
    // packed package (dist/ as built above) and the newest release of each peer.
    const fresh = await mkdtemp(join(tmpdir(), "taskwire-install-"));
    try {
      const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--silent", "--pack-destination", fresh], {
        cwd: repoRoot,
      });
      const tarball = join(fresh, stdout.trim().split("\n").at(-1) ?? "");
      await writeFile(join(fresh, "package.json"), JSON.stringify({ type: "module", private: true }));
      const peers = ["@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-node"];
      // Libraries whose types cross the package's boundary are peers, with caret ranges: a
      // consumer's own install of them is the one copy (an exact dependency brought a second
      // as soon as a newer release came out, and tsc refused the generated code).
      const manifest = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8"));
      for (const peer of peers) {
        expect(manifest.peerDependencies[peer], peer).toMatch(/^\^/);
        expect(manifest.dependencies[peer], peer).toBeUndefined();
      }
      await run(
        "npm",
        ["install", "--no-audit", "--no-fund", tarball, ...peers.map((peer) => `${peer}@latest`), "@types/node@24"],
        { cwd: fresh, timeout: 240_000 },
      );
      for (const peer of peers) {
        const { stdout: copies } = await run("npm", ["ls", peer, "--all", "--parseable"], { cwd: fresh });
        expect(copies.trim().split("\n"), peer).toHaveLength(1);
      }
      // The consumer's generated code and handler type-check against what was installed.
      await cp(join(project, "gen"), join(fresh, "gen"), { recursive: true });
      await cp(join(project, "src"), join(fresh, "src"), { recursive: true });
      const config = JSON.parse(await readFile(join(project, "tsconfig.json"), "utf8"));
      await writeFile(
        join(fresh, "tsconfig.json"),
        JSON.stringify({ ...config, compilerOptions: { ...config.compilerOptions, noEmit: true } }),
      );
      await run(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: fresh }).catch((error) => {
        throw new Error(`a fresh install does not compile:\n${error.stdout}${error.stderr}`);
      });
    } finally {
      await rm(fresh, { recursive: true, force: true });
    }
  }, 300_000);
});

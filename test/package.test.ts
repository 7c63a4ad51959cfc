import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type NatsServer, startNatsServer } from "./support/nats-server.ts";
import { poll } from "./support/poll.ts";
import { repoRoot } from "./support/tools.ts";

const run = promisify(execFile);
const tsc = join(repoRoot, "node_modules/typescript/bin/tsc");
const vite = join(repoRoot, "node_modules/vite/bin/vite.js");

beforeAll(async () => {
  // As `npm run build` does: dist/ afresh, so that nothing of an older layout lingers.
  await rm(join(repoRoot, "dist"), { recursive: true, force: true });
  await run(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: repoRoot });
  await run(process.execPath, [vite, "build", "console"], { cwd: repoRoot });
}, 60_000);

/**
 * The package as a project that depends on it sees it: `npm run build` output in
 * dist/, reached through package.json "exports" by plain Node (no tsx, no source
 * condition), and its declarations type-checking a consumer's TypeScript.
 */
describe("the built package, from a project that depends on it", () => {
  let nats: NatsServer;
  let project: string;

  beforeAll(async () => {
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

  it("ships the web console built, where the compiled gateway serves it from", async () => {
    const index = await readFile(join(repoRoot, "dist/console/index.html"), "utf8");
    const script = /src="\.\/(assets\/index-[\w-]+\.js)"/.exec(index)?.[1];
    expect(script && existsSync(join(repoRoot, "dist/console", script))).toBe(true);
    const { createGateway } = (await import(
      join(repoRoot, "dist/server/index.js")
    )) as typeof import("../server/index.ts");
    const gateway = await createGateway({ backend: {} as never, reflection: false });
    try {
      expect(gateway.consoleUrl).toBe(`${gateway.url}/`);
      expect(await (await fetch(`${gateway.url}/${script}`)).text()).toContain("taskwire.credential");
    } finally {
      await gateway.close();
    }
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
});

/**
 * The README's "Using it from your own project", run as written: each ```sh walk block in
 * one shell after the other (a `cd` carries over, as in a terminal), the `background` one
 * left running as `npm run dev` would be. Three things differ from a reader's run, each
 * so that the test checks this commit rather than what the registry holds, and shares the
 * machine: the package comes from `npm pack` of this tree instead of the registry; the
 * gateway and NATS listen on free ports instead of 8080 and 4222; the tools `npm test`
 * installed (nats-server, grpcurl, Go) are on PATH.
 */
describe("the README's walk, from npm to a running service", () => {
  let home: string;
  let dev: ChildProcess | undefined;

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), "taskwire-walk-"));
  });

  afterAll(async () => {
    if (dev?.pid && dev.exitCode === null) {
      const exited = new Promise((resolve) => dev?.once("exit", resolve));
      process.kill(-dev.pid, "SIGINT"); // Ctrl-C in its terminal
      await exited;
    }
    if (home) await rm(home, { recursive: true, force: true });
  });

  it("scaffolds, installs current peers, generates, type-checks, tests, runs and answers every client", async () => {
    const readme = await readFile(join(repoRoot, "README.md"), "utf8");
    const section = readme.slice(
      readme.indexOf("## Using it from your own project"),
      readme.indexOf("## Repository layout"),
    );
    const blocks = [...section.matchAll(/^```sh walk( background)?\n([\s\S]*?)^```$/gm)].map((match) => ({
      background: match[1] !== undefined,
      script: match[2] as string,
    }));
    expect(blocks.map((block) => block.background)).toEqual([false, true, false, false, false]);

    const { stdout: packed } = await run("npm", ["pack", "--ignore-scripts", "--silent", "--pack-destination", home], {
      cwd: repoRoot,
    });
    const tarball = join(home, packed.trim().split("\n").at(-1) ?? "");
    const [gatewayPort, natsPort] = [await freePort(), await freePort()];
    const gateway = `127.0.0.1:${gatewayPort}`;
    const env = {
      ...process.env,
      PATH: [dirname(process.execPath), join(repoRoot, ".tools/bin"), "/usr/local/go/bin", process.env.PATH].join(
        delimiter,
      ),
      TASKWIRE_NATS: `nats://127.0.0.1:${natsPort}`,
      TASKWIRE_GATEWAY: `http://${gateway}`,
      XDG_CACHE_HOME: join(home, "cache"),
    };
    const scriptOf = (text: string) =>
      `set -euo pipefail\n${text
        .replace(/^npx taskwire init/m, `npx --yes --package=${tarball} taskwire init`)
        .replace(/^npm install(?= )/m, `npm install --no-audit --no-fund ${tarball}`)
        .replaceAll("127.0.0.1:8080", gateway)}`;
    let cwd = home;
    const outputs: string[] = [];
    for (const [index, block] of blocks.entries()) {
      if (block.background) {
        dev = spawn("bash", ["-c", scriptOf(block.script)], { cwd, env, detached: true });
        let output = "";
        dev.stdout?.on("data", (chunk: Buffer) => {
          output += chunk;
        });
        dev.stderr?.on("data", (chunk: Buffer) => {
          output += chunk;
        });
        await poll(async () => {
          if (dev?.exitCode !== null) throw new Error(`npm run dev exited:\n${output}`);
          return output.includes("workers ready") ? true : undefined;
        }, 120_000);
        continue;
      }
      const where = join(home, `.cwd-${index}`);
      const { stdout } = await run("bash", ["-c", `${scriptOf(block.script)}\npwd > ${where}`], {
        cwd,
        env,
        timeout: 240_000,
        maxBuffer: 16 * 1024 * 1024,
      }).catch((error) => {
        throw new Error(`README walk block ${index + 1} failed:\n${block.script}\n${error.stdout}${error.stderr}`);
      });
      outputs.push(stdout);
      cwd = (await readFile(where, "utf8")).trim();
      if (index === 0) {
        // The project's own port numbers are the README's; this run's are free ones.
        const config = join(cwd, "taskwire.yaml");
        await writeFile(config, (await readFile(config, "utf8")).replace("port: 8080", `port: ${gatewayPort}`));
      }
    }
    const project = join(home, "my-app");
    // One copy of each peer, at its current release (the scaffold's caret ranges).
    for (const peer of ["@bufbuild/protobuf", "@connectrpc/connect", "@connectrpc/connect-node"]) {
      const { stdout: copies } = await run("npm", ["ls", peer, "--all", "--parseable"], { cwd: project, env });
      expect(copies.trim().split("\n"), peer).toHaveLength(1);
    }
    // The project's tests passed, in process and through a real worker.
    expect(outputs[0]).toMatch(/pass 3\n\S* fail 0\n/);
    // The SDK, the CLI, curl and grpcurl; then Python and Go.
    expect(outputs[1]?.match(/Hello, Ada!/g)).toHaveLength(4);
    expect(outputs[1]).toContain('{"message":"Hello, Ada!"}');
    expect(outputs[2]?.trim()).toBe("Hello, Ada!");
    expect(outputs[3]?.trim().split("\n").at(-1)).toBe("Hello, Ada!");
  }, 600_000);
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

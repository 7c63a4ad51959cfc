import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmod, cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "./support/nats-server.ts";
import { poll } from "./support/poll.ts";
import { natsServerBinary, repoRoot } from "./support/tools.ts";

const run = promisify(execFile);

/** A fenced block of docs/python-workers.md whose info string names it: ```<lang> <name>. */
interface Block {
  readonly lang: string;
  readonly name: string;
  readonly text: string;
}

/** The doc's named blocks, in order: files (```yaml buf.yaml), shell steps (```sh install) and outputs (```text output). */
async function documentedBlocks(): Promise<Block[]> {
  const doc = await readFile(join(repoRoot, "docs/python-workers.md"), "utf8");
  return [...doc.matchAll(/^```(\w+) (\S+)\n([\s\S]*?)^```$/gm)].map(([, lang, name, text]) => ({
    lang: lang as string,
    name: name as string,
    text: text as string,
  }));
}

/** What `npm pack` puts in the package, by path (package.json "files"). */
async function packedFiles(): Promise<string[]> {
  const { stdout } = await run("npm", ["pack", "--dry-run", "--ignore-scripts", "--json"], {
    cwd: repoRoot,
    maxBuffer: 16 * 1024 * 1024,
  });
  const [pack] = JSON.parse(stdout) as [{ files: { path: string }[] }];
  return pack.files.map((file) => file.path);
}

interface Manifest {
  bin?: string | Record<string, string>;
  peerDependencies?: Record<string, string>;
}

/**
 * The shell lines that lay out `packages` in node_modules as `npm install` does: each
 * package (and taskwire's peers, which npm installs with it) linked in, its bins linked
 * into node_modules/.bin. `taskwire` is the staged package; the others are the
 * repository's installed copies, so that nothing is downloaded.
 */
async function layOut(packages: string[], taskwire: string): Promise<string> {
  const lines = ["mkdir -p node_modules/.bin"];
  const linked = new Set<string>();
  const link = async (name: string) => {
    if (linked.has(name)) return;
    linked.add(name);
    const source = name === "taskwire" ? taskwire : join(repoRoot, "node_modules", name);
    const manifest = JSON.parse(await readFile(join(source, "package.json"), "utf8").catch(() => "null")) as Manifest;
    if (!manifest) throw new Error(`the doc installs ${name}, which is not in the repository's node_modules`);
    lines.push(`mkdir -p node_modules/${dirname(name)}`, `ln -sfn '${source}' node_modules/${name}`);
    const bins = typeof manifest.bin === "string" ? { [name.replace(/^@[^/]+\//, "")]: manifest.bin } : manifest.bin;
    for (const [bin, path] of Object.entries(bins ?? {})) {
      lines.push(`ln -sfn '../${name}/${path.replace(/^\.\//, "")}' node_modules/.bin/${bin}`);
    }
    if (name === "taskwire") for (const peer of Object.keys(manifest.peerDependencies ?? {})) await link(peer);
  };
  for (const name of packages) await link(name);
  return lines.join("\n");
}

/**
 * docs/python-workers.md, run as written: a project made from an empty folder with the
 * npm package, its Python worker generated from the doc's proto, `taskwire dev` started
 * with the doc's taskwire.yaml, and the doc's submissions printing the doc's output. The
 * named file blocks are written where they say, and the shell steps run in order in one
 * project (a `cd` carries over, as in a terminal). What differs from a reader's run, so
 * that the test checks this tree, downloads nothing and shares the machine:
 *
 * - `npm install` lays out node_modules as npm would, from this tree: taskwire is the
 *   files `npm pack` would ship, with dist/ compiled afresh (by tsc alone: no web
 *   console, which the gateway then does not serve), its dependencies and peers, buf and
 *   protoc-gen-es are the repository's installed copies;
 * - the virtualenv reaches protobuf, nats-py, grpcio-tools and setuptools of the
 *   repository's .tools/venv through a .pth file, and pip runs with --no-index (nothing
 *   downloaded: the runtime's dependencies must already be there) and
 *   --no-build-isolation (the runtime is built with that setuptools, put first on
 *   PYTHONPATH for the build: Python 3.11's venv carries an older one);
 * - NATS and the gateway listen on free ports instead of 4222 and 8080.
 */
describe("docs/python-workers.md, from npm to a task's result", () => {
  let home: string;
  let dev: ChildProcess | undefined;

  beforeAll(async () => {
    home = await mkdtemp(join(tmpdir(), "taskwire-python-docs-"));
  });

  afterAll(async () => {
    if (dev?.pid && dev.exitCode === null && dev.signalCode === null) {
      const exited = new Promise((resolve) => dev?.once("exit", resolve));
      process.kill(-dev.pid, "SIGINT"); // Ctrl-C in its terminal
      await exited;
    }
    if (home) await rm(home, { recursive: true, force: true });
  });

  it("ships the Python runtime, the plugins and the protos, without build artefacts", async () => {
    const files = await packedFiles();
    for (const file of [
      "python/pyproject.toml",
      "python/taskwire/worker_process.py",
      "python/taskwire/v1/task_pb2.py",
      "go/go.mod",
      "go/taskwire/worker.go",
      "proto/taskwire/v1/options.proto",
    ]) {
      expect(files).toContain(file);
    }
    expect(
      files.filter((file) => /__pycache__|\.pyc$|python\/build\/|egg-info|^(python|go)\/buf\.gen\.yaml/.test(file)),
    ).toEqual([]);
    const manifest = JSON.parse(await readFile(join(repoRoot, "package.json"), "utf8")) as { bin: object };
    expect(manifest.bin).toMatchObject({
      "protoc-gen-taskwire-python": "./dist/codegen/protoc-gen-taskwire-python.js",
      "protoc-gen-taskwire-go": "./dist/codegen/protoc-gen-taskwire-go.js",
    });
  });

  it("installs, generates, runs the worker with taskwire dev and prints the documented results", async () => {
    const blocks = await documentedBlocks();
    const steps = blocks.filter((block) => block.lang === "sh").map((block) => block.name);
    expect(steps).toEqual(["install", "generate", "dev", "submit"]);

    // The package as npm would unpack it, dist/ built as `npm run build` builds it.
    const taskwire = join(home, "package/taskwire");
    const shipped = (await packedFiles()).filter((file) => !file.startsWith("dist/"));
    for (const file of shipped) {
      await mkdir(dirname(join(taskwire, file)), { recursive: true });
      await cp(join(repoRoot, file), join(taskwire, file));
    }
    const tsc = join(repoRoot, "node_modules/typescript/bin/tsc");
    await run(process.execPath, [tsc, "-p", "tsconfig.build.json", "--outDir", join(taskwire, "dist")], {
      cwd: repoRoot,
    });
    const manifest = JSON.parse(await readFile(join(taskwire, "package.json"), "utf8")) as { bin: object };
    for (const bin of Object.values(manifest.bin) as string[]) await chmod(join(taskwire, bin), 0o755);
    await symlink(join(repoRoot, "node_modules"), join(taskwire, "node_modules"));

    const { stdout: site } = await run(join(repoRoot, ".tools/venv/bin/python"), [
      "-c",
      "import sysconfig; print(sysconfig.get_paths()['purelib'])",
    ]);
    const python = site.trim();
    const natsPort = await freePort();
    const gatewayPort = await freePort();
    const gateway = `127.0.0.1:${gatewayPort}`;
    // A terminal's environment: no tool of this repository on PATH but nats-server.
    const env: Record<string, string> = {
      PATH: [
        dirname(process.execPath),
        dirname(natsServerBinary()),
        ...(process.env.PATH ?? "").split(delimiter).filter((dir) => dir && !dir.startsWith(repoRoot)),
      ].join(delimiter),
      HOME: process.env.HOME ?? home,
    };

    const replaced = (text: string, from: string, to: string) => {
      if (!text.includes(from)) throw new Error(`the doc no longer says ${from}`);
      return text.replaceAll(from, to);
    };
    const scriptOf = async (step: string) => {
      const lines: string[] = [];
      for (const line of step.split("\n")) {
        const install = /^npm install (?:--save-dev )?([^-].*)$/.exec(line);
        const venv = /^python3 -m venv (\S+)$/.exec(line);
        const pip = /^(\S+\/pip) install (.*)$/.exec(line);
        if (install) {
          lines.push(await layOut((install[1] as string).split(" "), taskwire));
        } else if (venv) {
          const purelib = `$(${venv[1]}/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')`;
          lines.push(line, `echo '${python}' > "${purelib}/taskwire-test-deps.pth"`);
        } else if (pip) {
          lines.push(`PYTHONPATH='${python}' ${pip[1]} install --no-index --no-build-isolation ${pip[2]}`);
        } else {
          lines.push(line);
        }
      }
      return lines.join("\n").replaceAll("127.0.0.1:8080", gateway);
    };
    let cwd = home;
    const runStep = async (block: Block, options: { expectedExitCode?: number } = {}) => {
      const where = join(home, `.cwd-${block.name}`);
      const script =
        options.expectedExitCode === undefined
          ? `set -euo pipefail\nexec 2>&1\n${await scriptOf(block.text)}\npwd > ${where}`
          : `set -uo pipefail\nexec 2>&1\n${await scriptOf(block.text)}`;
      const result = await run("bash", ["-c", script], { cwd, env, timeout: 60_000 }).then(
        ({ stdout }) => ({ stdout, code: 0 }),
        (error: { stdout: string; code: number }) => ({ stdout: error.stdout, code: error.code }),
      );
      if (result.code !== (options.expectedExitCode ?? 0)) {
        throw new Error(`step "${block.name}" exited ${result.code}:\n${block.text}\n${result.stdout}`);
      }
      if (options.expectedExitCode === undefined) cwd = (await readFile(where, "utf8")).trim();
      return result.stdout;
    };

    for (const [index, block] of blocks.entries()) {
      if (block.lang === "text") continue;
      if (block.lang !== "sh") {
        let text = block.text;
        if (block.name === "taskwire.yaml") {
          text = replaced(
            replaced(text, "port: 8080", `port: ${gatewayPort}`),
            "127.0.0.1:4222",
            `127.0.0.1:${natsPort}`,
          );
        }
        await mkdir(dirname(join(cwd, block.name)), { recursive: true });
        await writeFile(join(cwd, block.name), text);
      } else if (block.name === "dev") {
        // In the foreground until Ctrl-C: left running, as in its own terminal.
        dev = spawn("bash", ["-c", await scriptOf(block.text)], { cwd, env, detached: true });
        let output = "";
        const collect = (chunk: Buffer) => {
          output += chunk;
        };
        dev.stdout?.on("data", collect);
        dev.stderr?.on("data", collect);
        const ready = await poll(async () => {
          if (dev?.exitCode !== null) return false;
          return output.includes("workers ready: mailer (2 processes: mailer)") ? true : undefined;
        }, 45_000);
        if (!ready) throw new Error(`taskwire dev exited:\n${output}`);
      } else if (block.name === "submit") {
        // The last submission fails its task, and `taskwire submit` exits 1.
        const printed = await runStep(block, { expectedExitCode: 1 });
        const documented = blocks[index + 1];
        expect(documented?.name).toBe("output");
        expect(printed.trim().split("\n")).toEqual(documented?.text.trim().split("\n"));
      } else {
        await runStep(block);
      }
    }
  }, 120_000);
});

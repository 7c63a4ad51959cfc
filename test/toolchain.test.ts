import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
// Whole toolchain runs (tsc, buf generate with every plugin): 10-15 s on a quiet 2-core
// machine, over 30 s (vitest's default here) beside other load.
const toolRunMs = 120_000;
const root = resolve(import.meta.dirname, "..");
const bin = join(root, "node_modules", ".bin");
const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };

async function sh(command: string, args: string[], cwd = root) {
  return run(command, args, { cwd, env, maxBuffer: 16 * 1024 * 1024 });
}

describe("toolchain", () => {
  it("buf lint is clean (STANDARD rules)", async () => {
    await expect(sh("buf", ["lint"])).resolves.toBeDefined();
  });

  it("no proto changed incompatibly since the previous commit (buf breaking)", async () => {
    const { stdout } = await sh("bash", ["scripts/check-breaking.sh"]);
    // Skipped only where there is nothing to compare: no previous commit, or one without
    // protos. A shallow clone is deepened first (or the script fails), never skipped.
    const previous = await sh("git", ["ls-tree", "-r", "--name-only", "HEAD~1", "--", "proto"]).catch(() => undefined);
    const comparable = previous !== undefined && /\.proto$/m.test(previous.stdout);
    expect(stdout).toMatch(comparable ? /no breaking proto changes/ : /skipping buf breaking/);
  });

  it(
    "the committed generated code is up to date",
    async () => {
      const { stdout } = await sh("bash", ["scripts/check-generated.sh"]);
      expect(stdout).toContain("generated code is up to date");
    },
    toolRunMs,
  );

  it(
    "TypeScript type-checks and Biome finds nothing",
    async () => {
      await expect(sh("tsc", ["-p", "."])).resolves.toBeDefined();
      await expect(sh("biome", ["check", "."])).resolves.toBeDefined();
    },
    toolRunMs,
  );

  describe("staleness check", () => {
    let copy: string | undefined;
    afterAll(async () => {
      if (copy) await rm(copy, { recursive: true, force: true });
    });

    it(
      "fails when a proto changes without regeneration",
      async () => {
        // A copy inside the repository, so the plugin resolves node_modules as usual.
        copy = await mkdtemp(join(root, ".tmp-staleness-"));
        const modules = [...(await readFile(join(root, "buf.yaml"), "utf8")).matchAll(/- path: (\S+)/g)].map(
          (m) => m[1] ?? "",
        );
        // Every template generate.sh runs, with its output folders, and the folder it lives in
        // where that is its own (python/, go/ and test/go/ hold the modules their generation
        // needs); the plugins' sources; and the installed tools (.tools: protoc-gen-go, the
        // Python virtualenv with protoc's Python generators).
        const templates = (await sh("bash", ["scripts/generate.sh", "--list"])).stdout.trim().split("\n");
        const generated = new Set<string>();
        for (const template of templates) {
          const folder = dirname(template);
          generated.add(folder === "." || folder === "test" ? template : folder);
          const outs = (await readFile(join(root, template), "utf8")).matchAll(/^\s*out: (\S+)/gm);
          for (const [, out] of outs) if (out) generated.add(out);
        }
        for (const entry of [...modules, ...generated, "codegen", "sdk", "worker-runtime", "scripts"]) {
          await cp(join(root, entry), join(copy, entry), { recursive: true });
        }
        await symlink(join(root, ".tools"), join(copy, ".tools"));
        for (const file of ["buf.yaml", "buf.gen.yaml", "package.json", "tsconfig.json"]) {
          await cp(join(root, file), join(copy, file));
        }
        await expect(sh("bash", ["scripts/check-generated.sh"], copy)).resolves.toBeDefined();

        const proto = join(copy, "examples/proto/example/v1/hash.proto");
        const source = await readFile(proto, "utf8");
        await writeFile(
          proto,
          source.replace(
            "uint32 rounds = 2;",
            "uint32 rounds = 2;\n  // Added without regenerating.\n  string note = 3;",
          ),
        );
        const failure = await sh("bash", ["scripts/check-generated.sh"], copy).then(
          () => undefined,
          (error: { stderr: string }) => error,
        );
        expect(failure?.stderr).toContain("generated code is stale");
        expect(failure?.stderr).toContain("hash_pb.ts");
      },
      toolRunMs,
    );
  });
});

import { execFile } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { promisify } from "node:util";
import { create, fromBinary } from "@bufbuild/protobuf";
import { CodeGeneratorRequestSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { Plugin } from "@bufbuild/protoplugin";
import { afterAll, beforeAll } from "vitest";

const run = promisify(execFile);
export const root = resolve(import.meta.dirname, "..", "..");
/** The environment that finds buf (node_modules/.bin) first. */
export const env = { ...process.env, PATH: `${join(root, "node_modules", ".bin")}:${process.env.PATH}` };

/** What a plugin made of a request: its files by name, or the error it refused the request with. */
export interface Generated {
  readonly files: Map<string, string>;
  readonly error?: string;
}

/**
 * A plugin's test harness: temporary buf workspaces inside the repository (so
 * that generated code resolves node_modules and the "taskwire" self-reference
 * as real code does), made before and removed after the file's tests, and
 * `generate`, which runs the plugin in process on a real CodeGeneratorRequest
 * that buf builds from inline protos beside a copy of proto/taskwire.
 */
export function pluginHarness(plugin: Plugin, name: string) {
  let scratch = "";
  beforeAll(async () => {
    await mkdir(join(root, "codegen", ".tmp"), { recursive: true });
    scratch = await mkdtemp(join(root, "codegen", ".tmp", `${name}-`));
  });
  afterAll(async () => {
    await rm(scratch, { recursive: true, force: true });
  });

  /** A buf workspace with the inline protos beside a copy of proto/taskwire. */
  async function workspace(files: Record<string, string>): Promise<string> {
    const dir = await mkdtemp(join(scratch, "ws-"));
    await cp(join(root, "proto", "taskwire"), join(dir, "proto", "taskwire"), { recursive: true });
    for (const [file, source] of Object.entries(files)) {
      await mkdir(dirname(join(dir, "proto", file)), { recursive: true });
      await writeFile(join(dir, "proto", file), source);
    }
    await writeFile(join(dir, "buf.yaml"), "version: v2\nmodules:\n  - path: proto\n");
    return dir;
  }

  async function generate(files: Record<string, string>, parameter: string): Promise<Generated> {
    const dir = await workspace(files);
    await run("buf", ["build", "--as-file-descriptor-set", "-o", join(dir, "image.binpb")], { cwd: dir, env });
    const set = fromBinary(FileDescriptorSetSchema, await readFile(join(dir, "image.binpb")));
    try {
      const response = plugin.run(
        create(CodeGeneratorRequestSchema, { protoFile: set.file, fileToGenerate: Object.keys(files), parameter }),
      );
      return { files: new Map(response.file.map((f) => [f.name, f.content])) };
    } catch (error) {
      // runNodeJs prints this message to stderr and exits 1; buf shows it.
      return { files: new Map(), error: (error as Error).message };
    }
  }

  return { workspace, generate, scratch: () => scratch };
}

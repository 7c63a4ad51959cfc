import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashService } from "../examples/gen/example/v1/hash_taskwire.ts";
import { devBanner } from "./dev-banner.ts";
import { initProject, packageName } from "./init-project.ts";

describe("taskwire init", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-init-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it("writes a project whose dependencies are this release and its peers", async () => {
    const lines = await initProject(join(dir, "My App"));
    expect(lines[0]).toBe(`taskwire init: a new project in ${join(dir, "My App")}`);
    const manifest = JSON.parse(await readFile(join(dir, "My App/package.json"), "utf8"));
    const own = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
    expect(manifest.name).toBe("my-app");
    expect(manifest.dependencies).toEqual({ taskwire: `^${own.version}`, ...own.peerDependencies });
    expect(Object.keys(manifest.scripts)).toEqual(["generate", "dev", "build", "test"]);
    // npm does not pack a file named .gitignore: the template's is renamed on the way.
    expect(await readFile(join(dir, "My App/.gitignore"), "utf8")).toContain("node_modules/");
    expect(await readFile(join(dir, "My App/README.md"), "utf8")).toMatch(/^# my-app\n/);
  });

  it("overwrites nothing, and says which files are in the way", async () => {
    const target = join(dir, "taken");
    await initProject(target);
    await writeFile(join(target, "taskwire.yaml"), "mine");
    await expect(initProject(target)).rejects.toThrow(
      `${target} already has package.json, README.md, buf.gen.yaml, buf.yaml, .gitignore, proto/greeter/v1/greeter.proto, src/client.ts, src/worker.ts, taskwire.yaml, test/worker.test.ts, tsconfig.json: taskwire init writes a new project and overwrites nothing (choose a new directory)`,
    );
    expect(await readFile(join(target, "taskwire.yaml"), "utf8")).toBe("mine");
  });

  it("makes an npm package name of any directory name", () => {
    expect([packageName("My App"), packageName("..x__"), packageName("@@@")]).toEqual([
      "my-app",
      "x__",
      "taskwire-project",
    ]);
  });
});

describe("the dev banner", () => {
  it("suggests the first task with a sample of its required fields", () => {
    expect(devBanner("npx taskwire", "http://127.0.0.1:8080", hashService)).toEqual([
      "Try:",
      `  npx taskwire submit hasher/Digest --json '{"text":"hello"}' --wait`,
      `  curl -s http://127.0.0.1:8080/example.v1.HashService/Digest -H 'content-type: application/json' -d '{"text":"hello"}'`,
    ]);
    expect(devBanner("npx taskwire", "http://127.0.0.1:8080", undefined)).toEqual([]);
  });
});

import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildConsoleIfStale } from "./console-build.ts";

describe("buildConsoleIfStale", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-console-build-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("builds the console where none is, then leaves a build newer than its sources alone", async () => {
    const out = join(dir, "fresh");
    const lines: string[] = [];
    const log = (line: string) => lines.push(line);
    expect(await buildConsoleIfStale({ out, log })).toBe(out);
    expect(lines).toEqual([expect.stringMatching(/^taskwire: building the web console into .*fresh \(vite build\)$/)]);
    const index = await readFile(join(out, "index.html"), "utf8");
    expect(index).toMatch(/<script type="module" crossorigin src="\.\/assets\/index-[\w-]+\.js"><\/script>/);
    const builtAt = (await stat(join(out, "index.html"))).mtimeMs;

    expect(await buildConsoleIfStale({ out, log })).toBe(out);
    expect(lines).toHaveLength(1);
    expect((await stat(join(out, "index.html"))).mtimeMs).toBe(builtAt);
  });

  it("replaces a build older than its sources whole", async () => {
    const out = join(dir, "stale");
    await mkdir(out);
    await writeFile(join(out, "index.html"), "<!doctype html><title>old</title>");
    await writeFile(join(out, "left-over.js"), "");
    await utimes(join(out, "index.html"), new Date(0), new Date(0));
    const lines: string[] = [];
    await buildConsoleIfStale({ out, log: (line) => lines.push(line) });
    expect(lines).toHaveLength(1);
    expect(await readFile(join(out, "index.html"), "utf8")).toContain("./assets/index-");
    expect(existsSync(join(out, "left-over.js"))).toBe(false);
  });
});

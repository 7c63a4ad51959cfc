import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { repoRoot } from "../test/support/tools.js";

/** docs/benchmarks.md, written by `npm run bench`; `npm run bench:scale` owns one section of it. */
export const benchmarksPath = join(repoRoot, "docs", "benchmarks.md");

const start = "<!-- scale:start -->";
const end = "<!-- scale:end -->";

/** The scaling section as it stands in the page, markers included; empty when there is none. */
export async function currentScaleSection(): Promise<string> {
  const page = await readFile(benchmarksPath, "utf8").catch(() => "");
  const from = page.indexOf(start);
  const to = page.indexOf(end);
  return from >= 0 && to > from ? page.slice(from, to + end.length) : "";
}

/** Replaces (or appends) the scaling section of the page with `body`. */
export async function writeScaleSection(body: string): Promise<void> {
  const page = await readFile(benchmarksPath, "utf8");
  const section = `${start}\n${body.trim()}\n${end}`;
  const old = await currentScaleSection();
  await writeFile(benchmarksPath, old ? page.replace(old, section) : `${page.trimEnd()}\n\n${section}\n`);
}

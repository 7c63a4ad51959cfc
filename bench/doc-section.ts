import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { repoRoot } from "../test/support/tools.ts";

/** docs/benchmarks.md, written by `npm run bench`; `bench:scale`, `bench:delayed`, `bench:bulk`, `bench:list`, `bench:soak`, `bench:fanout`, `bench:fairness` and `bench:languages` own one section each. */
export const benchmarksPath = join(repoRoot, "docs", "benchmarks.md");
/** The chart `npm run bench` draws beside it, which the page shows. */
export const chartPath = join(repoRoot, "docs", "benchmarks.svg");

/** The sections other commands write, in page order. */
export const sectionNames = ["scale", "delayed", "bulk", "list", "soak", "fan-out", "fairness", "languages"] as const;
export type SectionName = (typeof sectionNames)[number];

const markers = (name: SectionName) => [`<!-- ${name}:start -->`, `<!-- ${name}:end -->`] as const;

/** A section as it stands in the page, markers included; empty when there is none. */
export async function currentSection(name: SectionName): Promise<string> {
  const page = await readFile(benchmarksPath, "utf8").catch(() => "");
  const [start, end] = markers(name);
  const from = page.indexOf(start);
  const to = page.indexOf(end);
  return from >= 0 && to > from ? page.slice(from, to + end.length) : "";
}

/** Replaces (or appends) a section of the page with `body`. */
export async function writeSection(name: SectionName, body: string): Promise<void> {
  const page = await readFile(benchmarksPath, "utf8");
  const [start, end] = markers(name);
  const section = `${start}\n${body.trim()}\n${end}`;
  const old = await currentSection(name);
  await writeFile(benchmarksPath, old ? page.replace(old, section) : `${page.trimEnd()}\n\n${section}\n`);
}

import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "../test/support/tools.ts";

/** Where `tsconfig.bench.json` puts the compiled programs. */
const buildDir = join(repoRoot, ".bench-build");

/**
 * Compiles the SDK, gateway, worker runtime and the benchmark's child programs
 * with tsc, as a deployment would run them: measured through a TypeScript
 * loader instead, every process pays for on-the-fly transforms (tsx keeps
 * function names by wrapping closures) that no production system has.
 * The build gets a package.json named "taskwire" whose exports point inside
 * it, so the children's `import "taskwire"` loads this build.
 */
export function compileBench(): void {
  rmSync(buildDir, { recursive: true, force: true });
  execFileSync(process.execPath, [join(repoRoot, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.bench.json"], {
    cwd: repoRoot,
    stdio: "inherit",
  });
  const manifest = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as {
    exports: Record<string, { default: string }>;
  };
  const exports = Object.fromEntries(
    Object.entries(manifest.exports).map(([path, targets]) => [path, targets.default.replace(/^\.\/dist\//, "./")]),
  );
  writeFileSync(join(buildDir, "package.json"), JSON.stringify({ name: "taskwire", type: "module", exports }));
}

/** The compiled program of a TypeScript source path (from the repository root). */
export function compiled(script: string): string {
  return join(buildDir, script.replace(/\.ts$/, ".js"));
}

import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

const repoTools = fileURLToPath(new URL("../.tools/bin/", import.meta.url));

/**
 * Finds a tool Taskwire runs: `$<envVar>`, then the project's `.tools/bin`
 * (installed by `npm run setup`), then PATH. Throws a message that says how to
 * install it.
 */
export function findBinary(name: string, envVar: string): string {
  const candidates = [
    process.env[envVar],
    join(repoTools, name),
    ...(process.env.PATH ?? "").split(delimiter).map((d) => join(d, name)),
  ];
  for (const candidate of candidates) {
    if (!candidate) continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not there or not executable: try the next
    }
  }
  throw new Error(`${name} not found: run "npm run setup" (installs it into .tools/bin) or set ${envVar}`);
}

import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";

const repoTools = fileURLToPath(new URL("../../.tools/bin/", import.meta.url));

/**
 * Finds a tool Taskwire runs: `$<envVar>` if set (it must be executable), then
 * the project's `.tools/bin` (the pinned version scripts/install-tools.sh builds), then
 * PATH unless `searchPath` is false. Throws a message that says how to install it.
 */
export function findBinary(name: string, envVar: string, { searchPath = true } = {}): string {
  const fromEnv = process.env[envVar];
  if (fromEnv) {
    if (isExecutable(fromEnv)) return fromEnv;
    throw new Error(`${envVar}=${fromEnv} is not an executable file`);
  }
  const candidates = [
    join(repoTools, name),
    ...(searchPath ? (process.env.PATH ?? "").split(delimiter).map((d) => join(d, name)) : []),
  ];
  const found = candidates.find(isExecutable);
  if (found) return found;
  throw new Error(
    `${name} not found${searchPath ? "" : ` at ${candidates[0]}`}: run "bash scripts/install-tools.sh ${name}" (builds the pinned version into .tools/bin) or set ${envVar}`,
  );
}

/** Whether `path` is a file this process may execute. */
export function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * A tool of the Go toolchain (`go`, `gofmt`) from PATH, else from
 * /usr/local/go/bin, where scripts/install-tools.sh looks for it too.
 */
export function goTool(name: "go" | "gofmt" = "go"): string {
  const directories = [...(process.env.PATH ?? "").split(delimiter), "/usr/local/go/bin"];
  const found = directories.map((d) => join(d, name)).find(isExecutable);
  if (!found) throw new Error(`${name} not found on PATH nor in /usr/local/go/bin: install Go 1.26+`);
  return found;
}

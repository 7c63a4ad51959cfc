import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository's root directory (absolute, no trailing separator). */
export const repoRoot = fileURLToPath(new URL("../..", import.meta.url)).replace(/[\\/]$/, "");

/**
 * The nats-server binary the tests run: `$TASKWIRE_NATS_SERVER` if set, else the
 * pinned `<repo>/.tools/bin/nats-server`. Throws an Error that says to run
 * `npm run setup` when neither is there.
 */
export function natsServerBinary(): string {
  return findTool("nats-server", "TASKWIRE_NATS_SERVER");
}

/**
 * The grpcurl binary the tests run: `$TASKWIRE_GRPCURL` if set, else the pinned
 * `<repo>/.tools/bin/grpcurl`. Throws an Error that says to run `npm run setup`
 * when neither is there.
 */
export function grpcurlBinary(): string {
  return findTool("grpcurl", "TASKWIRE_GRPCURL");
}

function findTool(name: string, envVar: string): string {
  const fromEnv = process.env[envVar];
  if (fromEnv) return fromEnv;
  const pinned = join(repoRoot, ".tools", "bin", name);
  if (isExecutable(pinned)) return pinned;
  throw new Error(
    `${name} not found at ${pinned}: run "npm run setup" to build the pinned version into .tools/bin, or set ${envVar} to a ${name} binary`,
  );
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

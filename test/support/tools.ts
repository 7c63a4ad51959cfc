import { fileURLToPath } from "node:url";
import { findBinary } from "./find-binary.ts";

/** The repository's root directory (absolute, no trailing separator). */
export const repoRoot = fileURLToPath(new URL("../..", import.meta.url)).replace(/[\\/]$/, "");

/**
 * The nats-server binary the tests run: `$TASKWIRE_NATS_SERVER` if set, else the
 * pinned `.tools/bin/nats-server` (never one from PATH: Debian's is too old).
 */
export function natsServerBinary(): string {
  return findBinary("nats-server", "TASKWIRE_NATS_SERVER", { searchPath: false });
}

/** The grpcurl binary the tests run: `$TASKWIRE_GRPCURL` if set, else the pinned `.tools/bin/grpcurl`. */
export function grpcurlBinary(): string {
  return findBinary("grpcurl", "TASKWIRE_GRPCURL", { searchPath: false });
}

/** The Connect conformance runner: `$TASKWIRE_CONNECTCONFORMANCE` if set, else the pinned `.tools/bin/connectconformance`. */
export function connectConformanceBinary(): string {
  return findBinary("connectconformance", "TASKWIRE_CONNECTCONFORMANCE", { searchPath: false });
}

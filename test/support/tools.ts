import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/** The repository's root directory. */
export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

function tool(name: string, envVar: string): string {
  const fromEnv = process.env[envVar];
  if (fromEnv) return fromEnv;
  const local = `${repoRoot}.tools/bin/${name}`;
  if (existsSync(local)) return local;
  throw new Error(`${name} is not installed: run "npm run setup" (builds it into .tools/bin) or set ${envVar}`);
}

/** The pinned nats-server binary. */
export const natsServerBinary = () => tool("nats-server", "TASKWIRE_NATS_SERVER");

/** The pinned grpcurl binary. */
export const grpcurlBinary = () => tool("grpcurl", "TASKWIRE_GRPCURL");

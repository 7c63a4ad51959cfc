import { execFile } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdir } from "node:fs/promises";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The nats-server release Taskwire installs and tests against (scripts/install-tools.sh pins the same). */
export const pinnedNatsServer = "v2.15.2";

/** The oldest nats-server Taskwire runs on: JetStream features it needs came in 2.10. */
export const minimumNatsServer = [2, 10] as const;

/** Options of {@link findNatsServer}. */
export interface FindNatsServerOptions {
  /** The environment to read PATH, TASKWIRE_NATS_SERVER and XDG_CACHE_HOME from. @default process.env */
  env?: NodeJS.ProcessEnv;
  /** Where the one line about an install goes. @default stderr */
  log?: (line: string) => void;
  /** The operating system the instructions are for. @default process.platform */
  platform?: NodeJS.Platform;
}

/**
 * Finds a nats-server to run, in this order: `$TASKWIRE_NATS_SERVER`; the first
 * `nats-server` on PATH that is 2.10 or newer; the pinned release in Taskwire's
 * cache directory; else, where Go is installed, it builds the pinned release
 * into that cache with `go install` (once, saying so in one line). Otherwise it
 * throws a message that says how to get one on this platform.
 */
export async function findNatsServer(options: FindNatsServerOptions = {}): Promise<string> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const exe = (options.platform ?? process.platform) === "win32" ? "nats-server.exe" : "nats-server";
  const fromEnv = env.TASKWIRE_NATS_SERVER;
  if (fromEnv) {
    if (isExecutable(fromEnv)) return fromEnv;
    throw new Error(`TASKWIRE_NATS_SERVER=${fromEnv} is not an executable file`);
  }
  const tooOld: string[] = [];
  for (const candidate of onPath(env, exe)) {
    const version = await versionOf(candidate);
    if (version && isSupported(version)) return candidate;
    tooOld.push(`${candidate} is ${version ?? "of an unknown version"}, older than 2.10`);
  }
  const cached = join(cacheDir(env), `nats-server-${pinnedNatsServer}`);
  if (isExecutable(join(cached, exe))) return join(cached, exe);
  const go = onPath(env, process.platform === "win32" ? "go.exe" : "go")[0];
  if (go) {
    log(`taskwire: building nats-server ${pinnedNatsServer} with go install into ${cached} (once)`);
    await mkdir(cached, { recursive: true });
    await run(go, ["install", `github.com/nats-io/nats-server/v2@${pinnedNatsServer}`], {
      env: { ...env, GOBIN: cached },
      maxBuffer: 16 * 1024 * 1024,
    }).catch((error: { stderr?: string; message: string }) => {
      throw new Error(`go install of nats-server ${pinnedNatsServer} failed:\n${error.stderr || error.message}`);
    });
    return join(cached, exe);
  }
  throw new Error(howToInstall(options.platform ?? process.platform, tooOld));
}

/** Whether a "v2.15.2"-style version is at least {@link minimumNatsServer}. */
export function isSupported(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, "").split(".").map(Number);
  return major > minimumNatsServer[0] || (major === minimumNatsServer[0] && minor >= minimumNatsServer[1]);
}

/** What to do without nats-server or Go, for `platform`. */
export function howToInstall(platform: NodeJS.Platform, tooOld: string[] = []): string {
  const release = `https://github.com/nats-io/nats-server/releases/tag/${pinnedNatsServer}`;
  const ways: Partial<Record<NodeJS.Platform, string>> = {
    darwin: "brew install nats-server",
    win32: `download nats-server-${pinnedNatsServer}-windows-amd64.zip from ${release} and put nats-server.exe on PATH`,
  };
  return [
    "nats-server (2.10 or newer) was not found on PATH, and Go is not installed to build it.",
    ...tooOld.map((line) => `  ${line}`),
    "Get one, then run the command again:",
    `  ${ways[platform] ?? `download nats-server-${pinnedNatsServer}-linux-amd64.tar.gz (or -arm64) from ${release} and put nats-server on PATH`}`,
    `  or install Go (https://go.dev/dl/): taskwire then builds nats-server ${pinnedNatsServer} itself`,
    "  or set TASKWIRE_NATS_SERVER to the path of a nats-server binary",
  ].join("\n");
}

/** The version a nats-server binary reports ("v2.15.2"), or undefined if it does not run. */
async function versionOf(binary: string): Promise<string | undefined> {
  try {
    const { stdout } = await run(binary, ["--version"], { timeout: 10_000 });
    return /v\d+\.\d+\.\d+\S*/.exec(stdout)?.[0];
  } catch {
    return undefined;
  }
}

function onPath(env: NodeJS.ProcessEnv, name: string): string[] {
  return (env.PATH ?? "")
    .split(delimiter)
    .filter(Boolean)
    .map((dir) => join(dir, name))
    .filter(isExecutable);
}

function cacheDir(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), ".cache"), "taskwire");
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

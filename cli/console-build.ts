import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, rename, rm, stat, utimes } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The repository's root, when this module runs from its sources. */
const root = fileURLToPath(new URL("..", import.meta.url));

/** What the console is built from: its own folder, the protocol's generated code, the locked dependencies. */
const sources = [join(root, "console"), join(root, "gen", "taskwire"), join(root, "package-lock.json")];

/** Options of {@link buildConsoleIfStale}. */
export interface ConsoleBuildOptions {
  /** Where the built console goes. @default dist/console of the repository (where the gateway looks) */
  readonly out?: string;
  /** Told in one line when the console is built. @default console.log */
  readonly log?: (line: string) => void;
}

/**
 * Builds the web console with Vite when its build is missing or older than its
 * sources, saying so in one line; otherwise does nothing. Resolves to the
 * build's folder. Only from this repository's sources (`taskwire dev` run by
 * `npm start`, and the test suite): an installed package ships the console
 * built, and this resolves to undefined at once. Several processes may call it
 * at once: each builds into a folder of its own and moves it into place whole.
 * A build of the default folder is made outside dist/, which `npm run build`
 * (and the suite's package test) may empty meanwhile.
 */
export async function buildConsoleIfStale(options: ConsoleBuildOptions = {}): Promise<string | undefined> {
  if (!import.meta.url.endsWith(".ts") || !existsSync(join(root, "console", "index.html"))) return undefined;
  const out = options.out ?? join(root, "dist", "console");
  const builtAt = await modifiedAt(join(out, "index.html"));
  const started = new Date();
  if (builtAt !== undefined && builtAt >= (await newestIn(sources))) return out;
  (options.log ?? console.log)(
    `taskwire: building the web console into ${relative(process.cwd(), out) || out} (vite build)`,
  );
  const name = `console-${process.pid}-${started.getTime()}`;
  const staging = options.out ? join(dirname(out), `.${name}`) : join(root, ".tmp", name);
  await mkdir(dirname(staging), { recursive: true });
  try {
    const vite = join(dirname(createRequire(import.meta.url).resolve("vite/package.json")), "bin", "vite.js");
    await run(process.execPath, [vite, "build", join(root, "console"), "--outDir", staging, "--logLevel", "error"], {
      cwd: root,
    }).catch((error: Error & { stderr?: string }) => {
      throw new Error(`cannot build the web console (vite build console): ${error.stderr || error.message}`);
    });
    // Stamped with the time the build started: a source changed during the build is newer.
    await utimes(join(staging, "index.html"), started, started);
    await replace(out, staging);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return out;
}

/**
 * Puts the folder `next` in place of `current`, which another build may have
 * just replaced, and whose parent may have just been removed.
 */
async function replace(current: string, next: string): Promise<void> {
  const old = `${next}.old`;
  await rename(current, old).catch(() => undefined);
  for (let tries = 0; ; tries++) {
    await mkdir(dirname(current), { recursive: true });
    const moved = await rename(next, current).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        // Another build moved its own in first: keep that one.
        if (error.code === "ENOTEMPTY" || error.code === "EEXIST") return true;
        if (error.code === "ENOENT" && tries < 3) return false;
        throw error;
      },
    );
    if (moved) break;
  }
  await rm(old, { recursive: true, force: true });
}

/** When a file was last modified, in milliseconds; undefined when it does not exist. */
async function modifiedAt(path: string): Promise<number | undefined> {
  return stat(path).then(
    (s) => s.mtimeMs,
    () => undefined,
  );
}

/** The latest modification time of these files and of every file below these folders. */
async function newestIn(paths: readonly string[]): Promise<number> {
  let newest = 0;
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (!info) continue;
    newest = Math.max(newest, info.mtimeMs);
    if (!info.isDirectory()) continue;
    for (const entry of await readdir(path, { recursive: true, withFileTypes: true })) {
      if (entry.name === "node_modules") continue;
      const modified = await modifiedAt(join(entry.parentPath, entry.name));
      if (modified !== undefined) newest = Math.max(newest, modified);
    }
  }
  return newest;
}

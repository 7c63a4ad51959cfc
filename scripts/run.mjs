// Runs one of this repository's commands on Node 24 with its pinned tools,
// installing on first use whatever the machine lacks, so that `npm start` and
// `npm test` need no set-up step of their own:
//
//   node scripts/run.mjs [--tools=nats-server,grpcurl,go-plugins,python] <command> [args...]
//
// - Node: a machine whose Node is older than 22 gets Node 24 from the npm registry
//   (the `node-<platform>-<arch>` package, which carries the official binary) in
//   .tools/node, and the command runs on it. A Node of 22 or newer is used as it is.
// - Tools: scripts/install-tools.sh builds each named tool once into .tools/ and is
//   silent when it is already there.
// - The command runs with .tools/node/bin (when used), .tools/bin and node_modules/.bin
//   first on PATH, so `node` in it, and in every process it starts, is the same Node.
//
// Plain JavaScript on purpose: it runs on the machine's Node, whatever its version.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The Node this repository runs on where the machine's is older than `minimumMajor`. */
const NODE_VERSION = "24.22.3";
const minimumMajor = 22;

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tools = join(root, ".tools");

const args = process.argv.slice(2);
const toolsArg = args[0]?.startsWith("--tools=") ? args.shift() : undefined;
if (args.length === 0) fail("usage: node scripts/run.mjs [--tools=a,b] <command> [args...]");

const nodeBin = ensureNode();
if (toolsArg) {
  const names = toolsArg.slice("--tools=".length).split(",").filter(Boolean);
  const installed = spawnSync("bash", [join(root, "scripts/install-tools.sh"), ...names], { stdio: "inherit" });
  if (installed.status !== 0) process.exit(installed.status ?? 1);
}

const path = [nodeBin, join(tools, "bin"), join(root, "node_modules/.bin"), process.env.PATH]
  .filter(Boolean)
  .join(delimiter);
const child = spawn(args[0], args.slice(1), { stdio: "inherit", env: { ...process.env, PATH: path } });
child.on("error", (error) => fail(`could not run ${args[0]}: ${error.message}`));
// Pass on what a service manager or `kill` sends to this process alone. A terminal's
// Ctrl-C reaches the whole foreground group, the command included; passing it on as
// well is harmless, since the commands here treat a repeated signal as one.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
// npm runs this script through `sh -c`, and on SIGTERM signals that shell alone; dash
// (Debian's sh) dies of it without passing it on. This script then only sees its parent
// end (it is handed to init or a subreaper): stop the command as SIGTERM would.
if (process.env.npm_lifecycle_event !== undefined) {
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    child.kill("SIGTERM");
  }, 500);
  watch.unref();
}
child.on("exit", (code, signal) => {
  if (signal) {
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  } else {
    process.exit(code ?? 1);
  }
});

/** The folder of the Node binary to run on, or undefined where the machine's own serves. */
function ensureNode() {
  const major = Number(process.versions.node.split(".")[0]);
  if (major >= minimumMajor) return undefined;
  const home = join(tools, "node");
  const bin = join(home, "bin");
  const marker = join(home, "version");
  if (existsSync(join(bin, "node")) && readText(marker) === NODE_VERSION) return bin;

  const pkg = `node-${process.platform}-${process.arch}@${NODE_VERSION}`;
  console.error(`taskwire: installing Node ${NODE_VERSION} into .tools/node (this machine has ${process.version})`);
  mkdirSync(tools, { recursive: true });
  const scratch = mkdtempSync(join(tools, "node-download-"));
  try {
    const [npm, ...npmArgs] = npmCommand();
    const packed = spawnSync(npm, [...npmArgs, "pack", pkg, "--pack-destination", scratch, "--silent"], {
      encoding: "utf8",
    });
    if (packed.status !== 0) {
      fail(`could not download ${pkg} from the npm registry: ${packed.stderr.trim() || `npm exited ${packed.status}`}`);
    }
    const tarball = join(scratch, packed.stdout.trim().split("\n").pop());
    const unpacked = spawnSync("tar", ["-xzf", tarball, "-C", scratch], { stdio: "inherit" });
    if (unpacked.status !== 0) fail(`could not unpack ${tarball}`);
    rmSync(home, { recursive: true, force: true });
    renameSync(join(scratch, "package"), home);
    writeFileSync(marker, NODE_VERSION);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return bin;
}

/** The npm that runs this script (npm sets npm_execpath to its CLI), else the one on PATH. */
function npmCommand() {
  const cli = process.env.npm_execpath;
  return cli?.endsWith(".js") ? [process.execPath, cli] : ["npm"];
}

function readText(file) {
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
}

function fail(message) {
  console.error(`taskwire: ${message}`);
  process.exit(1);
}

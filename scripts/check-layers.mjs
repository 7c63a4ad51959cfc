// Checks the direction of imports between the project's folders (docs/architecture.md,
// "Layers"), that each folder is entered only through its index.ts, and that connect-es'
// private protocol modules are imported only by sdk/wire/connect-internals.ts:
//
//   node scripts/check-layers.mjs [root]
//
// prints one line per offending import and exits 1, or exits 0 when there is none.
// Tests (*.test.ts, test-support/, test/) and bench/ are not checked: they put the
// layers together as a deployment does, and reach into them to test their parts.
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";

const sdkLayers = ["wire", "core", "nats", "gateway-client", "client"];

/** What each area may import, besides itself and generated code. */
const allowed = {
  "sdk/wire": [],
  "sdk/core": ["sdk/wire"],
  "sdk/nats": ["sdk/core", "sdk/wire"],
  "sdk/gateway-client": ["sdk/core", "sdk/wire"],
  "sdk/client": ["sdk/nats", "sdk/gateway-client", "sdk/core", "sdk/wire"],
  sdk: sdkLayers.map((layer) => `sdk/${layer}`),
  codegen: ["sdk/core"],
  server: sdkLayers.map((layer) => `sdk/${layer}`),
  "worker-runtime": sdkLayers.map((layer) => `sdk/${layer}`),
  testing: [...sdkLayers.map((layer) => `sdk/${layer}`), "worker-runtime"],
  cli: [...sdkLayers.map((layer) => `sdk/${layer}`), "server", "worker-runtime", "testing"],
  // The web console runs in a browser: the protocol's generated code, and nothing else of ours.
  console: [],
};

/** The one module that imports connect-es' private exports (they follow no semver). */
const fencedInternals = "sdk/wire/connect-internals.ts";

/** The package's own entry points, as its files may name them. */
const selfImports = {
  taskwire: "sdk/index.ts",
  "taskwire/protocol": "sdk/protocol.ts",
  "taskwire/server": "server/index.ts",
  "taskwire/worker": "worker-runtime/index.ts",
  "taskwire/testing": "testing/index.ts",
};

/** The offending imports under `root`, as "file:line: why" lines. */
export function checkLayers(root) {
  const problems = [];
  for (const file of sourceFiles(
    root,
    Object.keys(allowed).filter((area) => !area.includes("/")),
  )) {
    const from = relative(root, file).split(sep).join("/");
    if (from.endsWith(".test.ts") || from.includes("/test-support/")) continue;
    const area = areaOf(from);
    const lines = readFileSync(file, "utf8").split("\n");
    lines.forEach((line, index) => {
      for (const specifier of specifiersIn(line)) {
        if (specifier.startsWith("@connectrpc/connect/protocol") && from !== fencedInternals) {
          problems.push(
            `${from}:${index + 1}: connect-es internals are imported through ${fencedInternals} ("${specifier}")`,
          );
          continue;
        }
        const target = targetOf(root, file, specifier);
        if (target === undefined) continue;
        const why = offence(area, target);
        if (why) problems.push(`${from}:${index + 1}: ${why} ("${specifier}")`);
      }
    });
  }
  return problems.sort();
}

/** Why `area` may not import `target`, or undefined. */
function offence(area, target) {
  const targetArea = areaOf(target);
  if (targetArea === area || targetArea === "gen" || targetArea === undefined) return undefined;
  if (!allowed[area].includes(targetArea)) return `${area} may not import ${targetArea}`;
  if (target !== `${targetArea}/index.ts`) return `${targetArea} is entered through its index.ts`;
  return undefined;
}

/** The area of a repository path: "sdk/<layer>" inside a layer, else its top folder. */
function areaOf(path) {
  const [top, second] = path.split("/");
  if (top === "sdk" && sdkLayers.includes(second)) return `sdk/${second}`;
  return top in allowed || top === "gen" ? top : undefined;
}

/** The repository path an import specifier names, or undefined for a package other than this one. */
function targetOf(root, file, specifier) {
  if (specifier in selfImports) return selfImports[specifier];
  if (!specifier.startsWith(".")) return undefined;
  return relative(root, resolve(dirname(file), specifier))
    .split(sep)
    .join("/");
}

/** The module specifiers of the static and dynamic imports and re-exports on a line. */
function specifiersIn(line) {
  if (/^\s*(\/\/|\*|\/\*)/.test(line)) return [];
  const found = [];
  for (const match of line.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)"([^"]+)"/g)) found.push(match[1]);
  return found;
}

function* sourceFiles(root, folders) {
  for (const folder of folders) yield* walk(join(root, folder));
}

function* walk(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && !["node_modules", ".tmp", "gen"].includes(entry.name)) yield* walk(path);
    else if (entry.isFile() && /\.tsx?$/.test(entry.name)) yield path;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const root = resolve(process.argv[2] ?? join(dirname(new URL(import.meta.url).pathname), ".."));
  const problems = checkLayers(root);
  for (const problem of problems) console.error(problem);
  if (problems.length > 0) {
    console.error(`check-layers: ${problems.length} import(s) against the layers (docs/architecture.md)`);
    process.exit(1);
  }
}

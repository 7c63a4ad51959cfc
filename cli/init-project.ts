import { existsSync, readFileSync } from "node:fs";
import { cp, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { basename, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** This package's root: the first folder above this module with a package.json (from sources or from dist/). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}

/** Template files whose name npm would not pack as it is, by the name they get. */
const renamed: Record<string, string> = { gitignore: ".gitignore" };

/**
 * `taskwire init [directory]`: writes a new project into `directory` (made if
 * missing): a proto with one task service, buf.yaml and buf.gen.yaml, a handler,
 * taskwire.yaml, a client script, a test of the handler, and a package.json
 * whose dependencies are this release of Taskwire and its peers. It writes
 * nothing if any of those files exists already. Returns the lines to print.
 */
export async function initProject(directory: string): Promise<string[]> {
  const target = resolve(directory);
  const root = packageRoot();
  const templates = join(root, "templates/project");
  const files = await listFiles(templates);
  const destinations = ["package.json", ...files.map((file) => renamed[file] ?? file)];
  const existing = destinations.filter((file) => existsSync(join(target, file)));
  if (existing.length > 0) {
    throw new Error(
      `${target} already has ${existing.join(", ")}: taskwire init writes a new project and overwrites nothing (choose a new directory)`,
    );
  }
  const name = packageName(basename(target));
  await mkdir(target, { recursive: true });
  for (const file of files) {
    const destination = join(target, renamed[file] ?? file);
    await mkdir(dirname(destination), { recursive: true });
    if (file === "README.md") {
      await writeFile(destination, (await readFile(join(templates, file), "utf8")).replaceAll("{{name}}", name));
    } else {
      await cp(join(templates, file), destination);
    }
  }
  await writeFile(join(target, "package.json"), `${JSON.stringify(projectManifest(name, root), null, 2)}\n`);
  const cd = relative(process.cwd(), target);
  return [
    `taskwire init: a new project in ${target}`,
    "Next:",
    ...(cd ? [`  cd ${cd}`] : []),
    "  npm install",
    "  npm run dev                 # generates gen/, then runs nats-server, the gateway and the workers",
    "  node src/client.ts Ada      # in another terminal",
    "  npm test",
  ];
}

/** The new project's package.json: this Taskwire and its peers at the ranges it declares. */
function projectManifest(name: string, root: string): object {
  const own = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
    version: string;
    engines: Record<string, string>;
    peerDependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  const caret = (pkg: string) => `^${own.devDependencies[pkg]?.replace(/^\^/, "")}`;
  return {
    name,
    version: "0.1.0",
    private: true,
    type: "module",
    // Node runs the project's TypeScript as it is from 22.18 on.
    engines: { node: ">=22.18" },
    scripts: {
      generate: "buf generate",
      dev: "buf generate && taskwire dev",
      build: "buf generate && tsc",
      test: "node --test",
    },
    dependencies: { taskwire: `^${own.version}`, ...own.peerDependencies },
    devDependencies: {
      "@bufbuild/buf": caret("@bufbuild/buf"),
      "@bufbuild/protoc-gen-es": caret("@bufbuild/protoc-gen-es"),
      "@types/node": caret("@types/node"),
      typescript: caret("typescript"),
    },
  };
}

/** A valid npm package name made of a directory's name. */
export function packageName(directory: string): string {
  const name = directory
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, "-")
    .replace(/^[._-]+|-+$/g, "");
  return name || "taskwire-project";
}

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const entries = await readdir(join(dir, prefix), { withFileTypes: true });
  const files: string[] = [];
  for (const entry of entries.sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) files.push(...(await listFiles(dir, path)));
    else files.push(path);
  }
  return files;
}

import {
  create,
  createFileRegistry,
  type DescFile,
  type DescMessage,
  type DescMethod,
  type DescService,
} from "@bufbuild/protobuf";
import {
  type CodeGeneratorRequest,
  type CodeGeneratorResponse,
  CodeGeneratorResponse_Feature,
  CodeGeneratorResponseSchema,
  Edition,
  FileDescriptorSetSchema,
} from "@bufbuild/protobuf/wkt";
import { getComments, type Plugin } from "@bufbuild/protoplugin";
import { taskwireVersion } from "../sdk/core/index.ts";
import { claimWorkerTypes, type WorkerSettings } from "./task-options.ts";

/** The plugin's options. */
interface GoPluginOptions {
  /** Where files go: by their Go import path (`import`, protoc-gen-go's default) or beside their proto (`source_relative`). */
  paths: "import" | "source_relative";
  /** The Go import path of the worker runtime. @default "taskwire/go/taskwire" */
  runtimePackage: string;
}

/** A Go package: its import path and its name. */
interface GoPackage {
  readonly path: string;
  readonly name: string;
}

/**
 * protoc-gen-taskwire-go: for every file with services marked
 * `(taskwire.v1.worker)`, writes `<file>_taskwire.go` in the Go package of
 * protoc-gen-go's `<file>.pb.go` (the file's `go_package`, which buf's managed
 * mode sets), with, per service, a handler interface and the
 * `Implement<Service>` function whose `taskwire.Service` the Go worker runtime
 * serves. Protos are checked as protoc-gen-taskwire checks them.
 */
export const goPlugin: Plugin = {
  name: "protoc-gen-taskwire-go",
  version: `v${taskwireVersion}`,
  run(request: CodeGeneratorRequest): CodeGeneratorResponse {
    const options = parseOptions(request.parameter);
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: request.protoFile }));
    const settings = claimWorkerTypes(registry.files);
    const response = create(CodeGeneratorResponseSchema, {
      supportedFeatures: BigInt(
        CodeGeneratorResponse_Feature.PROTO3_OPTIONAL | CodeGeneratorResponse_Feature.SUPPORTS_EDITIONS,
      ),
      minimumEdition: Edition.EDITION_PROTO2,
      maximumEdition: Edition.EDITION_2023,
    });
    for (const name of request.fileToGenerate) {
      const file = registry.getFile(name);
      if (!file) throw new Error(`protoc-gen-taskwire-go: ${name} is not in the request`);
      const services = file.services.filter((s) => settings.has(s));
      if (services.length === 0) continue;
      const pkg = goPackageOf(file);
      const base = options.paths === "source_relative" ? file.name : `${pkg.path}/${file.name.split("/").pop()}`;
      response.file.push({
        $typeName: "google.protobuf.compiler.CodeGeneratorResponse.File",
        name: `${base}_taskwire.go`,
        insertionPoint: "",
        content: generateFile(file, pkg, services, settings, options),
      });
    }
    return response;
  },
};

function parseOptions(parameter: string): GoPluginOptions {
  const options: GoPluginOptions = { paths: "import", runtimePackage: "taskwire/go/taskwire" };
  for (const pair of parameter.split(",").filter((p) => p !== "")) {
    const [key = "", value = ""] = pair.split("=", 2);
    if (key === "paths") {
      if (value !== "import" && value !== "source_relative")
        throw new Error(`paths must be import or source_relative, got "${value}"`);
      options.paths = value;
    } else if (key === "runtime_package") {
      if (!value) throw new Error("runtime_package needs a Go import path, e.g. runtime_package=taskwire/go/taskwire");
      options.runtimePackage = value;
    } else {
      throw new Error(`unknown option "${key}" (protoc-gen-taskwire-go knows paths and runtime_package)`);
    }
  }
  return options;
}

/** The file's Go package, from its `go_package` ("path;name" or "path"). */
function goPackageOf(file: DescFile): GoPackage {
  const option = file.proto.options?.goPackage ?? "";
  if (!option) {
    throw new Error(
      `${file.name}.proto has no go_package: set it in the file, or with buf's managed mode (go_package_prefix)`,
    );
  }
  const [path = "", name] = option.split(";");
  return { path, name: name ?? goSanitized(path.split("/").pop() ?? "") };
}

/** A package name made of an import path's last element, as protoc-gen-go makes it. */
function goSanitized(s: string): string {
  const cleaned = s.replace(/[^\p{L}\p{N}_]/gu, "_");
  return /^\p{N}/u.test(cleaned) ? `_${cleaned}` : cleaned;
}

/** protoc-gen-go's CamelCase of a proto name: `get_user` -> `GetUser`, `Outer.Inner` -> `Outer_Inner`. */
export function goCamelCase(s: string): string {
  const lower = (c: string | undefined) => c !== undefined && c >= "a" && c <= "z";
  const digit = (c: string) => c >= "0" && c <= "9";
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s.charAt(i);
    if (c === "." && lower(s[i + 1])) continue;
    if (c === ".") out += "_";
    else if (c === "_" && (i === 0 || s[i - 1] === ".")) out += "X";
    else if (c === "_" && lower(s[i + 1])) continue;
    else if (digit(c)) out += c;
    else {
      out += c.toUpperCase();
      while (lower(s[i + 1])) out += s[++i];
    }
  }
  return out;
}

/** The Go imports of a generated file, by import path, with their names. */
class Imports {
  private readonly byPath = new Map<string, string>();
  private readonly own: GoPackage;
  constructor(own: GoPackage) {
    this.own = own;
  }

  /** The qualifier of a package's identifiers in this file: "" for its own, else `<name>.`. */
  use(pkg: GoPackage): string {
    if (pkg.path === this.own.path) return "";
    let name = this.byPath.get(pkg.path);
    if (!name) {
      const taken = new Set([this.own.name, ...this.byPath.values()]);
      name = pkg.name;
      for (let n = 1; taken.has(name); n++) name = `${pkg.name}${n}`;
      this.byPath.set(pkg.path, name);
    }
    return `${name}.`;
  }

  print(): string {
    const lines = [...this.byPath].sort(([a], [b]) => a.localeCompare(b)).map(([path, name]) => `\t${name} "${path}"`);
    return `import (\n${lines.join("\n")}\n)`;
  }
}

function generateFile(
  file: DescFile,
  pkg: GoPackage,
  services: readonly DescService[],
  settings: ReadonlyMap<DescService, WorkerSettings>,
  options: GoPluginOptions,
): string {
  const imports = new Imports(pkg);
  const context = imports.use({ path: "context", name: "context" });
  const taskwire = imports.use({ path: options.runtimePackage, name: "taskwire" });
  const body: string[] = [];
  for (const service of services) {
    const s = settings.get(service) as WorkerSettings;
    const name = goCamelCase(service.name);
    const typeOf = (message: DescMessage) => `*${imports.use(goPackageOf(message.file))}${goIdent(message)}`;
    body.push(
      "",
      ...docComment(
        `${name}Handler runs the tasks of worker type "${s.workerType}" (${service.typeName}).`,
        getComments(service).leading,
      ),
      `type ${name}Handler interface {`,
    );
    for (const [i, method] of service.methods.entries()) {
      if (i > 0) body.push("");
      body.push(
        ...docComment(undefined, getComments(method).leading).map((line) => `\t${line}`),
        `\t${goCamelCase(method.name)}(ctx ${context}Context, task *${taskwire}Task, request ${typeOf(method.input)}) (${typeOf(method.output)}, error)`,
      );
    }
    body.push(
      "}",
      "",
      `// Implement${name} is worker type "${s.workerType}" served by h: pass it to`,
      "// taskwire.Main or taskwire.NewWorker.",
      `func Implement${name}(h ${name}Handler) ${taskwire}Service {`,
      `\treturn ${taskwire}Service{`,
      ...serviceFields(s, imports).map((line) => `\t\t${line}`),
      `\t\tMethods: []${taskwire}Method{`,
      ...service.methods.map(
        (m: DescMethod) => `\t\t\t${taskwire}NewMethod(${JSON.stringify(m.name)}, h.${goCamelCase(m.name)}),`,
      ),
      "\t\t},",
      "\t}",
      "}",
    );
  }
  return [
    `// Code generated by protoc-gen-taskwire-go v${taskwireVersion}. DO NOT EDIT.`,
    `// source: ${file.proto.name}`,
    "",
    `package ${pkg.name}`,
    "",
    imports.print(),
    ...body,
    "",
  ].join("\n");
}

/** The settings of `(taskwire.v1.worker)` the Go runtime uses, as struct fields. */
function serviceFields(s: WorkerSettings, imports: Imports): string[] {
  const fields = [`WorkerType: ${JSON.stringify(s.workerType)},`];
  if (s.concurrency) fields.push(`Concurrency: ${s.concurrency},`);
  if (s.maxConcurrency) fields.push(`MaxConcurrency: ${s.maxConcurrency},`);
  if (s.maxRate) fields.push(`MaxRate: ${s.maxRate},`);
  if (s.retention.statusTtlMs)
    fields.push(`StatusTTL: ${s.retention.statusTtlMs} * ${imports.use({ path: "time", name: "time" })}Millisecond,`);
  if (s.retention.maxResultBytes) fields.push(`MaxResultBytes: ${s.retention.maxResultBytes},`);
  // gofmt aligns the values of consecutive one-line fields.
  const width = Math.max(...fields.map((f) => f.indexOf(":")));
  return fields.map((f) => f.replace(/^(\w+):\s*/, (_, key: string) => `${key}:${" ".repeat(width - key.length + 1)}`));
}

/** A message's Go name, as protoc-gen-go gives it: nested names joined by "_". */
function goIdent(message: DescMessage): string {
  const pkg = message.file.proto.package;
  return goCamelCase(pkg ? message.typeName.slice(pkg.length + 1) : message.typeName);
}

/** `// ` lines of a summary and a proto comment. */
function docComment(summary: string | undefined, comment: string | undefined): string[] {
  const lines: string[] = [];
  if (summary) lines.push(summary);
  const text = comment?.replace(/\n$/, "");
  if (text) {
    if (summary) lines.push("");
    lines.push(...text.split("\n").map((line) => line.replace(/^ /, "")));
  }
  return lines.map((line) => (line === "" ? "//" : `// ${line}`));
}

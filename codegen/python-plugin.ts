import { create, createFileRegistry, type DescFile, type DescMessage, type DescService } from "@bufbuild/protobuf";
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
import { PluginError } from "./plugin-error.ts";
import { type WorkerSettings, workerSettings } from "./task-options.ts";

/**
 * protoc-gen-taskwire-python: for every file with services marked
 * `(taskwire.v1.worker)`, writes `<file>_taskwire.py` beside protoc's
 * `<file>_pb2.py`, with per service a handler Protocol (one typed async method
 * per rpc) and `implement_<service>()`, which binds a handler for the Python
 * worker runtime (python/taskwire). It takes no options.
 */
export const pythonPlugin: Plugin = {
  name: "protoc-gen-taskwire-python",
  version: `v${taskwireVersion}`,
  run(request: CodeGeneratorRequest): CodeGeneratorResponse {
    if (request.parameter !== "") {
      throw new Error(`protoc-gen-taskwire-python takes no options, got "${request.parameter}"`);
    }
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: request.protoFile }));
    // Worker types must be unique across every file of the request, not only those generated now.
    const claimed = new Map<string, DescService>();
    const settings = new Map<DescService, WorkerSettings>();
    for (const file of registry.files) {
      for (const service of file.services) {
        const s = workerSettings(service);
        if (!s) continue;
        const other = claimed.get(s.workerType);
        if (other) {
          throw new PluginError(
            service,
            `worker type "${s.workerType}" is already claimed by ${other.typeName} (${other.file.name}.proto)`,
          );
        }
        claimed.set(s.workerType, service);
        settings.set(service, s);
      }
    }
    const response = create(CodeGeneratorResponseSchema, {
      supportedFeatures: BigInt(
        CodeGeneratorResponse_Feature.PROTO3_OPTIONAL | CodeGeneratorResponse_Feature.SUPPORTS_EDITIONS,
      ),
      minimumEdition: Edition.EDITION_PROTO2,
      maximumEdition: Edition.EDITION_2023,
    });
    for (const name of request.fileToGenerate) {
      const file = registry.getFile(name);
      if (!file) throw new Error(`${name} is to be generated but the request does not hold it`);
      const services = file.services.filter((s) => settings.has(s));
      if (services.length === 0) continue;
      response.file.push({
        $typeName: "google.protobuf.compiler.CodeGeneratorResponse.File",
        name: `${file.name}_taskwire.py`,
        insertionPoint: "",
        content: generateFile(file, services, settings),
      });
    }
    return response;
  },
};

/** The module of a file's messages, as protoc's python generator names it: `probe/v1/probe` -> `probe.v1.probe_pb2`. */
function pb2Module(file: DescFile): string {
  return `${file.name.replaceAll("/", ".")}_pb2`;
}

/** The name this file imports that module as: `probe_v1_probe_pb2`. */
function pb2Alias(file: DescFile): string {
  return pb2Module(file).replace(/[^A-Za-z0-9_]/g, "_");
}

function snakeCase(name: string): string {
  return name
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2")
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .toLowerCase();
}

/** A message's class as this file refers to it: `probe_v1_probe_pb2.RunRequest` (nested: `Outer.Inner`). */
function messageClass(message: DescMessage): string {
  return `${pb2Alias(message.file)}.${message.typeName.slice(message.file.proto.package ? message.file.proto.package.length + 1 : 0)}`;
}

/** A docstring of a proto comment (leading, else trailing), indented; empty when there is none. */
function docstring(comment: string | undefined, indent: string, fallback: string): string {
  const text = (comment ?? "")
    .trim()
    .split("\n")
    .map((line) => line.replace(/^ /, "").trimEnd())
    .join("\n")
    .trim();
  const body = (text || fallback).replaceAll("\\", "\\\\").replaceAll('"""', '\\"\\"\\"');
  const lines = body.split("\n").map((line, i) => (i === 0 || line === "" ? line : `${indent}${line}`));
  return `${indent}"""${lines.join("\n")}${lines.length > 1 ? `\n${indent}` : ""}"""`;
}

function commentOf(desc: DescService | DescService["methods"][number]): string | undefined {
  const comments = getComments(desc);
  return comments.leading ?? comments.trailing;
}

function pythonFloat(n: number): string {
  return Number.isInteger(n) ? `${n}.0` : String(n);
}

function generateFile(file: DescFile, services: DescService[], settings: Map<DescService, WorkerSettings>): string {
  const modules = new Map<string, DescFile>([[pb2Module(file), file]]);
  for (const service of services) {
    for (const method of service.methods) {
      for (const message of [method.input, method.output]) modules.set(pb2Module(message.file), message.file);
    }
  }
  const imports = [...modules.values()]
    .sort((a, b) => pb2Module(a).localeCompare(pb2Module(b)))
    .map((f) => {
      const module = pb2Module(f);
      const dot = module.lastIndexOf(".");
      return dot < 0
        ? `import ${module} as ${pb2Alias(f)}`
        : `from ${module.slice(0, dot)} import ${module.slice(dot + 1)} as ${pb2Alias(f)}`;
    });
  const out: string[] = [
    `# Generated by protoc-gen-taskwire-python v${taskwireVersion}. DO NOT EDIT.`,
    `# source: ${file.proto.name}`,
    `"""The task services of ${file.proto.name}: handler protocols and worker bindings."""`,
    "",
    "from __future__ import annotations",
    "",
    "from typing import Protocol",
    "",
    "from taskwire import MethodBinding, ServiceBinding, TaskContext",
    "",
    ...imports,
  ];
  for (const service of services) {
    const s = settings.get(service) as WorkerSettings;
    const handler = `${service.name}Handler`;
    out.push("", "", `class ${handler}(Protocol):`);
    out.push(docstring(commentOf(service), "    ", `Handles the tasks of ${service.typeName}.`));
    for (const method of service.methods) {
      out.push(
        "",
        `    async def ${snakeCase(method.name)}(self, request: ${messageClass(method.input)}, ctx: TaskContext) -> ${messageClass(method.output)}:`,
        docstring(commentOf(method), "        ", `Runs a task of ${service.typeName}.${method.name}.`),
        "        ...",
      );
    }
    out.push(
      "",
      "",
      `def implement_${snakeCase(service.name)}(handler: ${handler}) -> ServiceBinding:`,
      `    """Binds a ${handler} for the worker runtime: worker type "${s.workerType}"."""`,
      "    return ServiceBinding(",
      `        worker_type=${JSON.stringify(s.workerType)},`,
      `        concurrency=${s.concurrency},`,
      `        max_concurrency=${s.maxConcurrency},`,
      `        max_rate=${pythonFloat(s.maxRate)},`,
      `        status_ttl_ms=${s.retention.statusTtlMs ?? "None"},`,
      `        max_result_bytes=${s.retention.maxResultBytes ?? "None"},`,
      "        methods={",
      ...service.methods.map(
        (method) =>
          `            ${JSON.stringify(method.name)}: MethodBinding(${JSON.stringify(method.name)}, ${messageClass(method.input)}, ${messageClass(method.output)}, handler.${snakeCase(method.name)}),`,
      ),
      "        },",
      "    )",
    );
  }
  return `${out.join("\n")}\n`;
}

import type { DescService } from "@bufbuild/protobuf";
import type { GeneratedFile, ImportSymbol, Printable } from "@bufbuild/protoplugin";
import { taskwireVersion } from "../sdk/core/index.ts";
import { taskDefaults, type WorkerSettings } from "./task-options.ts";

/** The runtime symbols generated code imports from the Taskwire package. */
export interface RuntimeSymbols {
  readonly defineTaskService: ImportSymbol;
  readonly implementTaskService: ImportSymbol;
  readonly SubmitOptions: ImportSymbol;
  readonly TaskClient: ImportSymbol;
  readonly TaskHandle: ImportSymbol;
  readonly HandlerResult: ImportSymbol;
  readonly TaskContext: ImportSymbol;
  readonly TaskServiceImplementation: ImportSymbol;
  readonly MessageInitShape: ImportSymbol;
}

/**
 * Prints, for one task service: its definition (`hashService`), the handler
 * interface (`HashServiceHandler`), `implementHashService()`, the client
 * interface (`HashServiceClient`) and `createHashServiceClient()`. `sourceInfo`
 * names the constant that holds the file's comments, if it has one.
 */
export function generateTaskService(
  f: GeneratedFile,
  service: DescService,
  settings: WorkerSettings,
  rt: RuntimeSymbols,
  sourceInfo?: string,
): void {
  const name = service.name;
  const definition = name.charAt(0).toLowerCase() + name.slice(1);
  const methods = service.methods;

  f.print(f.jsDoc(`The task service ${service.typeName}, run by workers of type "${settings.workerType}".`));
  f.print(f.export("const", definition), " = ", rt.defineTaskService, "({");
  f.print("  generatorVersion: ", f.string(taskwireVersion), ",");
  f.print("  workerType: ", f.string(settings.workerType), ",");
  f.print("  service: ", f.importSchema(service), ",");
  f.print("  concurrency: ", settings.concurrency, ",");
  if (settings.maxConcurrency) f.print("  maxConcurrency: ", settings.maxConcurrency, ",");
  if (settings.maxRate) f.print("  maxRate: ", settings.maxRate, ",");
  if (settings.maxQueued) f.print("  maxQueued: ", settings.maxQueued, ",");
  if (settings.storage === "memory") f.print('  storage: "memory",');
  if (settings.replicas) f.print("  replicas: ", settings.replicas, ",");
  if (Object.keys(settings.retention).length > 0) f.print("  retention: ", literal(settings.retention), ",");
  if (Object.keys(settings.keyLimits).length > 0) f.print("  keyLimits: ", literal(settings.keyLimits), ",");
  if (sourceInfo) f.print("  sourceInfo: ", sourceInfo, ",");
  f.print("  methods: {");
  for (const method of methods) {
    f.print("    ", method.localName, ": {");
    f.print("      name: ", f.string(method.name), ",");
    f.print("      input: ", f.importSchema(method.input), ",");
    f.print("      output: ", f.importSchema(method.output), ",");
    f.print("      defaults: ", literal(taskDefaults(method)), ",");
    f.print("    },");
  }
  f.print("  },");
  f.print("});");
  f.print();

  f.print(f.jsDoc(service));
  f.print(f.export("interface", `${name}Handler`), " {");
  for (const method of methods) {
    f.print(f.jsDoc(method, "  "));
    f.print(
      "  ",
      method.localName,
      "(request: ",
      f.importShape(method.input),
      ", ctx: ",
      rt.TaskContext,
      // HandlerResult, not MessageInitShape: a wrong result's error then names the field.
      "): Promise<",
      rt.HandlerResult,
      "<",
      f.importShape(method.output),
      ">>;",
    );
  }
  f.print("}");
  f.print();

  f.print(f.jsDoc(`Binds a ${name}Handler for the worker runtime: export the result from a handler module.`));
  f.print(
    f.export("function", `implement${name}`),
    "(handler: ",
    `${name}Handler`,
    "): ",
    rt.TaskServiceImplementation,
    "<typeof ",
    definition,
    ".methods> {",
  );
  f.print("  return ", rt.implementTaskService, "(", definition, ", {");
  for (const method of methods) {
    f.print("    ", method.localName, ": (request, ctx) => handler.", method.localName, "(request, ctx),");
  }
  f.print("  });");
  f.print("}");
  f.print();

  f.print(f.jsDoc(`Submits tasks of ${service.typeName}; each call resolves once the task is durably accepted.`));
  f.print(f.export("interface", `${name}Client`), " {");
  for (const method of methods) {
    f.print(f.jsDoc(method, "  "));
    f.print(
      "  ",
      method.localName,
      "(request: ",
      rt.MessageInitShape,
      "<typeof ",
      f.importSchema(method.input, true),
      ">, options?: ",
      rt.SubmitOptions,
      "): Promise<",
      rt.TaskHandle,
      "<typeof ",
      f.importSchema(method.output, true),
      ">>;",
    );
  }
  f.print("}");
  f.print();

  f.print(f.jsDoc(`A typed ${name}Client over a Taskwire client (gateway or direct mode).`));
  f.print(f.export("function", `create${name}Client`), "(client: ", rt.TaskClient, "): ", `${name}Client`, " {");
  f.print("  return {");
  for (const method of methods) {
    f.print(
      "    ",
      method.localName,
      ": (request, options) => client.submitTask(",
      definition,
      ".methods.",
      method.localName,
      ", request, options),",
    );
  }
  f.print("  };");
  f.print("}");
}

// A readable TypeScript object literal: { timeoutMs: 10000, retry: { maxAttempts: 3 } }.
function literal(value: unknown): Printable {
  if (typeof value !== "object" || value === null) return JSON.stringify(value);
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return "{}";
  return `{ ${entries.map(([k, v]) => `${k}: ${String(literal(v))}`).join(", ")} }`;
}

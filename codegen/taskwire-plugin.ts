import type { DescService } from "@bufbuild/protobuf";
import { createEcmaScriptPlugin } from "@bufbuild/protoplugin";
import { taskwireVersion } from "../sdk/core/index.ts";
import { generateTaskService, type RuntimeSymbols } from "./generate-task-service.ts";
import { PluginError } from "./plugin-error.ts";
import { type WorkerSettings, workerSettings } from "./task-options.ts";

/** The plugin's own option: where generated code imports the Taskwire runtime from. */
interface TaskwirePluginOptions {
  /** @default "taskwire" */
  runtimePackage: string;
}

/**
 * protoc-gen-taskwire: for every file with services marked
 * `(taskwire.v1.worker)`, writes `<file>_taskwire.ts` next to protoc-gen-es's
 * `<file>_pb.ts`, with a handler interface, a typed client and the definition
 * the worker runtime consumes, per service.
 */
export const taskwirePlugin = createEcmaScriptPlugin<TaskwirePluginOptions>({
  name: "protoc-gen-taskwire",
  // The package's version: the runtime checks the generated code's against its own.
  version: `v${taskwireVersion}`,
  parseOptions(raw) {
    const options: TaskwirePluginOptions = { runtimePackage: "taskwire" };
    for (const { key, value } of raw) {
      if (key !== "runtime_package")
        throw new Error(`unknown option "${key}" (protoc-gen-taskwire knows runtime_package)`);
      if (!value) throw new Error("runtime_package needs a package name, e.g. runtime_package=taskwire");
      options.runtimePackage = value;
    }
    return options;
  },
  generateTs(schema) {
    // Worker types must be unique across every file of the request, not only
    // the ones generated now.
    const claimed = new Map<string, DescService>();
    const settings = new Map<DescService, WorkerSettings>();
    for (const file of schema.allFiles) {
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
    for (const file of schema.files) {
      const services = file.services.filter((s) => settings.has(s));
      if (services.length === 0) continue;
      const f = schema.generateFile(`${file.name}_taskwire.ts`);
      f.preamble(file);
      const pkg = schema.options.runtimePackage;
      const rt: RuntimeSymbols = {
        defineTaskService: f.import("defineTaskService", pkg),
        SubmitOptions: f.import("SubmitOptions", pkg, true),
        TaskClient: f.import("TaskClient", pkg, true),
        TaskHandle: f.import("TaskHandle", pkg, true),
        implementTaskService: f.import("implementTaskService", `${pkg}/worker`),
        TaskContext: f.import("TaskContext", `${pkg}/worker`, true),
        TaskServiceImplementation: f.import("TaskServiceImplementation", `${pkg}/worker`, true),
        MessageInitShape: f.import("MessageInitShape", "@bufbuild/protobuf", true),
      };
      for (const [i, service] of services.entries()) {
        if (i > 0) f.print();
        generateTaskService(f, service, settings.get(service) as WorkerSettings, rt);
      }
    }
  },
});

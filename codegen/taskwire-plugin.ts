import { createEcmaScriptPlugin } from "@bufbuild/protoplugin";
import { taskwireVersion } from "../sdk/core/index.ts";
import { generateTaskService, type RuntimeSymbols } from "./generate-task-service.ts";
import { commentsOf, printSourceInfo } from "./source-info.ts";
import { claimWorkerTypes, type WorkerSettings } from "./task-options.ts";

/** The plugin's own options. */
interface TaskwirePluginOptions {
  /** Where generated code imports the Taskwire runtime from. @default "taskwire" */
  runtimePackage: string;
  /**
   * Which files carry their comments for gRPC reflection: those with task
   * services (`task_services`), every file, with a `<file>_taskwire.ts` holding
   * only the comments where it has no task service (`all`, for Taskwire's own
   * protocol), or none. @default "task_services"
   */
  sourceInfo: "task_services" | "all" | "none";
}

const sourceInfoValues = ["task_services", "all", "none"] as const;

/**
 * protoc-gen-taskwire: for every file with services marked
 * `(taskwire.v1.worker)`, writes `<file>_taskwire.ts` next to protoc-gen-es's
 * `<file>_pb.ts`, with the file's comments (for gRPC reflection) and, per
 * service, a handler interface, a typed client and the definition the worker
 * runtime consumes.
 */
export const taskwirePlugin = createEcmaScriptPlugin<TaskwirePluginOptions>({
  name: "protoc-gen-taskwire",
  // The package's version: the runtime checks the generated code's against its own.
  version: `v${taskwireVersion}`,
  parseOptions(raw) {
    const options: TaskwirePluginOptions = { runtimePackage: "taskwire", sourceInfo: "task_services" };
    for (const { key, value } of raw) {
      if (key === "runtime_package") {
        if (!value) throw new Error("runtime_package needs a package name, e.g. runtime_package=taskwire");
        options.runtimePackage = value;
      } else if (key === "source_info") {
        const known = sourceInfoValues.find((v) => v === value);
        if (!known) throw new Error(`source_info must be one of ${sourceInfoValues.join(", ")}, got "${value}"`);
        options.sourceInfo = known;
      } else {
        throw new Error(`unknown option "${key}" (protoc-gen-taskwire knows runtime_package and source_info)`);
      }
    }
    return options;
  },
  generateTs(schema) {
    const settings = claimWorkerTypes(schema.allFiles);
    for (const file of schema.files) {
      const services = file.services.filter((s) => settings.has(s));
      const comments = schema.options.sourceInfo === "none" ? undefined : commentsOf(file);
      if (services.length === 0) {
        // Only the comments, for a file that has no task service.
        if (schema.options.sourceInfo !== "all" || !comments) continue;
        const f = schema.generateFile(`${file.name}_taskwire.ts`);
        f.preamble(file);
        printSourceInfo(f, file, comments);
        continue;
      }
      const f = schema.generateFile(`${file.name}_taskwire.ts`);
      f.preamble(file);
      const sourceInfo = comments ? printSourceInfo(f, file, comments) : undefined;
      if (sourceInfo) f.print();
      const pkg = schema.options.runtimePackage;
      const rt: RuntimeSymbols = {
        defineTaskService: f.import("defineTaskService", pkg),
        SubmitOptions: f.import("SubmitOptions", pkg, true),
        TaskClient: f.import("TaskClient", pkg, true),
        TaskHandle: f.import("TaskHandle", pkg, true),
        HandlerResult: f.import("HandlerResult", pkg, true),
        implementTaskService: f.import("implementTaskService", `${pkg}/worker`),
        TaskContext: f.import("TaskContext", `${pkg}/worker`, true),
        TaskServiceImplementation: f.import("TaskServiceImplementation", `${pkg}/worker`, true),
        MessageInitShape: f.import("MessageInitShape", "@bufbuild/protobuf", true),
      };
      for (const [i, service] of services.entries()) {
        if (i > 0) f.print();
        generateTaskService(f, service, settings.get(service) as WorkerSettings, rt, sourceInfo);
      }
    }
  },
});

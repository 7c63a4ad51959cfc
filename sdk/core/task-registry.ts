import { createRegistry, type Registry } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { TaskError } from "./task-error.ts";
import type { TaskMethod, TaskServiceDefinition } from "./task-method.ts";
import { checkGeneratorVersion } from "./version.ts";

/**
 * The task services a gateway or client accepts, by worker type and rpc name.
 */
export interface TaskRegistry {
  /** Every registered definition. */
  readonly definitions: readonly TaskServiceDefinition[];
  /** The registered worker types. */
  workerTypes(): string[];
  /**
   * The task method for a worker type and rpc name. Throws INVALID_ARGUMENT for
   * an empty name and NOT_FOUND for an unknown one, naming what is known.
   */
  resolve(workerType: string, method: string): TaskMethod;
}

/**
 * Builds a registry from generated definitions (`hashService`, ...). Throws
 * when two definitions claim one worker type, or when a definition was generated
 * by a protoc-gen-taskwire of another version than this runtime's.
 */
export function createTaskRegistry(definitions: Iterable<TaskServiceDefinition>): TaskRegistry {
  const byType = new Map<string, TaskServiceDefinition>();
  for (const definition of definitions) {
    checkGeneratorVersion(definition);
    const existing = byType.get(definition.workerType);
    if (existing && existing.service.typeName !== definition.service.typeName) {
      throw new Error(
        `worker type "${definition.workerType}" is claimed by both ${existing.service.typeName} and ${definition.service.typeName}`,
      );
    }
    byType.set(definition.workerType, definition);
  }
  const methodsByType = new Map(
    [...byType].map(([type, def]) => [type, new Map(Object.values(def.methods).map((m) => [m.name, m]))]),
  );
  return {
    definitions: [...byType.values()],
    workerTypes: () => [...byType.keys()],
    resolve(workerType, method) {
      if (!workerType) throw new TaskError("task.worker_type is required", Code.InvalidArgument);
      const methods = methodsByType.get(workerType);
      if (!methods) {
        throw new TaskError(
          `unknown worker type "${workerType}" (known: ${[...byType.keys()].join(", ") || "none"})`,
          Code.NotFound,
        );
      }
      if (!method) throw new TaskError("task.method is required", Code.InvalidArgument);
      const found = methods.get(method);
      if (!found) {
        throw new TaskError(
          `unknown method "${method}" of worker type "${workerType}" (known: ${[...methods.keys()].join(", ")})`,
          Code.NotFound,
        );
      }
      return found;
    },
  };
}

/**
 * A type registry of every payload and result message of the definitions, for
 * JSON encoding of `Any` fields (gateway JSON clients, CLI output).
 */
export function registryOf(definitions: Iterable<TaskServiceDefinition>): Registry {
  return createRegistry(
    ...[...definitions].flatMap((d) => Object.values(d.methods).flatMap((m) => [m.input, m.output])),
  );
}

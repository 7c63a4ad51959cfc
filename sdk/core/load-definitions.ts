import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { TaskServiceDefinition } from "./task-method.ts";

/**
 * Imports generated modules (`*_taskwire.ts`) and returns every task service
 * definition they export.
 */
export async function loadDefinitions(modulePaths: string[], cwd = process.cwd()): Promise<TaskServiceDefinition[]> {
  const definitions: TaskServiceDefinition[] = [];
  for (const path of modulePaths) {
    let exports: Record<string, unknown>;
    try {
      exports = await import(pathToFileURL(resolve(cwd, path)).href);
    } catch (error) {
      throw new Error(`cannot load task service module ${path}: ${(error as Error).message}`, { cause: error });
    }
    const found = Object.values(exports).filter(isTaskServiceDefinition);
    if (found.length === 0)
      throw new Error(`module ${path} exports no task service definition (expected a generated *_taskwire module)`);
    definitions.push(...found);
  }
  return definitions;
}

function isTaskServiceDefinition(value: unknown): value is TaskServiceDefinition {
  if (typeof value !== "object" || value === null) return false;
  const v = value as Partial<TaskServiceDefinition>;
  return typeof v.workerType === "string" && v.service?.kind === "service" && typeof v.methods === "object";
}

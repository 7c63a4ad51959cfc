import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { isTaskServiceImplementation, type TaskServiceImplementation } from "./task-service-implementation.ts";

/**
 * Imports a handler module and returns every task service implementation it
 * exports: no other registration is needed. Fails when there is none.
 */
export async function loadImplementations(
  modulePath: string,
  cwd = process.cwd(),
): Promise<TaskServiceImplementation[]> {
  const url = pathToFileURL(resolve(cwd, modulePath)).href;
  let exports: Record<string, unknown>;
  try {
    exports = await import(url);
  } catch (error) {
    throw new Error(`cannot load handler module ${modulePath}: ${(error as Error).message}`, { cause: error });
  }
  // Lists count too: a module may build its implementations at load time.
  const found = Object.values(exports).flat().filter(isTaskServiceImplementation);
  if (found.length === 0) {
    throw new Error(
      `handler module ${modulePath} exports no task service implementation (export the result of a generated implement<Service>() call)`,
    );
  }
  return found;
}

import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { isTaskServiceImplementation, type TaskServiceImplementation } from "./task-service-implementation.ts";

/**
 * The exit code of a worker process whose handler module cannot load: no restart
 * would help (EX_CONFIG of sysexits.h), so the supervisor does not restart it.
 */
export const unloadableExitCode = 78;

/**
 * Imports a handler module and returns every task service implementation it
 * exports: no other registration is needed. Fails when there is none, or when
 * the module cannot load, saying why and, for TypeScript, how to run it.
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
    const hint = typeScriptHint((error as NodeJS.ErrnoException).code);
    throw new Error(`cannot load handler module ${modulePath}: ${(error as Error).message}${hint}`, { cause: error });
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

/** How to run a TypeScript module that this Node could not load, by Node's error code. */
function typeScriptHint(code: string | undefined): string {
  if (code === "ERR_UNKNOWN_FILE_EXTENSION") {
    return ` (this Node, ${process.version}, does not run TypeScript: use Node 22.18 or newer, start the supervisor with a loader such as \`node --import tsx\`, which its workers inherit, or compile the module to JavaScript)`;
  }
  if (code === "ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX") {
    return " (Node runs erasable TypeScript only: no enums, namespaces or parameter properties; generate code with protoc-gen-es' erasable_syntax=true, start the supervisor with a loader such as `node --import tsx`, or compile the module to JavaScript)";
  }
  return "";
}

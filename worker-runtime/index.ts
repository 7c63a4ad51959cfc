/**
 * The Taskwire worker runtime: run generated task handlers.
 *
 * ```ts
 * import { implementHashService } from "./gen/example/v1/hash_taskwire.js";
 * export const hasher = implementHashService({
 *   async digest(request, ctx) { return { hex: "...", rounds: 1 }; },
 * });
 * ```
 *
 * @module
 */

export type { TaskContext } from "./task-context.js";
export type {
  TaskMethodHandler,
  TaskServiceHandlers,
  TaskServiceImplementation,
} from "./task-service-implementation.js";
export { implementTaskService, isTaskServiceImplementation } from "./task-service-implementation.js";

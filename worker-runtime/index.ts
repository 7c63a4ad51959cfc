/**
 * The Taskwire worker runtime: run generated task handlers.
 *
 * ```ts
 * import { createWorker } from "taskwire/worker";
 * import { implementHashService } from "./gen/example/v1/hash_taskwire.js";
 *
 * const hasher = implementHashService({
 *   async digest(request, ctx) {
 *     ctx.progress(0.5);
 *     return { hex: sha256(request.text), rounds: 1 };
 *   },
 * });
 * const worker = await createWorker({ nats: "nats://127.0.0.1:4222", services: [hasher] });
 * process.on("SIGTERM", () => worker.close());
 * ```
 *
 * @module
 */

export { NonRetryableError, TaskError } from "../sdk/task-error.js";
export type { PoolOptions, Supervisor, SupervisorEvent, SupervisorOptions } from "./create-supervisor.js";
export { createSupervisor } from "./create-supervisor.js";
export type { Worker, WorkerOptions, WorkerState } from "./create-worker.js";
export { createWorker } from "./create-worker.js";
export { httpWorkerModule, implementHttpService } from "./http-executor.js";
export type { TaskMiddleware } from "./middleware.js";
export type { ResultEventOptions, ResultHook } from "./result-events.js";
export { taskResultOf } from "./result-events.js";
export type { TaskContext } from "./task-context.js";
export type {
  TaskMethodHandler,
  TaskServiceHandlers,
  TaskServiceImplementation,
} from "./task-service-implementation.js";
export { implementTaskService, isTaskServiceImplementation } from "./task-service-implementation.js";
export type { AttemptOutcome, WorkerEvent } from "./worker-event.js";

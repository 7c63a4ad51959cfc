/**
 * The Taskwire worker runtime: run generated task handlers.
 *
 * ```ts
 * import { createWorker } from "taskwire/worker";
 * import { implementHashService } from "./gen/example/v1/hash_taskwire.ts";
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
 * @module taskwire/worker
 */

export { NonRetryableError, TaskError } from "../sdk/core/index.ts";
export type { PoolOptions, Supervisor, SupervisorEvent, SupervisorOptions } from "./create-supervisor.ts";
export { createSupervisor } from "./create-supervisor.ts";
export type { Worker, WorkerState } from "./create-worker.ts";
export { createWorker } from "./create-worker.ts";
export type { Housekeeping } from "./housekeeping.ts";
export { keepHouse } from "./housekeeping.ts";
export { httpWorkerModule, implementHttpService } from "./http-executor.ts";
export type { TaskMiddleware } from "./middleware.ts";
export type { ResultEventOptions, ResultHook } from "./result-events.ts";
export { taskResultOf } from "./result-events.ts";
export type { HandlerRun, RunTaskHandlerOptions } from "./run-task-handler.ts";
export { runTaskHandler } from "./run-task-handler.ts";
export type { MetricsServer, MetricsServerOptions } from "./supervisor-metrics.ts";
export { serveSupervisorMetrics } from "./supervisor-metrics.ts";
export type { ChildCounts, ChildOutcome, SpawnOptions, TaskContext } from "./task-context.ts";
export {
  type BranchOutputs,
  type ContinueStep,
  type FailStep,
  type IgnoreStep,
  type StepOptions,
  TaskGraph,
  taskGraph,
} from "./task-graph.ts";
export type {
  TaskMethodHandler,
  TaskServiceHandlers,
  TaskServiceImplementation,
} from "./task-service-implementation.ts";
export { implementTaskService, isTaskServiceImplementation } from "./task-service-implementation.ts";
export type { AttemptOutcome, WorkerEvent } from "./worker-event.ts";
export { workerMetricsRegistry } from "./worker-metrics.ts";
export type { WorkerOptions } from "./worker-options.ts";

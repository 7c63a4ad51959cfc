/**
 * Taskwire: typed tasks over NATS JetStream.
 *
 * ```ts
 * import { createClient } from "taskwire";
 * import { createHashServiceClient } from "./gen/example/v1/hash_taskwire.js";
 *
 * const client = await createClient({ gateway: "http://127.0.0.1:8080" });
 * const task = await createHashServiceClient(client).digest({ text: "hello", rounds: 1000 });
 * console.log((await task.result()).hex);
 * ```
 *
 * @module
 */

export type { DirectClientOptions, GatewayClientOptions, TaskwireClient } from "./create-client.js";
export { createClient } from "./create-client.js";
export type { NatsQueueBackendOptions } from "./nats-queue-backend.js";
export { createNatsQueueBackend } from "./nats-queue-backend.js";
export type { NatsTaskBackendOptions } from "./nats-task-backend.js";
export { createNatsTaskBackend } from "./nats-task-backend.js";
export type { SubmitLimits } from "./prepare-task.js";
export type { QueueBackend } from "./queue-backend.js";
export type { SubmitItem, SubmitManyOptions, SubmitManyProgress, SubmitManySummary } from "./submit-many.js";
export type { TaskBackend } from "./task-backend.js";
export type { StatusStream, SubmitOptions, TaskClient, TaskHandle } from "./task-client.js";
export { NonRetryableError, TaskError } from "./task-error.js";
export type {
  DeliveryName,
  PriorityName,
  RetryOptions,
  TaskDefaults,
  TaskMethod,
  TaskServiceDefinition,
} from "./task-method.js";
export { defineTaskService } from "./task-method.js";
export type { TaskRegistry } from "./task-registry.js";
export { createTaskRegistry, registryOf } from "./task-registry.js";
export { isTerminal } from "./task-status.js";
export type { StatusTopologyOptions, StorageOptions, WorkerTypeTopologyOptions } from "./topology.js";
export { topology } from "./topology.js";

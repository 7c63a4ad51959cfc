/**
 * Taskwire: typed tasks over NATS JetStream.
 *
 * ```ts
 * import { createClient } from "taskwire";
 * import { createHashServiceClient } from "./gen/example/v1/hash_taskwire.ts";
 *
 * const client = await createClient({ gateway: "http://127.0.0.1:8080" });
 * const task = await createHashServiceClient(client).digest({ text: "hello", rounds: 1000 });
 * console.log((await task.result()).hex);
 * ```
 *
 * @module
 */

export type { DirectClientOptions, GatewayClientOptions, TaskwireClient } from "./create-client.ts";
export { createClient } from "./create-client.ts";
export type { NatsQueueBackendOptions } from "./nats-queue-backend.ts";
export { createNatsQueueBackend } from "./nats-queue-backend.ts";
export type { NatsTaskBackendOptions } from "./nats-task-backend.ts";
export { createNatsTaskBackend } from "./nats-task-backend.ts";
export type { SubmitLimits } from "./prepare-task.ts";
export type { QueueBackend } from "./queue-backend.ts";
export type { SubmitItem, SubmitManyOptions, SubmitManyProgress, SubmitManySummary } from "./submit-many.ts";
export type { TaskBackend } from "./task-backend.ts";
export type { StatusStream, SubmitOptions, TaskClient, TaskHandle } from "./task-client.ts";
export { NonRetryableError, TaskError } from "./task-error.ts";
export type {
  DeliveryName,
  PriorityName,
  RetryOptions,
  TaskDefaults,
  TaskMethod,
  TaskServiceDefinition,
} from "./task-method.ts";
export { defineTaskService } from "./task-method.ts";
export type { TaskRegistry } from "./task-registry.ts";
export { createTaskRegistry, registryOf } from "./task-registry.ts";
export { isTerminal, stateName } from "./task-status.ts";
export type { StatusTopologyOptions, StorageOptions, WorkerTypeTopologyOptions } from "./topology.ts";
export { topology } from "./topology.ts";

/**
 * Taskwire: typed tasks over NATS JetStream.
 *
 * ```ts
 * import { createHashServiceClient } from "./gen/example/v1/hash_taskwire.js";
 * const hashes = createHashServiceClient(client);
 * const task = await hashes.digest({ text: "hello", rounds: 1000 });
 * console.log((await task.result()).hex);
 * ```
 *
 * @module
 */

export type { StatusStream, SubmitOptions, TaskClient, TaskHandle } from "./task-client.js";
export type {
  DeliveryName,
  PriorityName,
  RetryOptions,
  TaskDefaults,
  TaskMethod,
  TaskServiceDefinition,
} from "./task-method.js";
export { defineTaskService } from "./task-method.js";

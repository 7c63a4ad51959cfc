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
 * @module taskwire
 */

export type {
  DirectClientOptions,
  GatewayClientOptions,
  SubmitItem,
  SubmitManyOptions,
  SubmitManyProgress,
  SubmitManySummary,
  TaskwireClient,
  TransportClientOptions,
} from "./client/index.ts";
export { createClient } from "./client/index.ts";
export type {
  DeliveryName,
  HandlerResult,
  KeyLimitSettings,
  LimitKind,
  PriorityName,
  QueueBackend,
  ResultFields,
  ResultMessage,
  RetentionSettings,
  RetryOptions,
  ScheduleBackend,
  ScheduleChange,
  StatusStream,
  SubmitLimits,
  SubmitOptions,
  TaskBackend,
  TaskClient,
  TaskDefaults,
  TaskHandle,
  TaskMethod,
  TaskRegistry,
  TaskServiceDefinition,
} from "./core/index.ts";
export {
  createTaskRegistry,
  defineTaskService,
  isTerminal,
  NonRetryableError,
  registryOf,
  stateName,
  TaskError,
  topology,
} from "./core/index.ts";
export type { GatewaySessionOptions, GatewayTlsOptions } from "./gateway-client/index.ts";
export type {
  NatsConnectionSettings,
  NatsQueueBackendOptions,
  NatsSecret,
  NatsTaskBackendOptions,
  StatusTopologyOptions,
  StorageOptions,
  WorkerTypeTopologyOptions,
} from "./nats/index.ts";
export { createNatsQueueBackend, createNatsTaskBackend } from "./nats/index.ts";

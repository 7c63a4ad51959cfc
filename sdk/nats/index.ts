/**
 * What the client, the gateway and the worker share over NATS: connecting,
 * provisioning, JetStream operations, the status store, the task and queue
 * backends, the request pipeline and the result inbox. Uses core/ and wire/.
 *
 * @module
 */

export { expireBroadcast, openWorkersBucket, presenceTtlMs, recordEndpoint } from "./broadcast.ts";
export {
  awaitChildren,
  type ChildCount,
  cancelChildren,
  childIds,
  childrenOf,
  countChild,
  countChildren,
  listChild,
  parkWorkItem,
  resumeParent,
} from "./children.ts";
export {
  absolutePaths,
  assertSecretReferences,
  describeServers,
  jetStreamOptionsOf,
  type NatsConnectionSettings,
  type NatsSecret,
  redactUrl,
} from "./connection-settings.ts";
export {
  describeDifference,
  type ProvisionContext,
  type ProvisionMode,
  type SettingDifference,
} from "./ensure.ts";
export {
  readThroughput,
  readWorkers,
  type ThroughputRead,
  watchWorkers,
} from "./fleet.ts";
export { directGet, directGetBatch, isQueuedAlready, publishToStream } from "./jetstream-ops.ts";
export { fromNatsError } from "./nats-error.ts";
export { createNatsQueueBackend, type NatsQueueBackendOptions } from "./nats-queue-backend.ts";
export { createNatsTaskBackend, type NatsTaskBackendOptions } from "./nats-task-backend.ts";
export { openConnection } from "./open-connection.ts";
export {
  checkServerVersion,
  defaultMaxResultBytes,
  keepProvisioned,
  provisionBucket,
  provisionEndpointConsumer,
  provisionPatiently,
  provisionStatusBucket,
  provisionTaskIndex,
  provisionThroughputStream,
  provisionWorkerType,
  type StatusTopologyOptions,
  type StorageOptions,
  statusTtls,
  type WorkerTypeTopologyOptions,
} from "./provisioning.ts";
export { destinationTemplate, type PublishedTask, publishWorkItem } from "./publish-work-item.ts";
export { RequestPipeline } from "./request-pipeline.ts";
export { openSchedulesBucket, ScheduleStore, scheduleMetadata } from "./schedule-store.ts";
export { ScheduleTicker } from "./schedule-ticker.ts";
export { applyDeclarations, type Scheduling, type SchedulingOptions, startScheduling } from "./scheduling.ts";
export {
  bucketOf,
  readStatus,
  readStatusEntry,
  readStatusRecords,
  type StatusBucket,
  type StoredStatus,
  type WrittenStatus,
  writeStatus,
} from "./status-store.ts";
export type { TaskIndexWriter } from "./task-index.ts";
export { extractTraceContext } from "./trace-headers.ts";

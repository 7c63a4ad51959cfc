/**
 * Taskwire's protocol as pure logic, shared by every process: task methods and the
 * registry, ids, errors, limits, validation of a submit (prepareTask), status
 * helpers, and every NATS subject, stream and bucket name. No I/O and no NATS
 * client; it may use wire/ (encoding a WorkItem is part of preparing one).
 *
 * @module
 */

export { onAbort } from "./abort-fanout.ts";
export { declaredSchedules } from "./declared-schedules.ts";
export { type Backends, deferredBackends } from "./deferred-backends.ts";
export type { HandlerResult, ResultFields, ResultMessage } from "./handler-result.ts";
export { endpointPattern, maxBatchSize, maxReasonLength } from "./limits.ts";
export { loadDefinitions } from "./load-definitions.ts";
export { Mailbox } from "./mailbox.ts";
export { type LimitKind, topology } from "./names.ts";
export {
  fairnessKeyHash,
  methodKeyHash,
  type PreparedTask,
  prepareTask,
  priorityNames,
  type ResultRoute,
  type SubmitLimits,
  singletonPrefix,
  taskSubjectOf,
} from "./prepare-task.ts";
export type { QueueBackend } from "./queue-backend.ts";
export type { ScheduleBackend, ScheduleChange } from "./schedule-backend.ts";
export {
  bufferRecheckMs,
  checkScheduleId,
  compileSpec,
  decideTick,
  jitterMsOf,
  type NextTime,
  nextTime,
  planOf,
  type SchedulePlan,
  scheduledTaskKey,
  scheduleKey,
  type TickDecision,
} from "./schedule-plan.ts";
export {
  type CronSchedule,
  type CronSpec,
  type IntervalSchedule,
  type IntervalSpec,
  nextTimes,
  parseScheduleSpec,
  type Schedule,
  type ScheduleBounds,
  type ScheduleSpec,
  timesBetween,
} from "./schedule-times.ts";
export { searchableFields, searchableKind, searchTerm, searchText } from "./searchable-fields.ts";
export { recordSourceInfo, sourceInfoOf } from "./source-info.ts";
export {
  decodeOutcome,
  decodeStatus,
  encodedOutcome,
  isTerminal,
  markCancelled,
  queuedStatus,
  stateName,
  type TaskOutcome,
} from "./status.ts";
export type { TaskBackend } from "./task-backend.ts";
export type { StatusStream, SubmitOptions, TaskClient, TaskHandle } from "./task-client.ts";
export { NonRetryableError, TaskError } from "./task-error.ts";
export { taskFromOptions } from "./task-from-options.ts";
export {
  checkWorkerType,
  keyedTaskId,
  newRoute,
  routeLength,
  taskIdOfSubject,
  taskIdToken,
  workerTypeOf,
} from "./task-id.ts";
export {
  type DeliveryName,
  defineTaskService,
  type KeyLimitSettings,
  type PriorityName,
  type RetentionSettings,
  type RetryOptions,
  type TaskDefaults,
  type TaskMethod,
  type TaskServiceDefinition,
} from "./task-method.ts";
export { createTaskRegistry, registryOf, type TaskRegistry } from "./task-registry.ts";
export { codeName, flushTraces, recordFailure, taskwireTracer } from "./taskwire-tracer.ts";
export { addPoint, combineSnapshots, throughputStepMs } from "./throughput.ts";
export { checkGeneratorVersion, compatibleVersions, taskwireVersion } from "./version.ts";

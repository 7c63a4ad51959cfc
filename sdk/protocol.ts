/**
 * The protocol's messages, enums and services, as protoc-gen-es generates them
 * from proto/taskwire/v1: `TaskState`, `TaskStatus`, `WorkItem`, `TaskService`...
 *
 * ```ts
 * import { TaskState } from "taskwire/protocol";
 * if ((await task.status()).state === TaskState.SUCCEEDED) { ... }
 * ```
 *
 * @module taskwire/protocol
 */

export * from "../gen/taskwire/v1/gateway_service_pb.ts";
export * from "../gen/taskwire/v1/options_pb.ts";
export * from "../gen/taskwire/v1/queue_service_pb.ts";
export * from "../gen/taskwire/v1/schedule_service_pb.ts";
export * from "../gen/taskwire/v1/task_pb.ts";
export * from "../gen/taskwire/v1/task_service_pb.ts";
export * from "../gen/taskwire/v1/worker_service_pb.ts";

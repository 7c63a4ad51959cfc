import { create, type DescMessage, type MessageInitShape } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  ChildFailure,
  DeliveryMode,
  Priority,
  RetryPolicySchema,
  type Task,
  TaskSchema,
} from "../../gen/taskwire/v1/task_pb.ts";
import { packPayload } from "./prepare-task.ts";
import type { SubmitOptions } from "./task-client.ts";
import type { TaskMethod } from "./task-method.ts";

const priorities = { high: Priority.HIGH, normal: Priority.NORMAL, low: Priority.LOW } as const;
const deliveries = { queue: DeliveryMode.QUEUE, broadcast: DeliveryMode.BROADCAST } as const;

/**
 * The Task message a typed submit sends: payload packed in an Any, options
 * mapped to fields. Written out as `create(TaskSchema, ...)` would make it (tsc
 * checks every field is listed): this runs once per task.
 */
export function taskFromOptions<I extends DescMessage>(
  method: TaskMethod<I>,
  request: MessageInitShape<I>,
  options: SubmitOptions = {},
): Task {
  const retry = options.retry;
  return {
    $typeName: TaskSchema.typeName,
    workerType: method.workerType,
    method: method.name,
    payload: packPayload(method.input, create(method.input, request)),
    idempotencyKey: options.idempotencyKey ?? "",
    priority: options.priority ? priorities[options.priority] : Priority.UNSPECIFIED,
    schedule: options.notBefore
      ? { case: "notBefore", value: timestampFromDate(options.notBefore) }
      : options.delayMs !== undefined
        ? { case: "delay", value: durationFromMs(options.delayMs) }
        : { case: undefined },
    expiresAt: options.expiresAt ? timestampFromDate(options.expiresAt) : undefined,
    timeout: options.timeoutMs !== undefined ? durationFromMs(options.timeoutMs) : undefined,
    retry: retry
      ? create(RetryPolicySchema, {
          maxAttempts: retry.maxAttempts ?? 0,
          initialBackoff: retry.initialBackoffMs !== undefined ? durationFromMs(retry.initialBackoffMs) : undefined,
          maxBackoff: retry.maxBackoffMs !== undefined ? durationFromMs(retry.maxBackoffMs) : undefined,
          multiplier: retry.multiplier ?? 0,
          jitter: retry.jitter ?? 0,
        })
      : undefined,
    metadata: { ...options.metadata },
    delivery: options.delivery ? deliveries[options.delivery] : DeliveryMode.UNSPECIFIED,
    endpoints: options.endpoints ? [...options.endpoints] : [],
    submittedBy: "",
    parentTaskId: "",
    childFailure: ChildFailure.UNSPECIFIED,
    fairnessKey: options.fairnessKey ?? "",
  };
}

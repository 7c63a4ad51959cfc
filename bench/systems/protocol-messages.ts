import { create, toBinary } from "@bufbuild/protobuf";
import { anyPack, durationFromMs, timestampNow } from "@bufbuild/protobuf/wkt";
import { EchoRequestSchema, EchoResponseSchema } from "../../gen/bench/v1/bench_pb.js";
import {
  DeliveryMode,
  Priority,
  RetryPolicySchema,
  TaskState,
  TaskStatusSchema,
  WorkItemSchema,
} from "../../gen/taskwire/v1/task_pb.js";
import { encodedTaskResult } from "../../worker-runtime/result-events.js";
import { payloadText } from "../target.js";

/**
 * The messages of one bench task as Taskwire writes them (a WorkItem, its
 * terminal TaskStatus and the TaskResult event), encoded once: the protocol
 * floor sends these bytes for every task, so that it moves what Taskwire moves
 * with none of the SDK's per-task work. The id inside is a placeholder of the
 * real length; the subjects carry each task's own.
 */
export function protocolMessages(): { workItem: Uint8Array; status: Uint8Array; event: Uint8Array } {
  const taskId = `bench.${"0".repeat(26)}`;
  const workItem = toBinary(
    WorkItemSchema,
    create(WorkItemSchema, {
      taskId,
      workerType: "bench",
      method: "Echo",
      payloadType: EchoRequestSchema.typeName,
      payload: toBinary(EchoRequestSchema, create(EchoRequestSchema, { text: payloadText })),
      attempt: 1,
      retry: create(RetryPolicySchema, {
        maxAttempts: 3,
        initialBackoff: durationFromMs(1_000),
        maxBackoff: durationFromMs(300_000),
        multiplier: 2,
        jitter: 0.2,
      }),
      timeout: durationFromMs(30_000),
      priority: Priority.NORMAL,
      delivery: DeliveryMode.QUEUE,
      submittedAt: timestampNow(),
    }),
  );
  const status = toBinary(
    TaskStatusSchema,
    create(TaskStatusSchema, {
      taskId,
      workerType: "bench",
      method: "Echo",
      state: TaskState.SUCCEEDED,
      attempt: 1,
      maxAttempts: 3,
      createdAt: timestampNow(),
      startedAt: timestampNow(),
      finishedAt: timestampNow(),
      updatedAt: timestampNow(),
      result: anyPack(EchoResponseSchema, create(EchoResponseSchema, { text: payloadText })),
      workerId: "bench-worker",
      priority: Priority.NORMAL,
      delivery: DeliveryMode.QUEUE,
      deliverySequence: 100_000n,
      deliveryCount: 1,
    }),
  );
  return { workItem, status, event: encodedTaskResult(status) };
}

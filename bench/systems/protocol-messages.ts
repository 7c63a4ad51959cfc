import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { TaskState, TaskStatusSchema, WorkItemSchema } from "../../gen/taskwire/v1/task_pb.ts";
import { prepareTask } from "../../sdk/core/prepare-task.ts";
import { queuedStatus } from "../../sdk/core/status.ts";
import { taskFromOptions } from "../../sdk/core/task-from-options.ts";
import { createTaskRegistry } from "../../sdk/core/task-registry.ts";
import { decodeMessage, encodeMessage, packMessage } from "../../sdk/wire/wire-codec.ts";
import { encodedTaskResult } from "../../worker-runtime/result-events.ts";
import { EchoResponseSchema } from "../gen/bench/v1/bench_pb.ts";
import { echoService } from "../gen/bench/v1/bench_taskwire.ts";
import { payloadText } from "../target.ts";

/** The bench's one method. */
export const echo = echoService.methods.echo;

/**
 * The messages of one bench task as Taskwire writes them, encoded once: the
 * WorkItem of a typed submit (by the SDK's own `prepareTask`), its status record
 * once the attempt succeeded, and the TaskResult event of that record. The
 * protocol floor sends these bytes for every task, so that it moves what
 * Taskwire moves with none of the SDK's per-task work; the subjects carry each
 * task's own id, the bytes the id of the task they were made for.
 */
export function protocolMessages(): { workItem: Uint8Array; status: Uint8Array; event: Uint8Array } {
  const prepared = prepareTask(createTaskRegistry([echoService]), taskFromOptions(echo, { text: payloadText }));
  const workItem = decodeMessage(WorkItemSchema, prepared.bytes);
  const record = queuedStatus(workItem, TaskState.SUCCEEDED);
  Object.assign(record, {
    attempt: 1,
    startedAt: timestampNow(),
    finishedAt: timestampNow(),
    result: packMessage(EchoResponseSchema, create(EchoResponseSchema, { text: payloadText })),
    workerId: "bench-worker",
    deliverySequence: 100_000n,
    deliveryCount: 1,
  });
  const status = encodeMessage(TaskStatusSchema, record);
  return { workItem: prepared.bytes, status, event: encodedTaskResult(status) };
}

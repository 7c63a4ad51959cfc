import { create, toBinary } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { DeadLetterSchema } from "../gen/taskwire/v1/queue_service_pb.ts";
import type { TaskStatus, WorkItem } from "../gen/taskwire/v1/task_pb.ts";
import { taskIdToken, topology } from "../sdk/core/index.ts";
import type { StatusBucket } from "../sdk/nats/index.ts";
import { publishToStream } from "../sdk/nats/index.ts";

/**
 * Stores a task that failed for good in its worker type's dead-letter stream,
 * with the WorkItem as submitted (so it can be queued again) and its FAILED
 * status. Idempotent: the stream keeps one letter per task.
 */
export async function deadLetter(bucket: StatusBucket, workItem: WorkItem, status: TaskStatus): Promise<void> {
  const letter = create(DeadLetterSchema, { status, workItem, deadAt: timestampNow() });
  await publishToStream(
    bucket.requests,
    topology.deadLetterSubject(workItem.workerType, taskIdToken(workItem.taskId)),
    toBinary(DeadLetterSchema, letter),
  );
}

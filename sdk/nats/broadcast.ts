import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import {
  type EndpointResult,
  EndpointResultSchema,
  ErrorCode,
  TaskErrorSchema,
  TaskState,
  type TaskStatus,
} from "../../gen/taskwire/v1/task_pb.ts";
import { isTerminal, stateName, TaskError, topology } from "../core/index.ts";
import { provisionBucket, type StorageOptions } from "./provisioning.ts";
import { readStatus, type StatusBucket, type WrittenStatus, writeStatus } from "./status-store.ts";

/** How long a worker instance counts as live after its last refresh. */
export const presenceTtlMs = 15_000;

/** The bucket of live worker instances, created on first use with the deployment's replicas and storage. */
export function openWorkersBucket(nc: NatsConnection, options: StorageOptions = {}): Promise<KV> {
  return provisionBucket(nc, topology.workersBucket, { ttlMs: undefined, defaultTtlMs: presenceTtlMs }, options);
}

/** The live worker instances of a type, sorted: the endpoints of a broadcast to all. */
export async function liveEndpoints(workers: KV, workerType: string): Promise<string[]> {
  const endpoints: string[] = [];
  for await (const key of await workers.keys(`${workerType}.*`)) endpoints.push(key.slice(workerType.length + 1));
  return endpoints.sort();
}

/**
 * Records one endpoint's outcome in a broadcast task's status, merging it into
 * the current record with a conditional write (other endpoints write too).
 * When every endpoint has ended, the task ends: SUCCEEDED if all succeeded
 * (its `result` is the first endpoint's), else FAILED. Resolves with what was
 * written, or "superseded" when the task already ended (cancelled, or timed
 * out INCOMPLETE).
 */
export async function recordEndpoint(
  bucket: StatusBucket,
  taskId: string,
  endpoint: string,
  update: (result: EndpointResult) => void,
): Promise<{ written: WrittenStatus; status: TaskStatus } | "superseded"> {
  for (;;) {
    const current = await readStatus(bucket, taskId);
    if (!current) throw new TaskError(`broadcast task ${taskId} has no status record`, Code.DataLoss, { taskId });
    const status = current.status;
    if (isTerminal(status.state)) return "superseded";
    let result = status.endpoints.find((e) => e.endpoint === endpoint);
    if (!result) {
      result = create(EndpointResultSchema, { endpoint, state: TaskState.PENDING });
      status.endpoints.push(result);
    }
    update(result);
    if (status.endpoints.every((e) => isTerminal(e.state))) {
      const failed = status.endpoints.filter((e) => e.state !== TaskState.SUCCEEDED);
      status.finishedAt = timestampNow();
      if (failed.length === 0) {
        status.state = TaskState.SUCCEEDED;
        status.result = status.endpoints[0]?.result;
      } else {
        status.state = TaskState.FAILED;
        status.error = create(TaskErrorSchema, {
          code: failed[0]?.error?.code ?? ErrorCode.UNKNOWN,
          message: `failed on ${failed.map((e) => `${e.endpoint} (${e.error?.message ?? stateName(e.state)})`).join(", ")}`,
          occurredAt: timestampNow(),
        });
      }
    } else if (status.state === TaskState.PENDING) status.state = TaskState.RUNNING;
    const written = await writeStatus(bucket, status, current.revision);
    if (written) return { written, status };
  }
}

/** Ends a broadcast task INCOMPLETE, naming the endpoints that have not answered; "superseded" if it ended. */
export async function expireBroadcast(
  bucket: StatusBucket,
  taskId: string,
): Promise<{ written: WrittenStatus; status: TaskStatus; missing: string[] } | "superseded"> {
  for (;;) {
    const current = await readStatus(bucket, taskId);
    if (!current || isTerminal(current.status.state)) return "superseded";
    const status = current.status;
    const missing = status.endpoints.filter((e) => !isTerminal(e.state)).map((e) => e.endpoint);
    status.state = TaskState.INCOMPLETE;
    status.finishedAt = timestampNow();
    status.error = create(TaskErrorSchema, {
      code: ErrorCode.DEADLINE_EXCEEDED,
      message: `no answer in time from: ${missing.join(", ")}`,
      occurredAt: timestampNow(),
    });
    const written = await writeStatus(bucket, status, current.revision);
    if (written) return { written, status, missing };
  }
}

import { create, equals } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { DeliveryMode, Priority, TaskState, TaskStatusSchema, WorkItemSchema } from "../gen/taskwire/v1/task_pb.js";
import { queuedStatus } from "./task-status.js";
import { decodeMessage, encodeMessage } from "./wire-codec.js";

describe("queuedStatus", () => {
  const workItem = create(WorkItemSchema, {
    taskId: "hasher.01M81KRJQKXX1XB86P9GKYNA2Y",
    workerType: "hasher",
    method: "Digest",
    priority: Priority.HIGH,
    retry: { maxAttempts: 4 },
    timeout: durationFromMs(5_000),
    submittedAt: timestampFromMs(1_700_000_000_000),
    notBefore: timestampFromMs(1_700_000_060_000),
    expiresAt: timestampFromMs(1_700_000_120_000),
    metadata: { tenant: "acme" },
    delivery: DeliveryMode.QUEUE,
  });

  it("is the message create() makes of the same fields, and encodes the same", () => {
    const expected = create(TaskStatusSchema, {
      taskId: workItem.taskId,
      workerType: "hasher",
      method: "Digest",
      state: TaskState.SCHEDULED,
      priority: Priority.HIGH,
      maxAttempts: 4,
      createdAt: workItem.submittedAt,
      updatedAt: workItem.submittedAt,
      metadata: { tenant: "acme" },
      notBefore: workItem.notBefore,
      expiresAt: workItem.expiresAt,
      delivery: DeliveryMode.QUEUE,
    });
    const status = queuedStatus(workItem, TaskState.SCHEDULED);
    expect(equals(TaskStatusSchema, status, expected)).toBe(true);
    expect(Object.keys(status).sort()).toEqual(Object.keys(expected).sort());
    expect(decodeMessage(TaskStatusSchema, encodeMessage(TaskStatusSchema, status))).toEqual(expected);
  });

  it("does not share the WorkItem's metadata: a change to one is not a change to the other", () => {
    const status = queuedStatus(workItem);
    status.metadata.extra = "x";
    expect(workItem.metadata).toEqual({ tenant: "acme" });
  });
});

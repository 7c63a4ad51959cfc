import { create, equals } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { DeliveryMode, Priority, TaskState, TaskStatusSchema, WorkItemSchema } from "../../gen/taskwire/v1/task_pb.ts";
import { decodeMessage, encodeMessage } from "../wire/wire-codec.ts";
import { decodeOutcome, encodedOutcome, queuedStatus } from "./status.ts";

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

describe("encodedOutcome and decodeOutcome", () => {
  it("read the id and state (and the result and error) of a status with every kind of field, and refuses a truncated one", () => {
    const status = create(TaskStatusSchema, {
      taskId: "hasher.01M81KRJQKXX1XB86P9GKYNA2Y",
      workerType: "hasher",
      method: "Digest",
      state: TaskState.FAILED,
      attempt: 3,
      createdAt: timestampFromMs(1_700_000_000_000),
      result: { typeUrl: "type.googleapis.com/example.v1.DigestResponse", value: new Uint8Array(300).fill(7) },
      error: { code: 5, message: "gone", retryable: true },
      errorHistory: [{ code: 14, message: "down" }],
      // A float (fixed 32-bit) inside a message, and a map.
      progress: { fraction: 0.5, message: "half" },
      metadata: { tenant: "acme" },
      endpoints: [{ endpoint: "w1", state: TaskState.SUCCEEDED }],
    });
    const bytes = encodeMessage(TaskStatusSchema, status);
    expect(encodedOutcome(bytes)).toEqual({ taskId: status.taskId, state: TaskState.FAILED });
    const { taskId, state, result, error } = decodeMessage(TaskStatusSchema, bytes);
    expect(decodeOutcome(bytes)).toEqual({ taskId, state, result, error });
    // Fields after the id and state are scanned too: the last of a repeated scalar wins, as in a decode.
    const again = encodeMessage(TaskStatusSchema, create(TaskStatusSchema, { state: TaskState.SUCCEEDED }));
    const merged = new Uint8Array([...bytes, ...again]);
    expect(encodedOutcome(merged).state).toBe(decodeMessage(TaskStatusSchema, merged).state);
    expect(() => encodedOutcome(bytes.subarray(0, bytes.length - 1))).toThrow();
    expect(() => decodeOutcome(bytes.subarray(0, bytes.length - 1))).toThrow();
  });
});

import { create, equals, fromBinary, type MessageInitShape, toBinary } from "@bufbuild/protobuf";
import { anyPack, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import {
  ErrorCode,
  TaskErrorSchema,
  TaskResultSchema,
  TaskState,
  type TaskStatus,
  TaskStatusSchema,
} from "../gen/taskwire/v1/task_pb.ts";
import { RunResponseSchema } from "../test/gen/probe/v1/probe_pb.ts";
import { encodedTaskResult, taskResultOf } from "./result-events.ts";

/** The event made from the stored record's bytes is the event made from the decoded record. */
describe("encodedTaskResult", () => {
  const base: MessageInitShape<typeof TaskStatusSchema> = {
    taskId: "probe.01M81KRJQKXX1XB86P9GKYNA2Y",
    workerType: "probe",
    method: "Run",
    attempt: 3,
    maxAttempts: 3,
    priority: 2,
    createdAt: timestampFromMs(1_700_000_000_000),
    startedAt: timestampFromMs(1_700_000_001_000),
    finishedAt: timestampFromMs(1_700_000_002_000),
    updatedAt: timestampFromMs(1_700_000_002_000),
    workerId: "worker-7",
    metadata: { tenant: "acme" },
    idempotencyKey: "k",
    errorHistory: [create(TaskErrorSchema, { code: ErrorCode.UNKNOWN, message: "first", attempt: 1 })],
  };
  const cases: Record<string, TaskStatus> = {
    succeeded: create(TaskStatusSchema, {
      ...base,
      state: TaskState.SUCCEEDED,
      result: anyPack(RunResponseSchema, create(RunResponseSchema, { label: "ok", attempt: 3 })),
    }),
    // Lengths and tags of more than one varint byte on both sides.
    "large succeeded": create(TaskStatusSchema, {
      ...base,
      state: TaskState.SUCCEEDED,
      workerId: "w".repeat(200),
      result: anyPack(RunResponseSchema, create(RunResponseSchema, { label: "é".repeat(20_000), attempt: 3 })),
    }),
    failed: create(TaskStatusSchema, {
      ...base,
      state: TaskState.FAILED,
      error: create(TaskErrorSchema, { code: ErrorCode.DEADLINE_EXCEEDED, message: "late", attempt: 3 }),
    }),
  };
  it("refuses a truncated message instead of reading past its end", () => {
    const bytes = toBinary(TaskStatusSchema, cases.succeeded as TaskStatus);
    expect(() => encodedTaskResult(bytes.subarray(0, bytes.length - 3))).toThrow(/past the message's end/);
  });
  for (const [name, status] of Object.entries(cases)) {
    it(`matches taskResultOf for a ${name} task`, () => {
      const event = fromBinary(TaskResultSchema, encodedTaskResult(toBinary(TaskStatusSchema, status)));
      expect(equals(TaskResultSchema, event, taskResultOf(status))).toBe(true);
      expect(event.outcome.case).toBe(name.endsWith("succeeded") ? "result" : "error");
    });
  }
});

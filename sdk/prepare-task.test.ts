import { create, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { anyPack, durationMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { hashService } from "../gen/example/v1/hash_taskwire.js";
import { Priority, TaskSchema, WorkItemSchema } from "../gen/taskwire/v1/task_pb.js";
import { prepareTask } from "./prepare-task.js";
import { createTaskRegistry } from "./task-registry.js";

const registry = createTaskRegistry([hashService]);
const digest = hashService.methods.digest;
const task = (init: Omit<MessageInitShape<typeof TaskSchema>, "$typeName"> = {}) =>
  create(TaskSchema, {
    workerType: "hasher",
    method: "Digest",
    payload: anyPack(digest.input, create(digest.input, { text: "hello" })),
    ...init,
  });

describe("prepareTask", () => {
  it("encodes the method's defaults and the task's own fields into one WorkItem", () => {
    for (let i = 0; i < 2; i++) {
      // The second time, the method's shared part comes from the cache.
      const prepared = prepareTask(registry, task({ metadata: { tenant: `t${i}` } }), {}, "", 1_700_000_000_000);
      const item = fromBinary(WorkItemSchema, prepared.bytes);
      expect(item).toMatchObject({
        taskId: prepared.taskId,
        workerType: "hasher",
        method: "Digest",
        payloadType: "example.v1.DigestRequest",
        attempt: 1,
        priority: Priority.NORMAL,
        metadata: { tenant: `t${i}` },
      });
      expect(item.retry?.maxAttempts).toBe(3);
      expect(durationMs(item.timeout ?? ({ seconds: 0n, nanos: 0 } as never))).toBe(10_000);
      expect(Number(item.submittedAt?.seconds)).toBe(1_700_000_000);
      expect(fromBinary(digest.input, item.payload).text).toBe("hello");
      expect(prepared.subject).toBe(`taskwire.task.hasher.normal.${prepared.taskId.slice("hasher.".length)}`);
    }
  });

  it("uses a task's overrides instead of the method's defaults", () => {
    const prepared = prepareTask(
      registry,
      task({
        priority: Priority.HIGH,
        timeout: { seconds: 5n, nanos: 0 } as never,
        retry: { maxAttempts: 7 } as never,
      }),
    );
    const item = fromBinary(WorkItemSchema, prepared.bytes);
    expect(item.priority).toBe(Priority.HIGH);
    expect(item.retry?.maxAttempts).toBe(7);
    expect(item.timeout && durationMs(item.timeout)).toBe(5_000);
    expect(prepared.subject).toContain(".high.");
    // The cache of defaults is not disturbed by an override.
    expect(fromBinary(WorkItemSchema, prepareTask(registry, task()).bytes).priority).toBe(Priority.NORMAL);
  });
});

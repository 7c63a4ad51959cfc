import { create, fromBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { anyPack, durationMs } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { Priority, TaskSchema, WorkItemSchema } from "../../gen/taskwire/v1/task_pb.ts";
import { prepareTask } from "./prepare-task.ts";
import { createTaskRegistry } from "./task-registry.ts";

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
      const prepared = prepareTask(registry, task({ metadata: { tenant: `t${i}` } }), {}, undefined, 1_700_000_000_000);
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

  it("ends an id in its submitter's route, and names the notify subject for keyed ids only", () => {
    const notify = { route: "ROUTE123", subject: "_INBOX.results" };
    const ids = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const prepared = prepareTask(registry, task(), {}, notify, 1_700_000_000_000);
      expect(prepared.taskId).toMatch(/^hasher\.[0-9A-Z]{18}ROUTE123$/);
      expect(fromBinary(WorkItemSchema, prepared.bytes).notifySubject).toBe("");
      ids.add(prepared.taskId);
    }
    // One millisecond, one process: the counter keeps them apart.
    expect(ids.size).toBe(1000);
    const keyed = prepareTask(registry, task({ idempotencyKey: "k" }), {}, notify);
    expect(keyed.taskId.endsWith("ROUTE123")).toBe(false);
    expect(fromBinary(WorkItemSchema, keyed.bytes).notifySubject).toBe("_INBOX.results");
    // Nobody to hear: a random route, no notify subject.
    const unrouted = prepareTask(registry, task());
    expect(unrouted.taskId).toMatch(/^hasher\.[0-9A-Z]{26}$/);
    expect(fromBinary(WorkItemSchema, unrouted.bytes).notifySubject).toBe("");
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

  it("refuses times and durations it could not honour, and enum values it does not know, naming the field", () => {
    const seconds = (s: bigint) => ({ seconds: s, nanos: 0 }) as never;
    const refusals: [Parameters<typeof task>[0], RegExp][] = [
      // A Node timer longer than 2^31-1 ms fires at once.
      [{ timeout: seconds(2_200_000n) }, /task.timeout must be at most 2147483647ms \(24.8 days\)/],
      [{ retry: { initialBackoff: seconds(315_576_000_000n) } as never }, /task.retry.initial_backoff must be at most/],
      [{ retry: { maxBackoff: seconds(315_576_000_000n) } as never }, /task.retry.max_backoff must be at most/],
      // Beyond the year 9999: no JSON, no schedule can express it.
      [{ expiresAt: seconds(100_000_000_000_000n) }, /task.expires_at must lie within the years 1 to 9999/],
      [{ schedule: { case: "notBefore", value: seconds(100_000_000_000_000n) } }, /task.not_before must lie within/],
      [
        { schedule: { case: "delay", value: seconds(315_576_000_000n) } },
        /task.delay of \d+ms ends after the year 9999/,
      ],
      [{ priority: 99 as Priority }, /task.priority 99 is not a Priority/],
      [{ delivery: 7 as never }, /task.delivery 7 is not a DeliveryMode/],
    ];
    for (const [init, message] of refusals) {
      expect(() => prepareTask(registry, task(init)), String(message)).toThrow(message);
    }
    // The bounds themselves are accepted.
    expect(() => prepareTask(registry, task({ timeout: seconds(2_000_000n) }))).not.toThrow();
  });
});

import { create } from "@bufbuild/protobuf";
import { durationFromMs, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  EndpointResultSchema,
  RetryPolicySchema,
  TaskErrorSchema,
  TaskState,
  type TaskStatus,
  TaskStatusSchema,
  WorkItemSchema,
} from "../gen/taskwire/v1/task_pb.ts";
import { TaskError } from "../sdk/core/index.ts";
import {
  copyDone,
  failureVerdict,
  markReturned,
  overtaken,
  queueWaitMs,
  recordsStart,
  redeliveryVerdict,
  settlement,
  spentAttempts,
  startRefusal,
  tooLargeToStore,
} from "./attempt-rules.ts";

const now = 1_700_000_000_000;
const retry = create(RetryPolicySchema, { maxAttempts: 3, initialBackoff: durationFromMs(100) });
const workItem = (init: Parameters<typeof create<typeof WorkItemSchema>>[1] = {}) =>
  create(WorkItemSchema, { taskId: "probe.01M81KRJQKXX1XB86P9GKYNA2Y", retry, ...init });
const record = (state: TaskState, deliverySequence: bigint, deliveryCount: number, attempt = 1): TaskStatus =>
  create(TaskStatusSchema, { state, deliverySequence, deliveryCount, attempt });
const mine = { deliverySequence: 10n, deliveryCount: 2 };
const retryable = new TaskError("boom", Code.Unknown);

describe("the decisions of one attempt", () => {
  it("a redelivery leaves a live record a later delivery wrote to it, finishes a terminal one, runs otherwise", () => {
    expect(redeliveryVerdict(undefined, mine)).toBe("run");
    expect(redeliveryVerdict(record(TaskState.RUNNING, 10n, 1), mine)).toBe("run");
    expect(redeliveryVerdict(record(TaskState.RUNNING, 10n, 3), mine)).toBe("overtaken");
    // A RetryDeadLetter publishes the task again: a later stream sequence is later, whatever its count.
    expect(redeliveryVerdict(record(TaskState.RUNNING, 11n, 1), mine)).toBe("overtaken");
    expect(redeliveryVerdict(record(TaskState.RUNNING, 9n, 5), mine)).toBe("run");
    // A terminal record is never overtaken: whoever wrote it, the task is done.
    expect(overtaken(record(TaskState.SUCCEEDED, 11n, 1), mine)).toBe(false);
    expect(redeliveryVerdict(record(TaskState.SUCCEEDED, 11n, 1), mine)).toBe("finished");
    expect(redeliveryVerdict(record(TaskState.CANCELLED, 1n, 1), mine)).toBe("finished");
  });

  it("a broadcast copy has nothing to do without a record, once the task ended, or once its endpoint answered", () => {
    const withEndpoints = (state: TaskState, own: TaskState) =>
      create(TaskStatusSchema, {
        state,
        endpoints: [
          create(EndpointResultSchema, { endpoint: "a", state: own }),
          create(EndpointResultSchema, { endpoint: "b", state: TaskState.PENDING }),
        ],
      });
    expect(copyDone(undefined, "a")).toBe(true);
    expect(copyDone(withEndpoints(TaskState.INCOMPLETE, TaskState.PENDING), "a")).toBe(true);
    expect(copyDone(withEndpoints(TaskState.RUNNING, TaskState.SUCCEEDED), "a")).toBe(true);
    expect(copyDone(withEndpoints(TaskState.RUNNING, TaskState.PENDING), "a")).toBe(false);
    expect(copyDone(withEndpoints(TaskState.RUNNING, TaskState.SUCCEEDED), "c")).toBe(false);
  });

  it("counts the attempts spent: none on a first delivery, the record's, else one presumed unless single-attempt", () => {
    expect(spentAttempts(record(TaskState.RUNNING, 1n, 1, 2), workItem(), 1)).toBe(0);
    expect(spentAttempts(record(TaskState.RETRYING, 1n, 1, 2), workItem(), 3)).toBe(2);
    expect(spentAttempts(undefined, workItem(), 2)).toBe(1);
    expect(spentAttempts(undefined, workItem({ retry: undefined }), 2)).toBe(0);
    expect(recordsStart(1, 3)).toBe(false);
    expect(recordsStart(2, 3)).toBe(true);
    expect(recordsStart(1, 1)).toBe(true);
  });

  it("refuses a start past the expiry (first), or past the last attempt", () => {
    const expiring = workItem({ expiresAt: timestampFromMs(now) });
    expect(startRefusal(expiring, 1, now - 1)).toBeUndefined();
    const expired = startRefusal(expiring, 9, now);
    expect(expired).toMatchObject({ state: TaskState.EXPIRED, outcome: "expired" });
    expect(expired?.error).toMatchObject({ code: Code.DeadlineExceeded, retryable: false });
    expect(startRefusal(workItem(), 3, now)).toBeUndefined();
    const spent = startRefusal(workItem(), 4, now);
    expect(spent).toMatchObject({ state: TaskState.FAILED, outcome: "failed" });
    expect(spent?.error).toMatchObject({ code: Code.Aborted, retryable: false });
    expect(spent?.error.message).toMatch(/gave up after 3 attempt\(s\)/);
    expect(startRefusal(workItem({ retry: undefined }), 2, now)?.outcome).toBe("failed");
  });

  it("a failed handler is given back on shutdown, left to a cancel or a later record, retried while it may be", () => {
    expect(failureVerdict("shutdown", retryable, 3, workItem())).toBe("requeue");
    expect(failureVerdict("cancelled", retryable, 1, workItem())).toBe("cancelled");
    expect(failureVerdict("superseded", retryable, 1, workItem())).toBe("superseded");
    expect(failureVerdict("overtaken", retryable, 1, workItem())).toBe("overtaken");
    expect(failureVerdict("deadline", retryable, 1, workItem())).toBe("retry");
    expect(failureVerdict(undefined, retryable, 2, workItem())).toBe("retry");
    expect(failureVerdict(undefined, retryable, 3, workItem())).toBe("fail");
    expect(
      failureVerdict(undefined, new TaskError("bad", Code.InvalidArgument, { retryable: false }), 1, workItem()),
    ).toBe("fail");
    expect(failureVerdict(undefined, retryable, 1, workItem({ retry: undefined }))).toBe("fail");
  });

  it("settles: leaves an overtaken task, naks a retry unless stalled, acks the rest", () => {
    expect(settlement(TaskState.SUCCEEDED, "overtaken", true, false)).toBe("leave");
    expect(settlement(TaskState.RETRYING, "retrying", true, false)).toBe("retry");
    expect(settlement(TaskState.RETRYING, "retrying", true, true)).toBe("leave");
    expect(settlement(TaskState.RETRYING, "superseded", true, false)).toBe("ack");
    expect(settlement(TaskState.RETRYING, "retrying", false, false)).toBe("ack");
    expect(settlement(TaskState.SUCCEEDED, "succeeded", true, true)).toBe("ack");
    expect(settlement(TaskState.FAILED, "failed", true, false)).toBe("ack");
  });

  it("gives a record back as it was before the delivery, counting the delivery returned", () => {
    const running = create(TaskStatusSchema, {
      state: TaskState.RUNNING,
      attempt: 2,
      workerId: "w",
      returnedDeliveries: 1,
    });
    markReturned(running, 1);
    expect(running).toMatchObject({ state: TaskState.PENDING, attempt: 1, workerId: "", returnedDeliveries: 2 });
    const retried = create(TaskStatusSchema, {
      state: TaskState.RUNNING,
      errorHistory: [create(TaskErrorSchema, { message: "first" })],
    });
    markReturned(retried, 1);
    expect(retried.state).toBe(TaskState.RETRYING);
  });

  it("measures the queue wait of a first delivery from its not_before, else from its storing", () => {
    expect(queueWaitMs(workItem(), 1, now - 1_500, now)).toBe(1_500);
    expect(queueWaitMs(workItem({ notBefore: timestampFromMs(now - 200) }), 1, now - 60_000, now)).toBe(200);
    // A retry or a redelivery also waited for earlier attempts: no queue wait.
    expect(queueWaitMs(workItem(), 2, now - 1_500, now)).toBeUndefined();
    // Clocks apart: a message stored "after" its start waited no time, not a negative one.
    expect(queueWaitMs(workItem(), 1, now + 30, now)).toBe(0);
  });

  it("tells a write refused for its size from other failures", () => {
    expect(tooLargeToStore(new Error("MAX_PAYLOAD size exceeded"))).toBe(true);
    expect(tooLargeToStore(new Error("message size exceeds maximum allowed"))).toBe(true);
    expect(tooLargeToStore(new Error("TIMEOUT"))).toBe(false);
    expect(tooLargeToStore("max_payload size exceeded")).toBe(false);
  });
});

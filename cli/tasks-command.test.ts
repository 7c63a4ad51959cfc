import { timestampDate } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { TaskState } from "../gen/taskwire/v1/task_pb.ts";
import { taskListFilter } from "./tasks-command.ts";
import { UsageError } from "./usage-error.ts";

const now = new Date("2025-06-01T12:00:00.000Z");

describe("tasks list's filters", () => {
  it("turns the flags into a ListTasks request", () => {
    const filter = taskListFilter(
      { type: "reports", state: "running,FAILED", since: "1h", until: "2025-06-01T11:30:00Z", field: "title=Q3=final" },
      now,
    );
    expect(filter).toMatchObject({
      workerType: "reports",
      states: [TaskState.RUNNING, TaskState.FAILED],
      fieldName: "title",
      fieldValue: "Q3=final",
    });
    expect(filter.since && timestampDate(filter.since).toISOString()).toBe("2025-06-01T11:00:00.000Z");
    expect(filter.until && timestampDate(filter.until).toISOString()).toBe("2025-06-01T11:30:00.000Z");
    expect(taskListFilter({ type: "hasher", key: "order-7" }, now)).toEqual({
      workerType: "hasher",
      idempotencyKey: "order-7",
    });
    expect(taskListFilter({}, now)).toEqual({});
  });

  it("names the flag and what it accepts", () => {
    expect(() => taskListFilter({ state: "running,done" }, now)).toThrow(
      new UsageError(
        '--state "done" is not a task state; the states: pending, scheduled, running, retrying, succeeded, failed, cancelled, expired, incomplete, waiting',
      ),
    );
    expect(() => taskListFilter({ key: "k" }, now)).toThrow("--key needs --type: it searches one worker type");
    expect(() => taskListFilter({ field: "title=x" }, now)).toThrow("--field needs --type");
    expect(() => taskListFilter({ type: "reports", field: "title" }, now)).toThrow(
      '--field must be name=value, e.g. --field title=Q3, got "title"',
    );
    expect(() => taskListFilter({ since: "last week" }, now)).toThrow(/^--since "last week" is not a duration/);
  });
});

import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { TaskStatusSchema } from "../../gen/taskwire/v1/task_pb.ts";
import { type Backends, deferredBackends } from "./deferred-backends.ts";
import type { QueueBackend } from "./queue-backend.ts";
import type { ScheduleBackend } from "./schedule-backend.ts";
import type { TaskBackend } from "./task-backend.ts";
import { TaskError } from "./task-error.ts";

/** Backends whose getTask answers, and whose availability a test sets. */
function realBackends() {
  const listeners = new Set<(available: boolean) => void>();
  const tasks = {
    getTask: async (taskId: string) => create(TaskStatusSchema, { taskId }),
    onAvailabilityChange(listener: (available: boolean) => void) {
      listeners.add(listener);
      listener(true);
      return () => listeners.delete(listener);
    },
    close: async () => {},
  } as unknown as TaskBackend;
  const backends: Backends = { tasks, queues: {} as QueueBackend, schedules: {} as ScheduleBackend };
  const setAvailable = (available: boolean) => {
    for (const listener of listeners) listener(available);
  };
  return { backends, setAvailable };
}

describe("deferredBackends", () => {
  it("fails UNAVAILABLE, saying why, until the real backends are there; then calls go to them", async () => {
    let arrive: (backends: Backends) => void = () => {};
    const deferred = deferredBackends(new Promise((resolve) => (arrive = resolve)), "not connected to NATS yet");
    const heard: boolean[] = [];
    const unfollow = deferred.tasks.onAvailabilityChange?.((available) => heard.push(available));
    await expect(deferred.tasks.getTask("t.1")).rejects.toMatchObject({
      code: Code.Unavailable,
      rawMessage: "not connected to NATS yet: nothing was done, retry later",
    });
    const real = realBackends();
    arrive(real.backends);
    await Promise.resolve(); // its arrival is seen a microtask later
    await expect(deferred.tasks.getTask("t.1")).resolves.toMatchObject({ taskId: "t.1" });
    real.setAvailable(false);
    unfollow?.();
    real.setAvailable(true);
    expect(heard).toEqual([false, true, false]);
  });

  it("fails with the error that kept the real backends from being made", async () => {
    const deferred = deferredBackends(
      Promise.reject(new TaskError("cannot connect to NATS: Authorization Violation", Code.Unavailable)),
      "waiting",
    );
    await Promise.resolve();
    await expect(deferred.queues.getQueue("hasher")).rejects.toThrow(/Authorization Violation/);
  });
});

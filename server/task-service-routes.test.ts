import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { beforeEach, describe, expect, it } from "vitest";
import { TaskSchema, TaskState } from "../gen/taskwire/v1/task_pb.ts";
import { TaskService } from "../gen/taskwire/v1/task_service_pb.ts";
import { taskServiceRoutes } from "./task-service-routes.ts";
import { endlessTaskId, FakeTaskBackend } from "./test-support/fake-task-backend.ts";

describe("taskServiceRoutes", () => {
  let backend: FakeTaskBackend;
  let client: ReturnType<typeof createClient<typeof TaskService>>;

  beforeEach(() => {
    backend = new FakeTaskBackend();
    client = createClient(TaskService, createRouterTransport(taskServiceRoutes(backend)));
  });

  const task = (workerType = "hasher") => create(TaskSchema, { workerType, method: "Digest" });

  it("submits, reads, lists and cancels through the backend", async () => {
    const submitted = await client.submit({ task: task() });
    expect(submitted).toMatchObject({ taskId: "task-1", state: TaskState.PENDING });
    expect(backend.tasks.get("task-1")?.task.workerType).toBe("hasher");

    const { status } = await client.getTask({ taskId: "task-1" });
    expect(status).toMatchObject({ taskId: "task-1", workerType: "hasher", method: "Digest" });

    const listed = await client.listTasks({ workerType: "hasher" });
    expect(listed.tasks.map((t) => t.taskId)).toEqual(["task-1"]);

    const cancelled = await client.cancelTask({ taskId: "task-1", reason: "not needed" });
    expect(cancelled.status?.state).toBe(TaskState.CANCELLED);
    expect(cancelled.status?.error?.message).toBe("not needed");
  });

  it("answers a batch with one result per task, in order", async () => {
    const { results } = await client.batchSubmit({ tasks: [task(), task("full"), task()] });
    expect(results.map((r) => r.outcome.case)).toEqual(["accepted", "error", "accepted"]);
    expect(results[1]?.outcome.value).toMatchObject({ code: Code.ResourceExhausted });
  });

  it("refuses a Submit without a task with INVALID_ARGUMENT", async () => {
    const error = await client.submit({}).catch((e: unknown) => ConnectError.from(e));
    expect(error).toMatchObject({ code: Code.InvalidArgument, rawMessage: "task is required" });
    expect(backend.tasks.size).toBe(0);
  });

  it("passes the backend's errors on with their code and message", async () => {
    const notFound = await client.getTask({ taskId: "nope" }).catch((e: unknown) => ConnectError.from(e));
    expect(notFound).toMatchObject({ code: Code.NotFound, rawMessage: "task nope not found" });

    const full = await client.submit({ task: task("full") }).catch((e: unknown) => ConnectError.from(e));
    expect(full).toMatchObject({ code: Code.ResourceExhausted, rawMessage: "the queue of full is full" });

    const watch = async () => {
      for await (const _ of client.watchTask({ taskId: "nope" }));
    };
    await expect(watch()).rejects.toMatchObject({ code: Code.NotFound, rawMessage: "task nope not found" });
  });

  it("streams a watch until the backend ends it", async () => {
    await client.submit({ task: task() });
    const states: TaskState[] = [];
    for await (const { status } of client.watchTask({ taskId: "task-1" })) states.push(status?.state ?? 0);
    expect(states).toEqual([TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCEEDED]);
  });

  it("stops the backend's watch when the client hangs up", async () => {
    const abort = new AbortController();
    const watch = async () => {
      for await (const { status } of client.watchTask({ taskId: endlessTaskId }, { signal: abort.signal })) {
        expect(status?.state).toBe(TaskState.PENDING);
        abort.abort();
      }
    };
    await expect(watch()).rejects.toMatchObject({ code: Code.Canceled });
    await expect.poll(() => backend.watchSignals[0]?.aborted).toBe(true);
  });
});

import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { type Task, TaskState, type TaskStatus, TaskStatusSchema } from "../../gen/taskwire/v1/task_pb.ts";
import {
  BatchSubmitResultSchema,
  ListTasksResponseSchema,
  SubmitResponseSchema,
} from "../../gen/taskwire/v1/task_service_pb.ts";
import { isTerminal } from "../../sdk/core/status.ts";
import type { TaskBackend } from "../../sdk/core/task-backend.ts";
import { TaskError } from "../../sdk/core/task-error.ts";

/** A task id whose watch yields PENDING and then waits until its signal aborts. */
export const endlessTaskId = "endless";

/**
 * An in-memory {@link TaskBackend} for routing tests: tasks of worker type "full"
 * are refused with RESOURCE_EXHAUSTED, every submitted task can be read, watched
 * (PENDING, RUNNING, SUCCEEDED) and cancelled. Not a broker: it never runs tasks.
 */
export class FakeTaskBackend implements TaskBackend {
  readonly tasks = new Map<string, { task: Task; status: TaskStatus }>();
  /** Signals passed to watchTask, to check that a hang-up reaches the backend. */
  readonly watchSignals: AbortSignal[] = [];

  async submit(task: Task) {
    if (task.workerType === "full") throw new TaskError("the queue of full is full", Code.ResourceExhausted);
    const taskId = `task-${this.tasks.size + 1}`;
    const status = create(TaskStatusSchema, {
      taskId,
      workerType: task.workerType,
      method: task.method,
      state: TaskState.PENDING,
    });
    this.tasks.set(taskId, { task, status });
    return create(SubmitResponseSchema, { taskId, state: TaskState.PENDING });
  }

  async batchSubmit(tasks: Task[]) {
    const results = [];
    for (const task of tasks) {
      try {
        results.push(
          create(BatchSubmitResultSchema, { outcome: { case: "accepted", value: await this.submit(task) } }),
        );
      } catch (error) {
        const value = (error as TaskError).toMessage(0);
        results.push(create(BatchSubmitResultSchema, { outcome: { case: "error", value } }));
      }
    }
    return results;
  }

  async getTask(taskId: string) {
    if (taskId === endlessTaskId) return create(TaskStatusSchema, { taskId, state: TaskState.PENDING });
    const entry = this.tasks.get(taskId);
    if (entry === undefined) throw new TaskError(`task ${taskId} not found`, Code.NotFound, { taskId });
    return entry.status;
  }

  /** The payload as submitted, kept until the task is terminal (as the broker keeps it). */
  async getPayload(taskId: string) {
    const entry = this.tasks.get(taskId);
    return entry && !isTerminal(entry.status.state) ? entry.task.payload : undefined;
  }

  async awaitTerminal(taskId: string, signal?: AbortSignal) {
    let last = await this.getTask(taskId);
    for await (const status of this.watchTask(taskId, signal)) last = status;
    return last;
  }

  awaitOutcome(taskId: string, signal?: AbortSignal) {
    return this.awaitTerminal(taskId, signal);
  }

  async *watchTask(taskId: string, signal?: AbortSignal) {
    if (signal) this.watchSignals.push(signal);
    const status = await this.getTask(taskId);
    yield status;
    if (taskId === endlessTaskId) {
      await new Promise<void>((resolve) => signal?.addEventListener("abort", () => resolve(), { once: true }));
      return;
    }
    for (const state of [TaskState.RUNNING, TaskState.SUCCEEDED]) {
      yield create(TaskStatusSchema, { taskId, workerType: status.workerType, method: status.method, state });
    }
  }

  async cancelTask(taskId: string, reason: string) {
    const status = await this.getTask(taskId);
    status.state = TaskState.CANCELLED;
    status.error = new TaskError(reason, Code.Canceled).toMessage(0);
    return status;
  }

  async listTasks() {
    return create(ListTasksResponseSchema, { tasks: [...this.tasks.values()].map((entry) => entry.status) });
  }

  async close() {}
}

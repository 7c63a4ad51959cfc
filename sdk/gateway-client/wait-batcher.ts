import { type Client, Code } from "@connectrpc/connect";
import type { TaskStatus } from "../../gen/taskwire/v1/task_pb.ts";
import type { TaskService } from "../../gen/taskwire/v1/task_service_pb.ts";
import { maxBatchSize, onAbort, TaskError } from "../core/index.ts";

interface Waiter {
  readonly resolve: (status: TaskStatus) => void;
  readonly reject: (error: TaskError) => void;
}

/** The waits of one WaitTasks stream, by task id. */
interface Batch {
  readonly waiters: Map<string, Waiter[]>;
  readonly controller: AbortController;
}

/**
 * `result()` through a gateway: the waits begun in one event-loop turn share
 * one WaitTasks stream (up to {@link maxBatchSize} ids) instead of a WaitTask
 * call each, so a batch of handles costs one HTTP request, not one per task;
 * a wait alone in its turn is one WaitTask call.
 * A waiter that aborts leaves its stream; a stream nobody waits on is cancelled.
 */
export class WaitBatcher {
  private open: Batch | undefined;

  private readonly client: Client<typeof TaskService>;
  constructor(client: Client<typeof TaskService>) {
    this.client = client;
  }

  wait(taskId: string, signal?: AbortSignal): Promise<TaskStatus> {
    const aborted = () => new TaskError(`waiting for ${taskId} was aborted`, Code.Canceled, { taskId });
    if (signal?.aborted) return Promise.reject(aborted());
    if (this.open && !this.open.waiters.has(taskId) && this.open.waiters.size === maxBatchSize) this.flush();
    if (!this.open) {
      this.open = { waiters: new Map(), controller: new AbortController() };
      setImmediate(() => this.flush());
    }
    const batch = this.open;
    return new Promise((resolve, reject) => {
      const leave = () => {
        const rest = batch.waiters.get(taskId)?.filter((w) => w !== waiter) ?? [];
        if (rest.length > 0) batch.waiters.set(taskId, rest);
        else batch.waiters.delete(taskId);
        if (batch.waiters.size === 0) {
          if (this.open === batch)
            this.open = undefined; // not sent yet: it never will be
          else batch.controller.abort();
        }
        reject(aborted());
      };
      let stopListening: (() => unknown) | undefined;
      const done = () => stopListening?.();
      const waiter: Waiter = {
        resolve: (status) => {
          done();
          resolve(status);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      batch.waiters.set(taskId, [...(batch.waiters.get(taskId) ?? []), waiter]);
      if (signal) stopListening = onAbort(signal, leave);
    });
  }

  private flush(): void {
    const batch = this.open;
    this.open = undefined;
    if (batch && batch.waiters.size > 0) void this.run(batch);
  }

  private async run({ waiters, controller }: Batch): Promise<void> {
    const settle = (taskId: string, settleOne: (waiter: Waiter) => void) => {
      const these = waiters.get(taskId) ?? [];
      waiters.delete(taskId);
      for (const waiter of these) settleOne(waiter);
    };
    let failure: TaskError;
    const [only] = waiters.keys();
    if (waiters.size === 1 && only !== undefined) {
      // One task: the unary WaitTask, which costs the client and the gateway a fraction
      // of a stream (both answer unary calls without connect-node's machinery).
      try {
        const { status } = await this.client.waitTask({ taskId: only }, { signal: controller.signal });
        if (status) return settle(only, (w) => w.resolve(status));
        failure = new TaskError(`the gateway answered WaitTask for ${only} without a status`, Code.Internal, {
          taskId: only,
        });
      } catch (error) {
        failure = TaskError.from(error);
      }
      return settle(only, (w) => w.reject(failure));
    }
    try {
      const stream = this.client.waitTasks({ taskIds: [...waiters.keys()] }, { signal: controller.signal });
      for await (const { taskId, outcome } of stream) {
        if (outcome.case === "status") settle(taskId, (w) => w.resolve(outcome.value));
        else {
          const error = outcome.value
            ? TaskError.fromMessage(outcome.value, taskId)
            : new TaskError(`the gateway answered WaitTasks for ${taskId} without an outcome`, Code.Internal, {
                taskId,
              });
          settle(taskId, (w) => w.reject(error));
        }
        if (waiters.size === 0) return;
      }
      failure = new TaskError("the gateway ended WaitTasks before answering for every task", Code.Internal);
    } catch (error) {
      failure = TaskError.from(error);
    }
    for (const taskId of [...waiters.keys()]) settle(taskId, (w) => w.reject(failure));
  }
}

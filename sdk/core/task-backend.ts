import type { Any } from "@bufbuild/protobuf/wkt";
import type { Task, TaskStatus } from "../../gen/taskwire/v1/task_pb.ts";
import type {
  BatchSubmitResult,
  ListTasksRequest,
  ListTasksResponse,
  SubmitResponse,
} from "../../gen/taskwire/v1/task_service_pb.ts";
import type { TaskOutcome } from "./status.ts";

/**
 * The operations of TaskService, independent of transport. The gateway serves
 * the NATS implementation over Connect; clients use either it directly
 * (direct mode) or a Connect client of the gateway (gateway mode).
 * Every failure is a TaskError.
 */
export interface TaskBackend {
  /** Accepts one task once it is durably stored. */
  submit(task: Task): Promise<SubmitResponse>;
  /**
   * Accepts many tasks; each succeeds or fails on its own, in order. With
   * `notify: false` nobody here will wait for their results (a bulk load), so
   * workers need not push outcomes to this client.
   */
  batchSubmit(tasks: Task[], options?: { notify?: boolean }): Promise<BatchSubmitResult[]>;
  /** The task's current status; NOT_FOUND for an unknown id. */
  getTask(taskId: string): Promise<TaskStatus>;
  /**
   * The task's payload (its request message) where the broker still keeps it:
   * while it is delayed, queued or running, and in its dead letter; undefined
   * once it finished.
   */
  getPayload(taskId: string): Promise<Any | undefined>;
  /** The current status, then every change, ending after a terminal state. */
  watchTask(taskId: string, signal?: AbortSignal): AsyncIterable<TaskStatus>;
  /** Resolves with the task's terminal status, whenever it comes. */
  awaitTerminal(taskId: string, signal?: AbortSignal): Promise<TaskStatus>;
  /** As `awaitTerminal`, for a typed result: what a client was pushed is decoded no further than that. */
  awaitOutcome(taskId: string, signal?: AbortSignal): Promise<TaskOutcome>;
  /** Cancels a task that has not reached a terminal state. */
  cancelTask(taskId: string, reason: string): Promise<TaskStatus>;
  /** Lists tasks, newest first. */
  listTasks(request: ListTasksRequest): Promise<ListTasksResponse>;
  /**
   * Calls `listener` with whether the backend can reach its broker now, then on
   * every change, until the returned function is called. The gateway reports it
   * through the gRPC health service. Absent when the backend has no broker of its own.
   */
  onAvailabilityChange?(listener: (available: boolean) => void): () => void;
  /** Releases what the backend holds (not the connection it was given). */
  close(): Promise<void>;
}

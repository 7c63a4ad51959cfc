import type {
  DeadLetter,
  GetStoreResponse,
  ListDeadLettersResponse,
  QueueInfo,
  QueueSnapshot,
  ThroughputPoint,
} from "../../gen/taskwire/v1/queue_service_pb.ts";
import type { TaskStatus } from "../../gen/taskwire/v1/task_pb.ts";
import type { WorkerInstance } from "../../gen/taskwire/v1/worker_service_pb.ts";

/**
 * The operations of QueueService and WorkerService, independent of transport, as
 * {@link TaskBackend} is for TaskService: the gateway serves the NATS
 * implementation; clients call it directly or through the gateway
 * (`client.queues`). Every failure is a TaskError; an unknown worker type is
 * NOT_FOUND.
 */
export interface QueueBackend {
  /** The queue's counts and whether it is paused. */
  getQueue(workerType: string): Promise<QueueInfo>;
  /** Stops workers of the type from starting tasks, until `until` or {@link resumeQueue}. */
  pauseQueue(workerType: string, until?: Date): Promise<QueueInfo>;
  /** Lets workers of the type start tasks again. */
  resumeQueue(workerType: string): Promise<QueueInfo>;
  /** Cancels every task still in the queue; resolves with how many. */
  purgeQueue(workerType: string, reason?: string): Promise<number>;
  /** Dead letters of the type, oldest first, a page at a time. */
  listDeadLetters(
    workerType: string,
    page?: { pageSize?: number; pageToken?: string },
  ): Promise<ListDeadLettersResponse>;
  /** One task's dead letter; NOT_FOUND when it has none. */
  getDeadLetter(taskId: string): Promise<DeadLetter>;
  /** Queues a dead-lettered task again with a fresh attempt count; resolves with its PENDING status. */
  retryDeadLetter(taskId: string): Promise<TaskStatus>;
  /** Removes the listed tasks' dead letters, or every one of the type; resolves with how many. */
  purgeDeadLetters(workerType: string, taskIds?: string[]): Promise<number>;
  /** The shared store of task statuses: records held, bytes, and how long it keeps them. */
  getStore(): Promise<GetStoreResponse>;
  /** Every worker type's queue, by type name. */
  listQueues(): Promise<QueueInfo[]>;
  /**
   * Follows every queue: all of them first, each with the last hour's
   * throughput; then, every second or two while anything changed, all of them
   * again, each with the throughput counted since the previous message (add it
   * to the points of the same start). Ends when `signal` aborts.
   */
  watchQueues(signal?: AbortSignal): AsyncIterable<QueueSnapshot[]>;
  /** A type's finished attempts per 10-second step since `since` (default: an hour ago, at most a day), oldest first. */
  getThroughput(workerType: string, since?: Date): Promise<ThroughputPoint[]>;
  /** The live worker instances serving `workerType`, or all, by worker id. */
  listWorkers(workerType?: string): Promise<WorkerInstance[]>;
  /**
   * Follows the live worker instances (serving `workerType`, or all): all of
   * them first, then all again after each change, at most once a second.
   * Ends when `signal` aborts.
   */
  watchWorkers(workerType?: string, signal?: AbortSignal): AsyncIterable<WorkerInstance[]>;
}

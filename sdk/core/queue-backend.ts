import type {
  DeadLetter,
  GetStoreResponse,
  ListDeadLettersResponse,
  QueueInfo,
} from "../../gen/taskwire/v1/queue_service_pb.ts";
import type { TaskStatus } from "../../gen/taskwire/v1/task_pb.ts";

/**
 * The operations of QueueService, independent of transport, as
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
}

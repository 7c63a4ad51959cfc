import { Code } from "@connectrpc/connect";
import type { QueueBackend } from "./queue-backend.ts";
import type { ScheduleBackend } from "./schedule-backend.ts";
import type { TaskBackend } from "./task-backend.ts";
import { TaskError } from "./task-error.ts";

/** The backends a gateway serves once its broker is reached. */
export interface Backends {
  readonly tasks: TaskBackend;
  readonly queues: QueueBackend;
  readonly schedules: ScheduleBackend;
}

/**
 * Backends that answer before the real ones exist: until `ready` resolves,
 * every call fails UNAVAILABLE saying `waiting` (nothing was done: a retry is
 * safe), and availability listeners hear `false`, so a gateway can listen, and
 * report NOT_SERVING, while NATS is down at its start. Once `ready` resolves,
 * calls go to its backends and listeners follow theirs. When `ready` rejects,
 * calls fail with its error.
 */
export function deferredBackends(ready: Promise<Backends>, waiting: string): Backends {
  let current: Backends | undefined;
  let failure: unknown;
  const listeners = new Map<(available: boolean) => void, () => void>();
  ready.then(
    (backends) => {
      current = backends;
      for (const listener of listeners.keys()) listeners.set(listener, follow(backends, listener));
    },
    (error: unknown) => {
      failure = error;
    },
  );
  const real = (): Backends => {
    if (current) return current;
    if (failure !== undefined) throw TaskError.from(failure);
    throw new TaskError(`${waiting}: nothing was done, retry later`, Code.Unavailable);
  };
  const now = (): Promise<Backends> => {
    try {
      return Promise.resolve(real());
    } catch (error) {
      return Promise.reject(error);
    }
  };
  const tasks: TaskBackend = {
    submit: (task) => now().then((b) => b.tasks.submit(task)),
    batchSubmit: (list, options) => now().then((b) => b.tasks.batchSubmit(list, options)),
    getTask: (taskId) => now().then((b) => b.tasks.getTask(taskId)),
    getPayload: (taskId) => now().then((b) => b.tasks.getPayload(taskId)),
    watchTask: (taskId, signal) => ({
      [Symbol.asyncIterator]: () => real().tasks.watchTask(taskId, signal)[Symbol.asyncIterator](),
    }),
    awaitTerminal: (taskId, signal) => now().then((b) => b.tasks.awaitTerminal(taskId, signal)),
    awaitOutcome: (taskId, signal) => now().then((b) => b.tasks.awaitOutcome(taskId, signal)),
    cancelTask: (taskId, reason) => now().then((b) => b.tasks.cancelTask(taskId, reason)),
    listTasks: (request) => now().then((b) => b.tasks.listTasks(request)),
    onAvailabilityChange(listener) {
      listeners.set(listener, current ? follow(current, listener) : () => {});
      if (!current) listener(false);
      return () => {
        listeners.get(listener)?.();
        listeners.delete(listener);
      };
    },
    close: async () => {
      await current?.tasks.close();
    },
  };
  const queues: QueueBackend = {
    getQueue: (workerType) => now().then((b) => b.queues.getQueue(workerType)),
    pauseQueue: (workerType, until) => now().then((b) => b.queues.pauseQueue(workerType, until)),
    resumeQueue: (workerType) => now().then((b) => b.queues.resumeQueue(workerType)),
    purgeQueue: (workerType, reason) => now().then((b) => b.queues.purgeQueue(workerType, reason)),
    listDeadLetters: (workerType, page) => now().then((b) => b.queues.listDeadLetters(workerType, page)),
    getDeadLetter: (taskId) => now().then((b) => b.queues.getDeadLetter(taskId)),
    retryDeadLetter: (taskId) => now().then((b) => b.queues.retryDeadLetter(taskId)),
    purgeDeadLetters: (workerType, taskIds) => now().then((b) => b.queues.purgeDeadLetters(workerType, taskIds)),
    getStore: () => now().then((b) => b.queues.getStore()),
    listQueues: () => now().then((b) => b.queues.listQueues()),
    watchQueues: (signal) => ({
      [Symbol.asyncIterator]: () => real().queues.watchQueues(signal)[Symbol.asyncIterator](),
    }),
    getThroughput: (workerType, since) => now().then((b) => b.queues.getThroughput(workerType, since)),
    listWorkers: (workerType) => now().then((b) => b.queues.listWorkers(workerType)),
    watchWorkers: (workerType, signal) => ({
      [Symbol.asyncIterator]: () => real().queues.watchWorkers(workerType, signal)[Symbol.asyncIterator](),
    }),
  };
  const schedules: ScheduleBackend = {
    createSchedule: (schedule, options) => now().then((b) => b.schedules.createSchedule(schedule, options)),
    updateSchedule: (schedule, options) => now().then((b) => b.schedules.updateSchedule(schedule, options)),
    deleteSchedule: (workerType, id) => now().then((b) => b.schedules.deleteSchedule(workerType, id)),
    pauseSchedule: (workerType, id, options) => now().then((b) => b.schedules.pauseSchedule(workerType, id, options)),
    resumeSchedule: (workerType, id, options) => now().then((b) => b.schedules.resumeSchedule(workerType, id, options)),
    getSchedule: (workerType, id) => now().then((b) => b.schedules.getSchedule(workerType, id)),
    listSchedules: (workerType) => now().then((b) => b.schedules.listSchedules(workerType)),
    triggerSchedule: (workerType, id) => now().then((b) => b.schedules.triggerSchedule(workerType, id)),
    previewSchedule: (of, count, after) => now().then((b) => b.schedules.previewSchedule(of, count, after)),
  };
  return { tasks, queues, schedules };
}

/** Follows the real backend's availability; a backend without a broker of its own is always available. */
function follow(backends: Backends, listener: (available: boolean) => void): () => void {
  if (backends.tasks.onAvailabilityChange) return backends.tasks.onAvailabilityChange(listener);
  listener(true);
  return () => {};
}

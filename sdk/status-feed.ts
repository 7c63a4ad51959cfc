import { Code } from "@connectrpc/connect";
import { type ConsumerMessages, DeliverPolicy, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import type { TaskStatus } from "../gen/taskwire/v1/task_pb.js";
import { TaskError } from "./task-error.js";
import { decodeStatus, isTerminal, type StoredStatus } from "./task-status.js";
import { topology } from "./topology.js";

const subjectPrefix = topology.statusSubject("");

/** Receives each new write of a task's status record, or `undefined` when the feed ended. */
export type StatusListener = (update: StoredStatus | undefined) => void;

/**
 * Status changes for many watchers over one ordered consumer of the status
 * bucket per worker type, instead of a JetStream consumer per watched task.
 *
 * Consistency: the consumer delivers every record stored after it was created,
 * and `listen` resolves only once it exists. A read made after `listen` sees
 * every write stored before, so read-then-follow misses nothing. (A core
 * subscription to the record's subject would not do: a write routed to
 * subscribers before the subscription may still be unstored when the read runs.)
 */
export class StatusFeed {
  private readonly watches = new Map<string, Promise<void>>();
  /** Worker types whose watch is established. */
  private readonly followed = new Set<string>();
  private readonly listeners = new Map<string, Set<StatusListener>>();
  /** Tasks submitted while their type was followed: their latest write so far, null before the first. */
  private readonly tracked = new Map<string, StoredStatus | null>();
  private readonly stops = new Set<() => void>();

  /** `trackLimit`: tasks tracked at most; the oldest are forgotten first (their waiters then read). */
  constructor(
    private readonly js: JetStreamClient,
    private readonly trackLimit = 10_000,
  ) {}

  /**
   * Call before publishing a new task: if its type is followed, every write of
   * its record will be kept until {@link trackedTerminal}, so waiting for its
   * result needs no read.
   */
  track(taskId: string, workerType: string): void {
    if (!this.followed.has(workerType)) return;
    this.tracked.set(taskId, null);
    if (this.tracked.size > this.trackLimit) {
      const oldest = this.tracked.keys().next().value;
      if (oldest !== undefined) this.tracked.delete(oldest);
    }
  }

  /** Forgets a tracked task (its publish failed, or it was a duplicate). */
  untrack(taskId: string): void {
    this.tracked.delete(taskId);
  }

  /**
   * For a tracked task, its terminal status: at once if it was written
   * already, else when it is, without any read. Undefined when the task is not
   * tracked (the caller then follows and reads). Rejects with UNAVAILABLE if
   * the feed ends first, CANCELED if `signal` aborts.
   */
  trackedTerminal(taskId: string, signal?: AbortSignal): Promise<TaskStatus> | undefined {
    const latest = this.tracked.get(taskId);
    if (latest === undefined) return undefined;
    this.tracked.delete(taskId);
    if (latest && isTerminal(latest.status.state)) return Promise.resolve(latest.status);
    return new Promise((resolve, reject) => {
      const settle = (outcome: () => void) => {
        stop();
        signal?.removeEventListener("abort", onAbort);
        outcome();
      };
      const onAbort = () =>
        settle(() => reject(new TaskError(`waiting for ${taskId} was aborted`, Code.Canceled, { taskId })));
      const stop = this.addListener(taskId, (update) => {
        if (!update) {
          settle(() =>
            reject(new TaskError(`waiting for ${taskId}: the status feed ended`, Code.Unavailable, { taskId })),
          );
        } else if (isTerminal(update.status.state)) settle(() => resolve(update.status));
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      if (signal?.aborted) onAbort();
    });
  }

  /**
   * Calls `listener` with every later write of `taskId`'s record. Resolves, with
   * the function that stops it, once no later write can be missed.
   */
  async listen(taskId: string, workerType: string, listener: StatusListener): Promise<() => void> {
    await this.follow(workerType);
    return this.addListener(taskId, listener);
  }

  private addListener(taskId: string, listener: StatusListener): () => void {
    let set = this.listeners.get(taskId);
    if (!set) {
      set = new Set();
      this.listeners.set(taskId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(taskId) === set) this.listeners.delete(taskId);
    };
  }

  /** Stops every watch; listeners are told the feed ended. */
  close(): void {
    for (const stop of this.stops) stop();
  }

  private follow(workerType: string): Promise<void> {
    let started = this.watches.get(workerType);
    if (!started) {
      // An ordered consumer of the writes from now on, read with a callback: no
      // iterator and no entry object per write on this hot path. It starts at an
      // explicit sequence (not "new"), so that if it is ever recreated (a gap, a
      // reconnect) it resumes there rather than replaying the whole bucket.
      started = this.js.streams
        .get(topology.statusStream)
        .then((stream) => stream.info())
        .then((info) =>
          this.js.consumers.getPushConsumer(topology.statusStream, {
            filter_subjects: topology.statusSubject(`${workerType}.>`),
            deliver_policy: DeliverPolicy.StartSequence,
            opt_start_seq: info.state.last_seq + 1,
          }),
        )
        .then(async (consumer) => {
          const messages = await consumer.consume({ callback: (msg) => this.dispatch(msg) });
          this.followed.add(workerType);
          void this.ended(workerType, messages);
        });
      // A failed start is tried again by the next listener.
      started.catch(() => this.watches.delete(workerType));
      this.watches.set(workerType, started);
    }
    return started;
  }

  private dispatch(msg: JsMsg): void {
    const taskId = msg.subject.slice(subjectPrefix.length);
    const set = this.listeners.get(taskId);
    const tracked = this.tracked.has(taskId);
    // Deletes and purges (which have a KV-Operation header) carry no status.
    if ((!set && !tracked) || msg.data.length === 0) return;
    const update = { status: decodeStatus(msg.data), revision: msg.seq };
    if (tracked) this.tracked.set(taskId, update);
    for (const listener of set ?? []) listener(update);
  }

  private async ended(workerType: string, messages: ConsumerMessages): Promise<void> {
    const stop = () => messages.stop();
    this.stops.add(stop);
    try {
      await messages.closed();
    } catch {
      // The watch failed: its listeners are told below, as when it ends.
    } finally {
      this.stops.delete(stop);
      this.watches.delete(workerType);
      this.followed.delete(workerType);
      const prefix = `${workerType}.`;
      // Writes may be missed from now on: tracked tasks are read again by their waiters.
      for (const taskId of this.tracked.keys()) if (taskId.startsWith(prefix)) this.tracked.delete(taskId);
      for (const [taskId, set] of this.listeners) {
        if (taskId.startsWith(prefix)) for (const listener of set) listener(undefined);
      }
    }
  }
}

import { type ConsumerMessages, DeliverPolicy, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import { decodeStatus, type StoredStatus } from "./task-status.js";
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
  private readonly listeners = new Map<string, Set<StatusListener>>();
  private readonly stops = new Set<() => void>();

  constructor(private readonly js: JetStreamClient) {}

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
    // Deletes and purges (which have a KV-Operation header) carry no status.
    if (!set || msg.data.length === 0) return;
    const update = { status: decodeStatus(msg.data), revision: msg.seq };
    for (const listener of set) listener(update);
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
      const prefix = `${workerType}.`;
      for (const [taskId, set] of this.listeners) {
        if (taskId.startsWith(prefix)) for (const listener of set) listener(undefined);
      }
    }
  }
}

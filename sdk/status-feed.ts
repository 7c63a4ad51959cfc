import { type KV, type KvWatchEntry, KvWatchInclude } from "@nats-io/kv";
import { decodeStatus, type StoredStatus } from "./task-status.js";

/** Receives each new write of a task's status record, or `undefined` when the feed ended. */
export type StatusListener = (update: StoredStatus | undefined) => void;

/**
 * Status changes for many watchers over one KV watch per worker type, instead
 * of a JetStream consumer per watched task.
 *
 * Consistency: the watch delivers every record stored after it was created,
 * and `listen` resolves only once the watch exists. A read made after `listen`
 * sees every write stored before, so read-then-follow misses nothing. (A core
 * subscription to the record's subject would not do: a write routed to
 * subscribers before the subscription may still be unstored when the read runs.)
 */
export class StatusFeed {
  private readonly watches = new Map<string, Promise<void>>();
  private readonly listeners = new Map<string, Set<StatusListener>>();
  private readonly stops = new Set<() => void>();

  constructor(private readonly kv: KV) {}

  /**
   * Calls `listener` with every later write of `taskId`'s record. Resolves, with
   * the function that stops it, once no later write can be missed.
   */
  async listen(taskId: string, workerType: string, listener: StatusListener): Promise<() => void> {
    await this.follow(workerType);
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
      started = this.kv
        .watch({ key: `${workerType}.>`, include: KvWatchInclude.UpdatesOnly })
        .then((watch) => void this.dispatch(workerType, watch));
      // A failed start is tried again by the next listener.
      started.catch(() => this.watches.delete(workerType));
      this.watches.set(workerType, started);
    }
    return started;
  }

  private async dispatch(workerType: string, watch: AsyncIterable<KvWatchEntry> & { stop(): void }): Promise<void> {
    const stop = () => watch.stop();
    this.stops.add(stop);
    try {
      for await (const entry of watch) {
        const set = entry.operation === "PUT" ? this.listeners.get(entry.key) : undefined;
        if (!set) continue;
        const update = { status: decodeStatus(entry.value), revision: entry.revision };
        for (const listener of set) listener(update);
      }
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

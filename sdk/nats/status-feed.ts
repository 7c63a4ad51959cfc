import { type ConsumerMessages, DeliverPolicy, type JetStreamClient, type JsMsg } from "@nats-io/jetstream";
import { decodeStatus, topology } from "../core/index.ts";
import type { StoredStatus } from "./status-store.ts";

const subjectPrefix = topology.statusSubject("");

/** Receives each new write of a task's status record, or `undefined` when the feed ended. */
export type StatusListener = (update: StoredStatus | undefined) => void;

/** Options of {@link StatusFeed}. */
export interface StatusFeedOptions {
  /** How long a worker type's consumer outlives its last listener, for the next one to reuse. @default 10_000 */
  idleMs?: number;
}

/** One worker type's consumer, and how many listeners it has. */
interface Feed {
  readonly started: Promise<void>;
  listeners: number;
  idle: NodeJS.Timeout | undefined;
  /** Once consuming: stops the consumer and deletes it on the server. */
  retire: (() => void) | undefined;
}

/**
 * Status changes for many watchers over one ordered consumer of the status
 * bucket per worker type, instead of a JetStream consumer per watched task.
 * A type's consumer runs while it has listeners, and `idleMs` after the last
 * one leaves: a client does not go on receiving every write of a type it once
 * watched.
 *
 * Consistency: the consumer delivers every record stored after it was created,
 * and `listen` resolves only once it exists. A read made after `listen` sees
 * every write stored before, so read-then-follow misses nothing. (The status
 * events the server republishes would not do: they are core NATS, and one
 * lost on the way is gone, where the ordered consumer notices the gap.)
 */
export class StatusFeed {
  private readonly feeds = new Map<string, Feed>();
  private readonly listeners = new Map<string, Set<StatusListener>>();
  private readonly idleMs: number;
  private closed = false;

  private readonly js: JetStreamClient;
  constructor(js: JetStreamClient, options: StatusFeedOptions = {}) {
    this.js = js;
    this.idleMs = options.idleMs ?? 10_000;
  }

  /**
   * Calls `listener` with every later write of `taskId`'s record. Resolves, with
   * the function that stops it, once no later write can be missed.
   */
  async listen(taskId: string, workerType: string, listener: StatusListener): Promise<() => void> {
    let feed: Feed;
    for (;;) {
      if (this.closed) throw new Error("the status feed is closed");
      feed = this.feeds.get(workerType) ?? this.start(workerType);
      feed.listeners++;
      clearTimeout(feed.idle);
      try {
        await feed.started;
      } catch (error) {
        feed.listeners--;
        throw error;
      }
      if (this.feeds.get(workerType) === feed) break;
      feed.listeners--; // it ended while this listener waited: take the next one
    }
    const removeListener = this.addListener(taskId, listener);
    return () => {
      removeListener();
      if (--feed.listeners === 0) feed.idle = setTimeout(() => this.retire(workerType, feed), this.idleMs).unref();
    };
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

  /** Stops every consumer, even one still starting; listeners are told the feed ended. */
  close(): void {
    this.closed = true;
    for (const feed of this.feeds.values()) {
      clearTimeout(feed.idle);
      feed.retire?.();
    }
  }

  private start(workerType: string): Feed {
    // An ordered consumer of the writes from now on, read with a callback: no
    // iterator and no entry object per write on this hot path. It starts at an
    // explicit sequence (not "new"), so that if it is ever recreated (a gap, a
    // reconnect) it resumes there rather than replaying the whole bucket.
    const started = this.js.streams
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
        // Deleted at once, rather than when the server finds it inactive (minutes later).
        feed.retire = () => void messages.close().then(() => consumer.delete().catch(() => false));
        void this.ended(workerType, feed, messages);
        if (this.closed) feed.retire();
      });
    const feed: Feed = { started, listeners: 0, idle: undefined, retire: undefined };
    // A failed start is tried again by the next listener.
    started.catch(() => this.feeds.get(workerType) === feed && this.feeds.delete(workerType));
    this.feeds.set(workerType, feed);
    return feed;
  }

  /** Stops an idle feed; a listener that comes later starts a new one. */
  private retire(workerType: string, feed: Feed): void {
    if (feed.listeners > 0 || this.feeds.get(workerType) !== feed) return;
    this.feeds.delete(workerType);
    feed.retire?.();
  }

  private dispatch(msg: JsMsg): void {
    const taskId = msg.subject.slice(subjectPrefix.length);
    const set = this.listeners.get(taskId);
    // Deletes and purges (which have a KV-Operation header) carry no status.
    if (!set || msg.data.length === 0) return;
    const update = { status: decodeStatus(msg.data), revision: msg.seq };
    for (const listener of set) listener(update);
  }

  private async ended(workerType: string, feed: Feed, messages: ConsumerMessages): Promise<void> {
    try {
      await messages.closed();
    } catch {
      // The watch failed: its listeners are told below, as when it ends.
    }
    // A retired feed had no listeners, and the type's listeners now are a newer feed's.
    if (this.feeds.get(workerType) !== feed) return;
    this.feeds.delete(workerType);
    clearTimeout(feed.idle);
    const prefix = `${workerType}.`;
    for (const [taskId, set] of this.listeners) {
      if (taskId.startsWith(prefix)) for (const listener of set) listener(undefined);
    }
  }
}

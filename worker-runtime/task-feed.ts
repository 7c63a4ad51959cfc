import type { Consumer, ConsumerMessages, JsMsg } from "@nats-io/jetstream";
import type { PrioritySlots } from "./priority-slots.ts";

/** Options of {@link TaskFeed}. */
export interface TaskFeedOptions {
  /** The priority's consumer. */
  readonly consumer: Consumer;
  /** The worker type's handler slots, shared by its priorities. */
  readonly slots: PrioritySlots;
  /** This feed's rank in `slots` (0 is served first). */
  readonly rank: number;
  /** At most this many pulled messages wait for a slot. */
  readonly prefetch: number;
  /** How often waiting messages are reported alive (a third of ack_wait). */
  readonly heartbeatMs: number;
  /** How long one pull request waits for messages. @default 10000 */
  readonly expiresMs?: number;
  /** Runs a message that got a slot; the slot is freed when the promise settles. */
  readonly run: (msg: JsMsg) => Promise<void>;
  /** Gives a message that never ran back to the stream, on stop. */
  readonly giveBack: (msg: JsMsg) => Promise<unknown>;
  /** A pull failed (it is retried with backoff). */
  readonly onError: (error: unknown) => void;
}

/**
 * Pulls one consumer's tasks in explicit batches and hands each to a handler
 * slot. Unlike `consume()`, which keeps a buffer the caller cannot see, every
 * pulled message is visible here while it waits: it is kept alive with
 * `working()` (so a busy worker's backlog is never redelivered elsewhere) and
 * given back at once on stop.
 */
export class TaskFeed {
  private readonly waiting = new Set<JsMsg>();
  private readonly heartbeat: NodeJS.Timeout;
  /** The pull requests in flight: the loop's, and a resume's. */
  private readonly batches = new Set<ConsumerMessages>();
  /** Pulls made by resumes, until their requests end. */
  private readonly extra = new Set<Promise<void>>();
  private stopped = false;
  private wake: (() => void) | undefined;
  private readonly done: Promise<void>;
  private readonly givingBack = new Set<Promise<unknown>>();

  private readonly options: TaskFeedOptions;
  constructor(options: TaskFeedOptions) {
    this.options = options;
    this.heartbeat = setInterval(() => {
      for (const msg of this.waiting) msg.working();
    }, options.heartbeatMs);
    this.done = this.loop();
  }

  /** Stops pulling and gives every waiting message back to the stream. Running tasks go on. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.heartbeat);
    for (const batch of this.batches) batch.stop();
    this.wake?.();
    for (const msg of this.waiting) this.giveBack(msg);
    this.waiting.clear();
    await Promise.all([this.done, ...this.extra]);
    await Promise.all(this.givingBack);
  }

  /**
   * Sends one more pull request, beside the one in flight: a request made
   * while the consumer was paused may stay unserved after it resumes, until it
   * expires. The one in flight is not ended: the server may be delivering to
   * it already, and a message sent to a request that is gone would wait its
   * whole ack_wait for redelivery. Up to twice the prefetch may then wait.
   */
  repull(): void {
    // One extra request at a time: a burst of resumes takes one more batch, not one each.
    if (this.stopped || this.extra.size > 0) return;
    const room = Math.max(1, this.options.prefetch - this.waiting.size);
    const pulled = this.pull(room).catch((error: unknown) => {
      if (!this.stopped) this.options.onError(error);
    });
    this.extra.add(pulled);
    void pulled.finally(() => this.extra.delete(pulled));
  }

  private async loop(): Promise<void> {
    // Pull again once half the prefetch is free: batches, not one request per task.
    const threshold = Math.ceil(this.options.prefetch / 2);
    let failures = 0;
    while (!this.stopped) {
      const room = this.options.prefetch - this.waiting.size;
      if (room < threshold) {
        await this.sleep();
        continue;
      }
      try {
        await this.pull(room);
        failures = 0;
      } catch (error) {
        if (this.stopped) return;
        this.options.onError(error);
        await this.sleep(Math.min(100 * 2 ** failures++, 5_000));
      }
    }
  }

  /** One pull request for up to `room` messages, each admitted as it comes, until the request ends. */
  private async pull(room: number): Promise<void> {
    const batch = await this.options.consumer.fetch({ max_messages: room, expires: this.options.expiresMs ?? 10_000 });
    this.batches.add(batch);
    try {
      if (this.stopped) batch.stop();
      for await (const msg of batch) this.admit(msg);
    } finally {
      this.batches.delete(batch);
    }
  }

  private admit(msg: JsMsg): void {
    if (this.stopped) {
      this.giveBack(msg);
      return;
    }
    this.waiting.add(msg);
    void this.options.slots.acquire(this.options.rank).then(() => {
      // Given back by stop() while it waited.
      if (!this.waiting.delete(msg)) return this.options.slots.release();
      this.wake?.();
      void this.options.run(msg).finally(() => this.options.slots.release());
    });
  }

  private giveBack(msg: JsMsg): void {
    const done = this.options.giveBack(msg).finally(() => this.givingBack.delete(done));
    this.givingBack.add(done);
  }

  /** Until woken (room freed, or stop), or for `ms`. */
  private sleep(ms?: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(resolve, ms);
      this.wake = () => {
        this.wake = undefined;
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

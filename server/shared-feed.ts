import { Code, ConnectError } from "@connectrpc/connect";

/**
 * One upstream watch shared by every caller that follows it: the gateway reads
 * the broker once however many consoles watch. The upstream starts with the
 * first follower and stops after the last one leaves.
 *
 * Each value is folded into the feed's state with `combine` (for a newcomer's
 * first value) and into each follower's pending value (for a follower slower
 * than the feed): no follower waits for another, and none misses what a value
 * it skipped carried.
 */
export class SharedFeed<T> {
  private readonly upstream: (signal: AbortSignal) => AsyncIterable<T>;
  private readonly combine: (earlier: T, later: T) => T;
  private readonly followers = new Set<Follower<T>>();
  private running: AbortController | undefined;
  private state: T | undefined;

  /** `upstream` is started with a signal that aborts when the last follower leaves. */
  constructor(upstream: (signal: AbortSignal) => AsyncIterable<T>, combine: (earlier: T, later: T) => T) {
    this.upstream = upstream;
    this.combine = combine;
  }

  /**
   * Yields the feed's state, then its values, until `signal` aborts (then it
   * ends) or the upstream fails (then it throws that error).
   */
  async *follow(signal: AbortSignal): AsyncGenerator<T> {
    const follower: Follower<T> = { pending: this.state, wake: undefined, failure: undefined };
    this.followers.add(follower);
    const wake = () => follower.wake?.();
    signal.addEventListener("abort", wake, { once: true });
    if (!this.running) this.start();
    try {
      for (;;) {
        if (follower.failure !== undefined) throw follower.failure;
        if (signal.aborted) return;
        if (follower.pending !== undefined) {
          const value = follower.pending;
          follower.pending = undefined;
          yield value;
          continue;
        }
        await new Promise<void>((resolve) => {
          follower.wake = resolve;
        });
        follower.wake = undefined;
      }
    } finally {
      signal.removeEventListener("abort", wake);
      this.followers.delete(follower);
      if (this.followers.size === 0) this.stop();
    }
  }

  private start(): void {
    const running = new AbortController();
    this.running = running;
    void (async () => {
      try {
        for await (const value of this.upstream(running.signal)) {
          // A stopped run may still yield the read it had under way: it belongs to no follower now.
          if (this.running !== running) return;
          this.state = this.state === undefined ? value : this.combine(this.state, value);
          for (const f of this.followers) {
            f.pending = f.pending === undefined ? value : this.combine(f.pending, value);
            f.wake?.();
          }
        }
        if (running.signal.aborted) return;
        throw new ConnectError("the gateway's watch ended; watch again", Code.Unavailable);
      } catch (error) {
        if (running.signal.aborted) return;
        for (const f of this.followers) {
          f.failure = error;
          f.wake?.();
        }
      }
      // Failed: the next follower starts it anew.
      if (this.running === running) this.stop();
    })();
  }

  private stop(): void {
    this.running?.abort();
    this.running = undefined;
    this.state = undefined;
  }
}

interface Follower<T> {
  pending: T | undefined;
  wake: (() => void) | undefined;
  failure: unknown;
}

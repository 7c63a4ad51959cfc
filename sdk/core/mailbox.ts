/**
 * A queue read by one async iterator and filled from callbacks. `close()` ends
 * the iteration at once: items still queued are dropped (the reader stopped
 * caring).
 */
export class Mailbox<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private closed = false;
  private wake: (() => void) | undefined;

  /** Adds an item at the end. Ignored once closed. */
  push(item: T): void {
    if (this.closed) return;
    this.items.push(item);
    this.wake?.();
  }

  /** Adds an item to be read next. Ignored once closed. */
  unshift(item: T): void {
    if (this.closed) return;
    this.items.unshift(item);
    this.wake?.();
  }

  /** Ends the iteration. Idempotent. */
  close(): void {
    this.closed = true;
    this.items = [];
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    while (!this.closed) {
      const item = this.items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }
}

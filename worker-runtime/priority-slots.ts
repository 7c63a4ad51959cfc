/**
 * A counting semaphore whose waiters are served by rank (0 first), FIFO within
 * a rank: the worker's concurrency limit, shared by its per-priority pumps so a
 * free slot goes to the highest priority that has a task waiting.
 */
export class PrioritySlots {
  private free: number;
  private readonly waiters: Array<Array<() => void>>;

  constructor(capacity: number, ranks: number) {
    this.free = capacity;
    this.waiters = Array.from({ length: ranks }, () => []);
  }

  /** Resolves when a slot is taken for a waiter of this rank. */
  acquire(rank: number): Promise<void> {
    if (this.free > 0 && this.waiters.every((queue) => queue.length === 0)) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters[rank]?.push(resolve));
  }

  /** Returns a slot: hands it to the best waiter, if any. */
  release(): void {
    for (const queue of this.waiters) {
      const next = queue.shift();
      if (next) {
        next();
        return;
      }
    }
    this.free++;
  }
}

interface Waiter {
  readonly take: () => void;
  /** When it started waiting, in ms. */
  readonly since: number;
}

/**
 * A counting semaphore whose waiters are served by rank (0 first), FIFO within
 * a rank: the worker's concurrency limit, shared by its per-priority feeds so a
 * free slot goes to the highest priority that has a task waiting. No rank
 * starves: a waiter that has waited `agingMs` or more is served before any
 * younger one, whatever its rank. While held (the queue is paused), no slot is
 * handed out.
 */
export class PrioritySlots {
  private free: number;
  private held = false;
  private readonly waiters: Waiter[][];

  private readonly agingMs: number;
  private readonly now: () => number;
  constructor(capacity: number, ranks: number, agingMs = 5_000, now: () => number = Date.now) {
    this.agingMs = agingMs;
    this.now = now;
    this.free = capacity;
    this.waiters = Array.from({ length: ranks }, () => []);
  }

  /** Resolves when a slot is taken for a waiter of this rank. */
  acquire(rank: number): Promise<void> {
    if (!this.held && this.free > 0 && this.waiters.every((queue) => queue.length === 0)) {
      this.free--;
      return Promise.resolve();
    }
    return new Promise((take) => this.waiters[rank]?.push({ take, since: this.now() }));
  }

  /** Returns a slot: hands it to the best waiter, if any. */
  release(): void {
    this.free++;
    this.grant();
  }

  /** Hands out no slot until {@link unhold}: waiters wait, running ones go on. */
  hold(): void {
    this.held = true;
  }

  /** Whether slots are held (the queue is paused). */
  get holding(): boolean {
    return this.held;
  }

  /** Hands out slots again, to as many waiters as there are free slots. */
  unhold(): void {
    this.held = false;
    this.grant();
  }

  private grant(): void {
    while (!this.held && this.free > 0) {
      const next = this.aged() ?? this.waiters.find((queue) => queue.length > 0);
      const waiter = next?.shift();
      if (!waiter) return;
      this.free--;
      waiter.take();
    }
  }

  /** The queue whose head has waited longest, if that is `agingMs` or more. */
  private aged(): Waiter[] | undefined {
    const before = this.now() - this.agingMs;
    let oldest: Waiter[] | undefined;
    for (const queue of this.waiters) {
      const head = queue[0];
      if (head && head.since <= before && (!oldest || head.since < (oldest[0]?.since ?? Infinity))) oldest = queue;
    }
    return oldest;
  }
}

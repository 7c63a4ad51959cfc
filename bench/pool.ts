/**
 * Runs queued asynchronous jobs, at most `limit` at once. The first failure is
 * kept and rethrown by {@link Pool.drained}; jobs still queued then are skipped.
 */
export class Pool {
  /** Jobs not started yet: `queue[head]` onwards. A head index, since `shift()` copies a long array. */
  private queue: ((() => Promise<void>) | undefined)[] = [];
  private head = 0;
  private running = 0;
  private finished = 0;
  private failure: { error: unknown } | undefined;
  private idle: (() => void) | undefined;

  private readonly limit: number;
  constructor(limit: number) {
    this.limit = limit;
  }

  add(job: () => Promise<void>): void {
    this.queue.push(job);
    this.next();
  }

  /**
   * Resolves once every job added so far has finished; rejects with the first
   * failure, or when no job finishes for `stallMs` while some are unfinished.
   */
  async drained(stallMs: number): Promise<void> {
    let seen = this.finished;
    const watchdog = setInterval(() => {
      if (this.finished === seen) {
        const left = this.running + this.queued();
        this.fail(
          new Error(`stalled: ${left} of ${this.finished + left} tasks unfinished, none finished for ${stallMs} ms`),
        );
      }
      seen = this.finished;
    }, stallMs);
    try {
      if (this.running > 0 || this.queued() > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    } finally {
      clearInterval(watchdog);
    }
    if (this.failure) throw this.failure.error;
  }

  private fail(error: unknown): void {
    this.failure ??= { error };
    this.queue = [];
    this.head = 0;
    this.idle?.();
  }

  private next(): void {
    while (this.running < this.limit && !this.failure) {
      const job = this.queue[this.head];
      if (!job) break;
      this.queue[this.head++] = undefined;
      this.running++;
      job()
        .catch((error: unknown) => this.fail(error))
        .finally(() => {
          this.running--;
          this.finished++;
          this.next();
        });
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    if (this.running === 0 && this.queued() === 0) this.idle?.();
  }

  private queued(): number {
    return this.queue.length - this.head;
  }
}

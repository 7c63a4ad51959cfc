/**
 * Runs queued asynchronous jobs, at most `limit` at once. The first failure is
 * kept and rethrown by {@link Pool.drained}; jobs still queued then are skipped.
 */
export class Pool {
  private readonly queue: (() => Promise<void>)[] = [];
  private running = 0;
  private finished = 0;
  private failure: { error: unknown } | undefined;
  private idle: (() => void) | undefined;

  constructor(private readonly limit: number) {}

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
        const left = this.running + this.queue.length;
        this.fail(
          new Error(`stalled: ${left} of ${this.finished + left} tasks unfinished, none finished for ${stallMs} ms`),
        );
      }
      seen = this.finished;
    }, stallMs);
    try {
      if (this.running > 0 || this.queue.length > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    } finally {
      clearInterval(watchdog);
    }
    if (this.failure) throw this.failure.error;
  }

  private fail(error: unknown): void {
    this.failure ??= { error };
    this.queue.length = 0;
    this.idle?.();
  }

  private next(): void {
    while (this.running < this.limit && !this.failure) {
      const job = this.queue.shift();
      if (!job) break;
      this.running++;
      job()
        .catch((error: unknown) => this.fail(error))
        .finally(() => {
          this.running--;
          this.finished++;
          this.next();
        });
    }
    if (this.running === 0 && this.queue.length === 0) this.idle?.();
  }
}

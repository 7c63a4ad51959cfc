let tick: Promise<void> | undefined;

/**
 * Resolves in the next macrotask, together with every other caller of this
 * tick. Attempts that finish around the same time then publish their status
 * writes in one microtask round, which nats.js sends as one socket write
 * instead of one per task.
 */
export function sameTick(): Promise<void> {
  tick ??= new Promise((resolve) =>
    setImmediate(() => {
      tick = undefined;
      resolve();
    }),
  );
  return tick;
}

/**
 * Preloaded into the soak's Node processes (`--expose-gc --import`): on the
 * parent's `{ type: "memory" }` it runs a full collection and answers with the
 * process's memory after it. Resident memory sampled at a random moment swings
 * by tens of MiB with when V8 last collected (Buffers freed only then); after a
 * full collection it is what the process still holds, and a leak shows as its rise.
 */
const gc = (globalThis as { gc?: () => void }).gc;
process.on("message", (message: { type?: string }) => {
  if (message?.type !== "memory" || !gc) return;
  gc();
  const { rss, heapUsed, external } = process.memoryUsage();
  process.send?.({ type: "memory", rss, heapUsed, external });
});

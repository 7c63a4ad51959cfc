/**
 * Preloaded into the soak's Node processes (`--expose-gc --import`): on the
 * parent's `{ type: "memory" }` it runs a full collection and answers with the
 * process's memory after it. Resident memory sampled at a random moment swings
 * by tens of MiB with when V8 last collected (Buffers freed only then); after a
 * full collection it is what the process still holds, and a leak shows as its rise.
 * It also gives the young generation's reserved size: V8 grows it in doublings
 * up to its cap, a step in resident memory that is not a leak.
 */
import { getHeapSpaceStatistics } from "node:v8";

const gc = (globalThis as { gc?: () => void }).gc;
process.on("message", (message: { type?: string }) => {
  if (message?.type !== "memory" || !gc) return;
  gc();
  const { rss, heapUsed, external } = process.memoryUsage();
  const young = getHeapSpaceStatistics().find((space) => space.space_name === "new_space")?.space_size ?? 0;
  process.send?.({ type: "memory", rss, heapUsed, external, young });
});

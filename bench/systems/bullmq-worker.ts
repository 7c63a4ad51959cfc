/**
 * The worker process of the BullMQ runs: 200 concurrent handlers that return
 * the payload as it came. Argument: the Redis port.
 */
import { Worker } from "bullmq";
import { bullQueueName, type EchoJob } from "./bullmq.ts";

const worker = new Worker<EchoJob, EchoJob>(bullQueueName, async (job) => ({ text: job.data.text }), {
  connection: { host: "127.0.0.1", port: Number(process.argv[2]) },
  concurrency: 200,
});
await worker.waitUntilReady();
process.once("SIGTERM", () => {
  void worker.close().then(() => process.exit(0));
});
process.send?.({ type: "ready" });

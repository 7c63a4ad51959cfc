import { Queue, QueueEvents } from "bullmq";
import type { Target } from "../target.ts";
import { payloadText } from "../target.ts";

/** The queue name of the BullMQ runs. */
export const bullQueueName = "bench";

/**
 * The event stream holds every event of a run (a job makes about five): trimmed
 * at the default 10 000, a lagging QueueEvents would miss completions.
 */
const maxEvents = 1_000_000;

/** The job data and return value of the BullMQ runs. */
export interface EchoJob {
  text: string;
}

/**
 * BullMQ: `Queue.addBulk` submits (one job is a bulk of one) and
 * `job.waitUntilFinished` observes each job's return value through QueueEvents.
 */
export async function createBullMqTarget(port: number): Promise<Target> {
  const connection = { host: "127.0.0.1", port };
  const queue = new Queue<EchoJob, EchoJob>(bullQueueName, { connection, streams: { events: { maxLen: maxEvents } } });
  // Every job awaited by waitUntilFinished listens to the queue's "closing" event.
  queue.setMaxListeners(0);
  // From the stream's start (it is new, like the Redis), not from "$": a job finished
  // before QueueEvents' first read would otherwise never be seen finishing.
  const events = new QueueEvents(bullQueueName, { connection, lastEventId: "0-0" });
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
  return {
    async submit(count) {
      const jobs = await queue.addBulk(
        Array.from({ length: count }, () => ({ name: "echo", data: { text: payloadText } })),
      );
      return jobs.map((job) => async () => void (await job.waitUntilFinished(events)));
    },
    async close() {
      await events.close();
      await queue.close();
    },
  };
}

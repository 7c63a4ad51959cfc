import { connect } from "@nats-io/transport-node";
import { publishToStream } from "../../sdk/nats/jetstream-ops.ts";
import { RequestPipeline } from "../../sdk/nats/request-pipeline.ts";
import { Announcements, payloadText, type Target } from "../target.ts";

/** The raw JetStream limit: one stream, one durable pull consumer, no task semantics. */
export const rawTopology = {
  stream: "BENCH_RAW",
  subject: "bench.raw.task",
  consumer: "bench_raw",
  /** Messages the consumer fetches ahead, as many as a Taskwire or BullMQ worker runs at once. */
  prefetch: 200,
  /** Core NATS subject on which the consumer announces each acked message's sequence. */
  doneSubject: "bench.raw.done",
  /** With stored results: their stream, and the prefix of their subjects (one per message). */
  resultStream: "BENCH_RAW_RESULTS",
  resultSubject: "bench.raw.result",
};

/**
 * Publishes the payload with the PubAck awaited; a task is observed when the
 * consumer process announces, after acking it, the message's stream sequence.
 * Publishes go through Taskwire's own request pipeline, the cheapest PubAck
 * publish this client has, so that the limit is not held down by nats.js'
 * per-request overhead.
 */
export async function createRawJetStreamTarget(url: string): Promise<Target> {
  const nc = await connect({ servers: url, noAsyncTraces: true });
  const requests = new RequestPipeline(nc);
  const payload = new TextEncoder().encode(payloadText);
  const done = new Announcements<number>();
  nc.subscribe(rawTopology.doneSubject, { callback: (_, msg) => done.announce(Number(msg.string())) });
  return {
    async submit(count) {
      const acks = await Promise.all(
        Array.from({ length: count }, () => publishToStream(requests, rawTopology.subject, payload)),
      );
      return acks.map((ack) => done.observer(ack.seq));
    },
    close: () => {
      requests.close();
      return nc.close();
    },
  };
}

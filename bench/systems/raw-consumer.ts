/**
 * The consumer process of the raw JetStream limit: provisions the stream and
 * its consumer, then acks every message and announces its sequence.
 * Argument: the NATS URL.
 */
import { AckPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { rawTopology } from "./raw-jetstream.js";

const nc = await connect({ servers: process.argv[2] });
const jsm = await jetstreamManager(nc);
await jsm.streams.add({
  name: rawTopology.stream,
  subjects: [rawTopology.subject],
  storage: StorageType.File,
  retention: RetentionPolicy.Workqueue,
});
await jsm.consumers.add(rawTopology.stream, { durable_name: rawTopology.consumer, ack_policy: AckPolicy.Explicit });
const consumer = await jetstream(nc).consumers.get(rawTopology.stream, rawTopology.consumer);
const messages = await consumer.consume({ max_messages: rawTopology.prefetch });
process.once("SIGTERM", () => {
  void messages.close().then(() => nc.drain().then(() => process.exit(0)));
});
process.send?.({ type: "ready" });
for await (const msg of messages) {
  msg.ack();
  nc.publish(rawTopology.doneSubject, String(msg.seq));
}

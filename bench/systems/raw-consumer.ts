/**
 * The consumer process of the raw JetStream limits: provisions the stream and
 * its consumer, then acks every message and announces its sequence. With
 * `--store-results` it first stores a result per message in a second stream,
 * with the PubAck awaited (at most `prefetch` at once): the least a task queue
 * that keeps each result durably before the ack can do.
 * Arguments: the NATS URL, then optionally `--store-results`.
 */
import { AckPolicy, type JsMsg, jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { publishToStream } from "../../sdk/nats/jetstream-ops.ts";
import { consumeMessages } from "./consumer-process.ts";
import { rawTopology } from "./raw-jetstream.ts";

const nc = await connect({ servers: process.argv[2] });
const storeResults = process.argv[3] === "--store-results";
const jsm = await jetstreamManager(nc);
await jsm.streams.add({
  name: rawTopology.stream,
  subjects: [rawTopology.subject],
  storage: StorageType.File,
  retention: RetentionPolicy.Workqueue,
});
if (storeResults) {
  // Kept per message, as a status bucket keeps a record per task (history 1).
  await jsm.streams.add({
    name: rawTopology.resultStream,
    subjects: [`${rawTopology.resultSubject}.*`],
    storage: StorageType.File,
    max_msgs_per_subject: 1,
  });
}
await jsm.consumers.add(rawTopology.stream, { durable_name: rawTopology.consumer, ack_policy: AckPolicy.Explicit });
const finish = (msg: JsMsg) => {
  msg.ack();
  nc.publish(rawTopology.doneSubject, String(msg.seq));
};
await consumeMessages(
  nc,
  await jetstream(nc).consumers.get(rawTopology.stream, rawTopology.consumer),
  (msg, requests) => {
    if (!storeResults) return void finish(msg);
    return publishToStream(requests, `${rawTopology.resultSubject}.${msg.seq}`, msg.data).then(() => finish(msg));
  },
);

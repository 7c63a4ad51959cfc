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
import { publishToStream } from "../../sdk/jetstream-ops.js";
import { RequestPipeline } from "../../sdk/request-pipeline.js";
import { rawTopology } from "./raw-jetstream.js";

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
const consumer = await jetstream(nc).consumers.get(rawTopology.stream, rawTopology.consumer);
const messages = await consumer.consume({ max_messages: rawTopology.prefetch });
const requests = new RequestPipeline(nc);
process.once("SIGTERM", () => {
  requests.close();
  void messages.close().then(() => nc.drain().then(() => process.exit(0)));
});
process.send?.({ type: "ready" });

const finish = (msg: JsMsg) => {
  msg.ack();
  nc.publish(rawTopology.doneSubject, String(msg.seq));
};
let storing = 0;
let room: (() => void) | undefined;
const storeThenFinish = async (msg: JsMsg) => {
  await publishToStream(requests, `${rawTopology.resultSubject}.${msg.seq}`, msg.data);
  finish(msg);
};
for await (const msg of messages) {
  if (!storeResults) {
    finish(msg);
    continue;
  }
  while (storing >= rawTopology.prefetch) await new Promise<void>((resolve) => (room = resolve));
  storing++;
  void storeThenFinish(msg).finally(() => {
    storing--;
    room?.();
    room = undefined;
  });
}

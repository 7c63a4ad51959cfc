/**
 * The consumer process of the protocol floor: Taskwire's messages with none of
 * the SDK's per-task work. It provisions the bench worker type and the status
 * bucket as Taskwire does (the same streams, consumers and republish), then,
 * for each task, stores its status record as a first write (expected last
 * subject sequence 0) with the PubAck awaited (at most `prefetch` at once),
 * publishes the TaskResult event and acks: what a Taskwire worker sends for a
 * task that succeeds at its first attempt, the bytes encoded once.
 * Argument: the NATS URL.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers } from "@nats-io/transport-node";
import { topology } from "../../sdk/core/names.ts";
import { runtimeDefaults } from "../../sdk/core/prepare-task.ts";
import { taskIdOfSubject } from "../../sdk/core/task-id.ts";
import { publishToStream } from "../../sdk/nats/jetstream-ops.ts";
import { provisionStatusBucket, provisionWorkerType } from "../../sdk/nats/provisioning.ts";
import { echoService } from "../gen/bench/v1/bench_taskwire.ts";
import { consumeMessages } from "./consumer-process.ts";
import { protocolMessages } from "./protocol-messages.ts";

const { workerType } = echoService;
const nc = await connect({ servers: process.argv[2] });
await provisionWorkerType(await jetstreamManager(nc), echoService);
await provisionStatusBucket(nc);
const { status, event } = protocolMessages();
const createOnly = headers();
createOnly.set("Nats-Expected-Last-Subject-Sequence", "0");
const resultSubject = topology.resultSubject(workerType);
await consumeMessages(
  nc,
  await jetstream(nc).consumers.get(
    topology.streamName(workerType),
    topology.consumerName(workerType, runtimeDefaults.priority),
  ),
  (msg, requests) => {
    const taskId = taskIdOfSubject(workerType, msg.subject);
    return publishToStream(requests, topology.statusSubject(taskId), status, createOnly).then(() => {
      nc.publish(resultSubject, event);
      msg.ack();
    });
  },
);

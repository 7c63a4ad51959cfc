import { connect } from "@nats-io/transport-node";
import { publishToStream } from "../../sdk/jetstream-ops.js";
import { RequestPipeline } from "../../sdk/request-pipeline.js";
import { newRoute, newTaskId } from "../../sdk/task-id.js";
import { topology } from "../../sdk/topology.js";
import type { Observe, Target } from "../target.js";
import { protocolMessages } from "./protocol-messages.js";

/**
 * The protocol floor: Taskwire's messages, on Taskwire's streams, with none of
 * the SDK's per-task work (see protocol-consumer.ts). Each task is a WorkItem
 * published on its own subject with the PubAck awaited; it is observed when the
 * server republishes its stored status record on the subject of this client's
 * route, as `result()` hears of it.
 */
export async function createProtocolFloorTarget(url: string): Promise<Target> {
  const nc = await connect({ servers: url, noAsyncTraces: true });
  const requests = new RequestPipeline(nc);
  const { workItem } = protocolMessages();
  const route = newRoute();
  const done = new Set<string>();
  const waiting = new Map<string, () => void>();
  const prefix = topology.statusEventsOf(route).slice(0, -1); // taskwire.status.<route>.
  nc.subscribe(topology.statusEventsOf(route), {
    callback: (_, msg) => {
      const taskId = msg.subject.slice(prefix.length);
      const resolve = waiting.get(taskId);
      if (resolve) {
        waiting.delete(taskId);
        resolve();
      } else done.add(taskId); // republished before this client saw its PubAck
    },
  });
  await nc.flush();
  const observer =
    (taskId: string): Observe =>
    () =>
      done.delete(taskId) ? Promise.resolve() : new Promise<void>((resolve) => waiting.set(taskId, resolve));
  const submitOne = async () => {
    const taskId = newTaskId("bench", Date.now(), route);
    const token = taskId.slice(taskId.indexOf(".") + 1);
    await publishToStream(requests, topology.taskSubject("bench", "normal", token), workItem);
    return observer(taskId);
  };
  return {
    submit: (count) => Promise.all(Array.from({ length: count }, submitOne)),
    close: () => {
      requests.close();
      return nc.close();
    },
  };
}

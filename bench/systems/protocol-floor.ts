import { connect } from "@nats-io/transport-node";
import { topology } from "../../sdk/core/names.ts";
import { runtimeDefaults } from "../../sdk/core/prepare-task.ts";
import { newRoute, newTaskId, taskIdToken } from "../../sdk/core/task-id.ts";
import { publishToStream } from "../../sdk/nats/jetstream-ops.ts";
import { RequestPipeline } from "../../sdk/nats/request-pipeline.ts";
import { Announcements, type Target } from "../target.ts";
import { echo, protocolMessages } from "./protocol-messages.ts";

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
  const records = new Announcements<string>();
  const prefix = topology.statusEventsOf(route).slice(0, -1); // taskwire.status.<route>.
  nc.subscribe(topology.statusEventsOf(route), {
    callback: (_, msg) => records.announce(msg.subject.slice(prefix.length)),
  });
  await nc.flush();
  const submitOne = async () => {
    const taskId = newTaskId(echo.workerType, Date.now(), route);
    const subject = topology.taskSubject(echo.workerType, runtimeDefaults.priority, taskIdToken(taskId));
    await publishToStream(requests, subject, workItem);
    return records.observer(taskId);
  };
  return {
    submit: (count) => Promise.all(Array.from({ length: count }, submitOne)),
    close: () => {
      requests.close();
      return nc.close();
    },
  };
}

import { create, fromBinary } from "@bufbuild/protobuf";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChildrenSchema, TaskState, TaskStatusSchema, WorkItemSchema } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { taskIdToken, topology } from "../../sdk/core/index.ts";
import {
  bucketOf,
  directGet,
  parkWorkItem,
  provisionStatusBucket,
  RequestPipeline,
  readStatus,
  resumeParent,
  type StatusBucket,
  writeStatus,
} from "../../sdk/nats/index.ts";
import { probeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";

/**
 * Resuming a parent whose children have all ended (protocol.md, child tasks,
 * step 3), as a child's worker does, while the parent's own message is still
 * on its task subject: the parent has written WAITING but its ack is not
 * processed yet. The resumer finds the subject taken and must leave the record
 * WAITING: the parent resumes itself once acked, and would find a PENDING
 * record, with no message queued, nothing to resume.
 */
describe("resuming a parent", () => {
  let nats: NatsServer;
  let client: TaskwireClient;
  let nc: NatsConnection;
  let bucket: StatusBucket;
  let requests: RequestPipeline;

  beforeAll(async () => {
    nats = await startNatsServer();
    client = await createClient({ nats: nats.url, services: [probeService] });
    nc = await connect({ servers: nats.url });
    requests = new RequestPipeline(nc);
    bucket = bucketOf(await provisionStatusBucket(nc), requests);
  }, 30_000);

  afterAll(async () => {
    requests?.close();
    await nc?.close();
    await client?.close();
    await nats?.stop();
  });

  it("leaves it WAITING while its own message holds the subject; queues it once that is acked", async () => {
    // No worker: the task's message stays on its subject, as a parent's not yet acked.
    const parent = await client.submitTask(probeService.methods.run, { label: "parent" });
    const subject = `taskwire.task.probe.normal.${taskIdToken(parent.id)}`;
    const queued = await directGet(requests, topology.streamName("probe"), { lastBySubject: subject });
    if (!queued) throw new Error("the parent's message is not queued");
    await parkWorkItem(requests, parent.id, queued.data);
    const waiting = create(TaskStatusSchema, {
      taskId: parent.id,
      workerType: "probe",
      method: "Run",
      state: TaskState.WAITING,
      children: create(ChildrenSchema, { spawned: 0n }),
    });
    await writeStatus(bucket, waiting, 0);

    await resumeParent(bucket, parent.id);
    expect((await readStatus(bucket, parent.id))?.status.state).toBe(TaskState.WAITING);

    // Its message acked (gone): the parent's own resume queues it again, PENDING.
    const jsm = await jetstreamManager(nc);
    await jsm.streams.deleteMessage(topology.streamName("probe"), queued.seq);
    await resumeParent(bucket, parent.id);
    expect((await readStatus(bucket, parent.id))?.status.state).toBe(TaskState.PENDING);
    const resumed = await directGet(requests, topology.streamName("probe"), { lastBySubject: subject });
    expect(resumed && fromBinary(WorkItemSchema, resumed.data).resumes).toBe(1);
  });
});

import { Code } from "@connectrpc/connect";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import type { TaskError } from "../../sdk/core/task-error.ts";
import { createWorker } from "../../worker-runtime/create-worker.ts";
import { probeHandler } from "../fixtures/probe-worker.ts";
import { implementVolatileProbeService, probeService, volatileProbeService } from "../gen/probe/v1/probe_taskwire.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

/**
 * Per-type storage: "probe" keeps its tasks on disk (the default), "volatile"
 * in memory ((taskwire.v1.worker).storage, collective.taskqueue's volatile
 * queues). A nats-server restart keeps the first and loses the second.
 */
describe("volatile and durable worker types", () => {
  let nats: NatsServer;
  let client: TaskwireClient;

  beforeAll(async () => {
    nats = await startNatsServer();
    client = await createClient({ nats: nats.url, services: [probeService, volatileProbeService] });
  }, 30_000);

  afterAll(async () => {
    await client?.close();
    await nats?.stop();
  });

  it("a restart keeps a file type's queued tasks and loses a memory type's", async () => {
    const nc = await connect({ servers: nats.url });
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info("TASKS_volatile")).config.storage).toBe("memory");
    expect((await jsm.streams.info("TASKS_probe")).config.storage).toBe("file");
    await nc.close();

    // A worker of the memory type runs across the restart; its task waits an hour (in memory too).
    const worker = await createWorker({
      nats: nats.url,
      services: [implementVolatileProbeService({ run: probeHandler() })],
    });
    const kept = await client.submitTask(probeService.methods.run, { label: "kept" });
    const lost = await client.submitTask(volatileProbeService.methods.run, { label: "lost" }, { delayMs: 3_600_000 });
    expect((await lost.status()).state).toBe(TaskState.SCHEDULED);

    await nats.restart();
    const keptStatus = await poll(() => kept.status());
    expect(keptStatus.state).toBe(TaskState.PENDING);
    const gone = await poll(() =>
      lost.status().then(
        () => undefined,
        (error: TaskError) => error,
      ),
    );
    expect(gone.code).toBe(Code.NotFound);
    // The type is provisioned again on reconnect: new tasks are accepted, and the worker
    // that ran before the restart runs them.
    const after = await poll(() => client.submitTask(volatileProbeService.methods.run, { label: "after" }));
    try {
      expect((await after.result()).label).toBe("after");
    } finally {
      await worker.close();
    }
  });
});

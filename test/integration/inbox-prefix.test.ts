import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHashServiceClient, hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { hasher } from "../../examples/hash/hash-worker.ts";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { createWorker, type Worker } from "../../worker-runtime/create-worker.ts";
import { exampleDigest } from "../support/deployment.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";

const sha256 = (text: string) => exampleDigest(text, 1);

/**
 * A NATS account that may not subscribe to `_INBOX.>` (as in a shared
 * deployment where each tenant gets its own inbox prefix): a connection made
 * with `inboxPrefix` must get every reply Taskwire asks for below that prefix.
 */
describe("a connection with its own inbox prefix", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let workerNc: NatsConnection;
  let client: TaskwireClient;
  let worker: Worker;

  beforeAll(async () => {
    nats = await startNatsServer({
      config: `authorization {
        users = [
          { user: "worker", password: "w" }
          { user: "tenant", password: "t", permissions: { subscribe: { deny: ["_INBOX.>"] } } }
        ]
      }`,
    });
    workerNc = await connect({ servers: nats.url, user: "worker", pass: "w" });
    worker = await createWorker({ nats: workerNc, services: [hasher] });
    nc = await connect({ servers: nats.url, user: "tenant", pass: "t", inboxPrefix: "_TENANT_A" });
    client = await createClient({ nats: nc, services: [hashService] });
  }, 30_000);

  afterAll(async () => {
    await client?.close();
    await worker?.close();
    await workerNc?.close();
    await nc?.close();
    await nats?.stop();
  });

  it("submits, waits for results (keyed or not), reads and watches status, with every reply below the prefix", async () => {
    const digest = createHashServiceClient(client).digest;
    const plain = await digest({ text: "tenant" });
    const keyed = await digest({ text: "keyed" }, { idempotencyKey: "tenant-key" });
    expect(await plain.result()).toMatchObject({ hex: sha256("tenant") });
    expect(await keyed.result()).toMatchObject({ hex: sha256("keyed") });
    expect((await client.getTask(plain.id)).state).toBe(TaskState.SUCCEEDED);
    const watched: TaskState[] = [];
    for await (const status of client.watchTask(keyed.id)) watched.push(status.state);
    expect(watched).toEqual([TaskState.SUCCEEDED]);
  });
});

import { Code } from "@connectrpc/connect";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashService, implementHashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import type { TaskError } from "../../sdk/core/task-error.ts";
import { createTaskRegistry } from "../../sdk/core/task-registry.ts";
import { createNatsQueueBackend } from "../../sdk/nats/nats-queue-backend.ts";
import { createNatsTaskBackend } from "../../sdk/nats/nats-task-backend.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import { createWorker } from "../../worker-runtime/create-worker.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { poll } from "../support/poll.ts";

const gatewayName = "per-call-gateway";

/**
 * A call leaves nothing behind: whatever a list, watch or get creates
 * (consumers, subscriptions, timers, sockets) is gone once it ends, whether it
 * succeeded, failed or was abandoned by its caller. Measured from outside the
 * gateway where that can be: the server's consumer count (/jsz) and the
 * gateway connection's subscriptions (/connz); the process's own handles by
 * Node's list of active resources.
 */
describe("resources per call", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let gateway: Gateway;
  let client: TaskwireClient;
  let finished: string[];
  let pending: string[];

  beforeAll(async () => {
    nats = await startNatsServer({ monitoring: true });
    nc = await connect({ servers: nats.url, name: gatewayName });
    const tasks = await createNatsTaskBackend({ nc, registry: createTaskRegistry([hashService]) });
    gateway = await createGateway({ backend: tasks, queues: await createNatsQueueBackend({ nc, tasks }) });
    client = await createClient({ gateway: gateway.url });
    // Finished tasks to get and watch, then tasks no worker will run, to watch and abandon.
    const worker = await createWorker({
      nats: nats.url,
      services: [implementHashService({ digest: async ({ text }) => ({ hex: text }) })],
    });
    const handles = await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.submitTask(hashService.methods.digest, { text: `finished ${i}` })),
    );
    for (const handle of handles) await handle.result();
    await worker.close();
    finished = handles.map((h) => h.id);
    const waiting = await Promise.all(
      Array.from({ length: 20 }, () => client.submitTask(hashService.methods.digest, { text: "pending" })),
    );
    pending = waiting.map((h) => h.id);
  }, 30_000);

  afterAll(async () => {
    await client?.close();
    await gateway?.close();
    await nc?.close();
    await nats?.stop();
  });

  const monitor = async <T>(path: string): Promise<T> => (await (await fetch(`${nats.monitorUrl}${path}`)).json()) as T;
  const consumers = () => monitor<{ consumers: number }>("/jsz").then((jsz) => jsz.consumers);
  const subscriptions = () =>
    monitor<{ connections: { name?: string; num_subscriptions: number }[] }>("/connz?subs=1").then(
      (connz) => connz.connections.find((c) => c.name === gatewayName)?.num_subscriptions,
    );
  const handles = () => {
    const counts: Record<string, number> = {};
    for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
    return JSON.stringify(Object.entries(counts).sort());
  };
  const snapshot = async () => ({
    consumers: await consumers(),
    subscriptions: await subscriptions(),
    handles: handles(),
  });

  /** One call of the mix: each kind succeeds, fails or is abandoned. */
  const call = async (i: number): Promise<string> => {
    const pick = (ids: string[]) => ids[i % ids.length] as string;
    const refused = (promise: Promise<unknown>) =>
      promise.then(
        () => "answered",
        (error: TaskError) => Code[error.code],
      );
    switch (i % 6) {
      case 0:
        return refused(client.listTasks({ workerType: "hasher", pageSize: 20 }));
      case 1:
        return refused(client.listTasks({ workerType: "hasher", pageToken: "not-a-token" }));
      case 2:
        return refused(client.getTask(pick(finished)));
      case 3:
        return refused(client.getTask("hasher.01JAAAAAAAAAAAAAAAAAAAAAAA"));
      case 4: {
        let last: TaskState | undefined;
        for await (const status of client.watchTask(pick(finished))) last = status.state;
        return last === TaskState.SUCCEEDED ? "SUCCEEDED" : `state ${last}`;
      }
      default: {
        // Abandoned after the first status: the task never finishes (no worker runs).
        const watch = client.watchTask(pick(pending));
        for await (const status of watch) if (status.state === TaskState.PENDING) break;
        return "abandoned";
      }
    }
  };

  it("a thousand lists, watches and gets leave consumers, subscriptions and handles as they were", async () => {
    // One call of each kind first: what a gateway keeps for good (its connection's
    // inboxes, the HTTP/2 session) exists before the baseline.
    for (let i = 0; i < 6; i++) await call(i);
    // The status feed's consumer of those watches ends 10 s after its last listener.
    const jsm = await jetstreamManager(nc);
    await poll(
      async () => ((await jsm.consumers.list("KV_taskwire_status").next()).length === 0 ? true : undefined),
      30_000,
    );
    const before = await snapshot();

    const outcomes = new Map<string, number>();
    for (let at = 0; at < 1_000; at += 50) {
      const batch = await Promise.all(Array.from({ length: 50 }, (_, i) => call(at + i)));
      for (const outcome of batch) outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    // Every kind ran, and the failures are the refusals asked for.
    expect(Object.fromEntries(outcomes)).toEqual({
      answered: 334,
      InvalidArgument: 167,
      NotFound: 167,
      SUCCEEDED: 166,
      abandoned: 166,
    });
    const after = await poll(async () => {
      const now = await snapshot();
      return JSON.stringify(now) === JSON.stringify(before) ? now : undefined;
    }, 30_000).catch(async () => snapshot());
    expect(after).toEqual(before);
  }, 90_000);
});

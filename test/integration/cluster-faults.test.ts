import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { createClient, type TaskwireClient } from "../../sdk/client/create-client.ts";
import { createTaskRegistry, registryOf } from "../../sdk/core/task-registry.ts";
import { createNatsQueueBackend } from "../../sdk/nats/nats-queue-backend.ts";
import { createNatsTaskBackend } from "../../sdk/nats/nats-task-backend.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import { createSupervisor, type Supervisor } from "../../worker-runtime/create-supervisor.ts";
import {
  accountFaults,
  describeAccount,
  isRetried,
  noShortfalls,
  readUntilAnswered,
  shortfalls,
  submitUntilAcknowledged,
} from "../support/fault-accounting.ts";
import { type NatsCluster, startNatsCluster } from "../support/nats-server.ts";

const tasks = 2000;
/** Codes after which a keyed submit's outcome is unknown, or nothing was done: it is sent again. */

/**
 * The cluster fault suite, in the durable profile (fsync before every ack), on
 * three nats-servers with every stream and bucket at three replicas: keyed tasks
 * through two gateways on different nodes while the node leading the task stream,
 * then the one leading the status bucket, then any node is killed with SIGKILL
 * and restarted, again and again, and then one node is frozen (SIGSTOP: cut off
 * from the cluster and its clients) and thawed. Every acknowledged task must end
 * SUCCEEDED; duplicated executions are counted.
 */
describe("cluster fault suite: leaders killed, a node frozen, on three nodes", () => {
  let cluster: NatsCluster;
  let dir: string;
  let observer: NatsConnection;
  let jsm: JetStreamManager;
  const connections: NatsConnection[] = [];
  const gateways: Gateway[] = [];
  const clients: TaskwireClient[] = [];
  let supervisor: Supervisor;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-cluster-faults-"));
    cluster = await startNatsCluster(3, { syncAlways: true });
    observer = await connect({ servers: cluster.urls, maxReconnectAttempts: -1 });
    jsm = await jetstreamManager(observer);
    // Two gateways, each first on another node.
    for (const first of [0, 1]) {
      const servers = [...cluster.urls.slice(first), ...cluster.urls.slice(0, first)];
      const nc = await connect({ servers, maxReconnectAttempts: -1, noRandomize: true });
      connections.push(nc);
      const backend = await createNatsTaskBackend({
        nc,
        registry: createTaskRegistry([hashService]),
        topology: { replicas: 3 },
      });
      const gateway = await createGateway({
        backend,
        queues: await createNatsQueueBackend({ nc, tasks: backend }),
        typeRegistry: registryOf([hashService]),
      });
      gateways.push(gateway);
      clients.push(await createClient({ gateway: gateway.url, services: [hashService] }));
    }
    supervisor = createSupervisor({
      nats: { servers: cluster.urls },
      replicas: 3,
      ackWaitMs: 2000,
      shutdownGraceMs: 2000,
      restartBackoffMs: 50,
      maxRestartBackoffMs: 500,
      pools: [{ name: "fault", module: "test/fixtures/fault-worker.ts", processes: 2, concurrency: 32 }],
      env: { FAULT_LOG: join(dir, "executions.log") },
      onEvent: () => {},
    });
    await supervisor.ready;
  }, 90_000);

  afterAll(async () => {
    for (const client of clients) await client.close();
    await supervisor?.stop();
    for (const gateway of gateways) await gateway.close();
    for (const nc of connections) await nc.close();
    await observer?.close();
    await cluster?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("loses no acknowledged task and runs no unexpected one; duplicated executions are counted", async () => {
    for (const stream of ["TASKS_hasher", "KV_taskwire_status"]) {
      expect((await jsm.streams.info(stream)).config.num_replicas).toBe(3);
    }
    /** The node (0, 1 or 2) leading a stream now; undefined while it has no leader. */
    const leaderOf = async (stream: string) => {
      const leader = await jsm.streams.info(stream).then(
        (info) => info.cluster?.leader,
        () => undefined,
      );
      return leader === undefined ? undefined : Number(leader.slice(1));
    };
    let faulting = true;
    const kills: string[] = [];
    let freezes = 0;
    const faults = (async () => {
      const targets = ["TASKS_hasher", "KV_taskwire_status", "any"];
      while (faulting) {
        const target = targets[kills.length % targets.length] as string;
        const node = target === "any" ? Math.floor(Math.random() * 3) : await leaderOf(target);
        const server = node === undefined ? undefined : cluster.servers[node];
        if (!server) {
          await sleep(500); // no leader yet: ask again
          continue;
        }
        await server.kill("SIGKILL");
        kills.push(`n${node} (${target === "any" ? "any node" : `leader of ${target}`})`);
        await sleep(1_000 + Math.random() * 1_000);
        await server.restart();
        await sleep(1_500 + Math.random() * 1_000);
        if (kills.length % 3 === 0 && faulting) {
          // One node cut off from everything for a while, as a partition (or a long pause) does.
          const frozen = cluster.servers[Math.floor(Math.random() * 3)];
          await frozen?.kill("SIGSTOP");
          await sleep(5_000);
          await frozen?.kill("SIGCONT");
          freezes++;
          await sleep(1_500);
        }
      }
    })();

    const acknowledged = new Set<string>();
    let submitRetries = 0;
    const submitOne = async (i: number) => {
      const client = clients[i % clients.length] as TaskwireClient;
      const { id, retries } = await submitUntilAcknowledged(client, `cluster-fault-${i}`, isRetried, 100);
      acknowledged.add(id);
      submitRetries += retries;
    };
    // The faults strike while tasks are submitted, again and again: the tasks come in six
    // parts, the n-th once n faults have struck (a freeze follows every third kill).
    const parts = 6;
    const struck = async (count: number) => {
      while (kills.length + freezes < count) await sleep(100);
    };
    let next = 0;
    await Promise.all(
      Array.from({ length: 40 }, async () => {
        while (next < tasks) {
          const i = next++;
          await struck(Math.floor((i * parts) / tasks));
          await submitOne(i);
        }
      }),
    );
    faulting = false;
    await faults;

    const account = await accountFaults(
      acknowledged,
      (id) => readUntilAnswered(clients[0] as TaskwireClient, id),
      [join(dir, "executions.log")],
      120_000,
    );
    console.log(
      `cluster fault suite: ${tasks} tasks through 2 gateways, ${acknowledged.size} acknowledged ` +
        `(${submitRetries} submit retries); ${kills.length} node kills (${kills.join(", ")}), ${freezes} node freezes; ` +
        describeAccount(account),
    );
    expect(acknowledged.size).toBe(tasks);
    expect(kills.length).toBeGreaterThanOrEqual(4);
    expect(freezes).toBeGreaterThanOrEqual(1);
    expect(shortfalls(account)).toEqual(noShortfalls);
  }, 300_000);
});

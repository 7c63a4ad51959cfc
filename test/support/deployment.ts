import { createHash } from "node:crypto";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { TaskServiceDefinition } from "../../sdk/core/task-method.ts";
import { createTaskRegistry } from "../../sdk/core/task-registry.ts";
import { createNatsQueueBackend } from "../../sdk/nats/nats-queue-backend.ts";
import { createNatsTaskBackend } from "../../sdk/nats/nats-task-backend.ts";
import { ScheduleStore } from "../../sdk/nats/schedule-store.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import type { GatewayOptions } from "../../server/gateway-options.ts";
import { createSupervisor, type PoolOptions, type Supervisor } from "../../worker-runtime/create-supervisor.ts";
import { type NatsServer, startNatsServer } from "./nats-server.ts";

/** A whole deployment on loopback: nats-server, a gateway and supervised worker processes. */
export interface TestDeployment {
  readonly nats: NatsServer;
  /** The gateway's NATS connection. */
  readonly nc: NatsConnection;
  readonly gateway: Gateway;
  readonly supervisor: Supervisor;
  /** Stops everything, in reverse order. */
  stop(): Promise<void>;
}

/**
 * Starts a real nats-server, a gateway serving `services` (TaskService,
 * QueueService, ScheduleService, typed routes, reflection) and a supervisor running `pools`;
 * resolves once every worker process is ready.
 */
export async function startDeployment(
  services: readonly TaskServiceDefinition[],
  pools: PoolOptions[],
  gatewayOptions: Partial<GatewayOptions> = {},
): Promise<TestDeployment> {
  const nats = await startNatsServer();
  const nc = await connect({ servers: nats.url });
  const registry = createTaskRegistry(services);
  const backend = await createNatsTaskBackend({ nc, registry });
  const schedules = new ScheduleStore(nc, registry, backend);
  const gateway = await createGateway({
    backend,
    services,
    queues: await createNatsQueueBackend({ nc, tasks: backend }),
    schedules,
    ...gatewayOptions,
  });
  const supervisor = createSupervisor({ nats: nats.url, shutdownGraceMs: 5000, pools });
  await supervisor.ready;
  return {
    nats,
    nc,
    gateway,
    supervisor,
    async stop() {
      await supervisor.stop();
      await gateway.close();
      schedules.close();
      await backend.close();
      await nc.close();
      await nats.stop();
    },
  };
}

/** The digest examples/hash/hash-worker.ts computes: sha256 of the text, then of each digest, `rounds` in all. */
export function exampleDigest(text: string, rounds: number): string {
  let digest = createHash("sha256").update(text).digest();
  for (let i = 1; i < rounds; i++) digest = createHash("sha256").update(digest).digest();
  return digest.toString("hex");
}

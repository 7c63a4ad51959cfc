import type { Deployment } from "./deployment.ts";
import { echoWorker } from "./processes.ts";
import type { TargetSpec } from "./target.ts";

/** The systems `npm run bench` compares. Ratios refer to them by id. */
export type RunId =
  | "raw"
  | "raw-stored"
  | "raw-protocol"
  | "direct"
  | "direct-protobuf-es"
  | "direct-batch"
  | "direct-keyed"
  | "gateway-connect"
  | "gateway-connect-batch"
  | "gateway-grpc"
  | "gateway-grpc-batch"
  | "bullmq";

/** One row of the table: a system deployed afresh and measured by its own client process. */
export interface Run {
  readonly id: RunId;
  readonly label: string;
  /** Submits go in batches (BatchSubmit, addBulk) rather than one task per call. */
  readonly batched: boolean;
  /** Whether the low-load latency is measured (not for batches: a batch of one is a single submit). */
  readonly latency: boolean;
  /** Environment of every process of the run (over the bench's own). */
  readonly env?: Readonly<Record<string, string>>;
  /** Starts the servers and the worker (and gateway) processes; returns what the client connects to. */
  deploy(deployment: Deployment): Promise<TargetSpec>;
}

/** A nats-server and the Taskwire worker. */
async function deployTaskwire(deployment: Deployment): Promise<string> {
  const nats = await deployment.nats();
  await deployment.child("worker", echoWorker.script, { env: echoWorker.env(nats.url) });
  return nats.url;
}

function directRun(mode: "typed" | "protobuf-es" | "batch" | "keyed"): Run {
  const batched = mode === "batch";
  const labels = {
    typed: "typed client",
    "protobuf-es": "typed client, protobuf-es codec",
    batch: "submitBatch",
    keyed: "typed client, idempotency keys",
  };
  return {
    id: mode === "typed" ? "direct" : `direct-${mode}`,
    label: `Taskwire direct (SDK over NATS), ${labels[mode]}`,
    batched,
    latency: !batched,
    // Client and worker encode and decode with protobuf-es instead of sdk/wire/wire-codec.ts.
    env: mode === "protobuf-es" ? { TASKWIRE_CODEC: "protobuf-es" } : undefined,
    async deploy(deployment) {
      return { kind: "taskwire-direct", nats: await deployTaskwire(deployment), keyed: mode === "keyed" };
    },
  };
}

/** The raw JetStream limits: the consumer process, with its arguments after the NATS URL. */
function rawRun(id: RunId, label: string, args: string[]): Run {
  return {
    id,
    label,
    batched: false,
    latency: true,
    async deploy(deployment) {
      const nats = await deployment.nats();
      await deployment.child("worker", "bench/systems/raw-consumer.ts", { args: [nats.url, ...args] });
      return { kind: "raw-jetstream", nats: nats.url };
    },
  };
}

function gatewayRun(protocol: "connect" | "grpc", batched: boolean): Run {
  return {
    id: `gateway-${protocol}${batched ? "-batch" : ""}`,
    label: `Taskwire gateway, ${protocol}, ${batched ? "submitBatch" : "typed client"}`,
    batched,
    latency: !batched,
    async deploy(deployment) {
      const nats = await deployTaskwire(deployment);
      const gateway = await deployment.child("gateway", "bench/systems/gateway-process.ts", { args: [nats] });
      return { kind: "taskwire-gateway", url: String(gateway.ready.url), protocol };
    },
  };
}

export const runs: readonly Run[] = [
  rawRun("raw", "raw JetStream (publish, consume+ack)", []),
  rawRun("raw-stored", "raw JetStream, result stored (publish, consume, store, ack)", ["--store-results"]),
  {
    id: "raw-protocol",
    label: "raw JetStream, Taskwire's messages (no SDK work per task)",
    batched: false,
    latency: true,
    async deploy(deployment) {
      const nats = await deployment.nats();
      await deployment.child("worker", "bench/systems/protocol-consumer.ts", { args: [nats.url] });
      return { kind: "protocol-floor", nats: nats.url };
    },
  },
  directRun("typed"),
  directRun("protobuf-es"),
  directRun("batch"),
  directRun("keyed"),
  gatewayRun("connect", false),
  gatewayRun("connect", true),
  gatewayRun("grpc", false),
  gatewayRun("grpc", true),
  {
    id: "bullmq",
    label: "BullMQ (addBulk, Redis)",
    batched: true,
    latency: true,
    async deploy(deployment) {
      const redis = await deployment.redis();
      await deployment.child("worker", "bench/systems/bullmq-worker.ts", { args: [String(redis.port)] });
      return { kind: "bullmq", redisPort: redis.port };
    },
  },
];

import { fromJson, type JsonValue, toJson, toJsonString } from "@bufbuild/protobuf";
import { TaskStatusSchema } from "../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../sdk/client/index.ts";
import type { TaskServiceDefinition } from "../sdk/core/index.ts";
import {
  createTaskRegistry,
  isTerminal,
  loadDefinitions,
  registryOf,
  stateName,
  TaskError,
} from "../sdk/core/index.ts";
import { createNatsQueueBackend, createNatsTaskBackend, openConnection } from "../sdk/nats/index.ts";
import { createGateway } from "../server/index.ts";
import { createSupervisor, type Supervisor } from "../worker-runtime/index.ts";
import type { TaskwireConfig } from "./load-config.ts";
import { submitFromFile } from "./submit-from-file.ts";

/** A running part of Taskwire that a command stops on SIGINT/SIGTERM. */
export interface Stoppable {
  stop(): Promise<void>;
}

/** Starts the gateway of the config; resolves once it listens. */
export async function runGateway(
  config: TaskwireConfig,
  log = console.log,
): Promise<Stoppable & { url: string; firstService: TaskServiceDefinition | undefined }> {
  if (config.gateway.services.length === 0) {
    throw new Error(
      `${config.path}: gateway.services lists no generated *_taskwire modules: the gateway would accept nothing`,
    );
  }
  const definitions = await loadDefinitions(config.gateway.services);
  const { nc } = await openConnection(config.nats.url, "taskwire-gateway").catch((error: TaskError) => {
    throw new TaskError(`${error.rawMessage} (is nats-server running? "taskwire dev" starts one)`, error.code);
  });
  const backend = await createNatsTaskBackend({
    nc,
    registry: createTaskRegistry(definitions),
    topology: { ackWaitMs: config.worker.ackWaitMs },
  });
  const gateway = await createGateway({
    backend,
    queues: await createNatsQueueBackend({ nc, tasks: backend }),
    host: config.gateway.host,
    port: config.gateway.port,
    services: definitions,
  });
  log(`taskwire gateway on ${gateway.url} (worker types: ${definitions.map((d) => d.workerType).join(", ")})`);
  return {
    url: gateway.url,
    // The configuration's own first service, for the banner's example.
    firstService: definitions[0],
    async stop() {
      await gateway.close();
      await nc.drain();
    },
  };
}

/** Starts the supervisor with the config's worker pools. */
export function runWorkers(config: TaskwireConfig): Supervisor {
  if (config.worker.pools.length === 0)
    throw new Error(`${config.path}: worker.pools is empty: there is nothing to run`);
  return createSupervisor({
    nats: config.nats.url,
    pools: config.worker.pools,
    shutdownGraceMs: config.worker.shutdownGraceMs,
    ackWaitMs: config.worker.ackWaitMs,
  });
}

/** Options of the client-side commands. */
export interface ClientCommandOptions {
  /** The gateway URL; without it, the config's gateway. */
  gateway?: string;
}

/** `taskwire submit <type>/<Method> --json '{...}' [--wait]`: prints the task id, or the result with --wait. */
export async function submitCommand(
  config: TaskwireConfig,
  target: string,
  json: string,
  wait: boolean,
  options: ClientCommandOptions,
  out = console.log,
): Promise<void> {
  const method = resolveTarget(await loadDefinitions(config.gateway.services), target);
  let payload: JsonValue;
  try {
    payload = JSON.parse(json) as JsonValue;
  } catch (error) {
    throw new Error(`--json is not valid JSON: ${(error as Error).message}`);
  }
  const request = fromJson(method.input, payload);
  await withClient(config, options, async (client) => {
    const handle = await client.submitTask(method, request);
    if (!wait) return out(handle.id);
    const result = await handle.result();
    out(toJsonString(method.output, result));
  });
}

/**
 * `taskwire submit <type>/<Method> --from tasks.jsonl [--checkpoint NAME]`.
 * Through the gateway; with a checkpoint, directly over NATS (checkpoints live
 * in JetStream).
 */
export async function submitFileCommand(
  config: TaskwireConfig,
  target: string,
  path: string,
  options: ClientCommandOptions & { checkpoint?: string },
  out = console.log,
): Promise<void> {
  const definitions = await loadDefinitions(config.gateway.services);
  const method = resolveTarget(definitions, target);
  const client =
    options.checkpoint === undefined
      ? await createClient({ gateway: options.gateway ?? `http://${config.gateway.host}:${config.gateway.port}` })
      : await createClient({ nats: config.nats.url, services: definitions });
  try {
    await submitFromFile(client, method, path, { checkpoint: options.checkpoint, progress: process.stderr, out });
  } finally {
    await client.close();
  }
}

function resolveTarget(definitions: TaskServiceDefinition[], target: string) {
  const [workerType, methodName] = target.split("/");
  if (!workerType || !methodName) throw new Error(`"${target}" is not <worker type>/<Method>, e.g. hasher/Digest`);
  return createTaskRegistry(definitions).resolve(workerType, methodName);
}

/** `taskwire status <id>`: prints the task's status as JSON. */
export async function statusCommand(
  config: TaskwireConfig,
  id: string,
  options: ClientCommandOptions,
  out = console.log,
) {
  const registry = registryOf(await loadDefinitions(config.gateway.services));
  await withClient(config, options, async (client) => {
    out(JSON.stringify(toJson(TaskStatusSchema, await client.getTask(id), { registry }), null, 2));
  });
}

/** `taskwire watch <id>`: prints one line per status change until a terminal state. */
export async function watchCommand(
  config: TaskwireConfig,
  id: string,
  options: ClientCommandOptions,
  out = console.log,
) {
  await withClient(config, options, async (client) => {
    for await (const status of client.watchTask(id)) {
      const progress = status.progress
        ? ` ${Math.round(status.progress.fraction * 100)}% ${status.progress.message}`
        : "";
      out(`${new Date().toISOString()} ${stateName(status.state)}${progress}`);
      if (isTerminal(status.state)) return;
    }
  });
}

async function withClient(
  config: TaskwireConfig,
  options: ClientCommandOptions,
  run: (client: TaskwireClient) => Promise<void>,
) {
  const client = await createClient({
    gateway: options.gateway ?? `http://${config.gateway.host}:${config.gateway.port}`,
  });
  try {
    await run(client);
  } finally {
    await client.close();
  }
}

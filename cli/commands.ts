import { hostname } from "node:os";
import { create, fromJson, type JsonValue, toJson, toJsonString } from "@bufbuild/protobuf";
import { anyPack, durationFromMs, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Schedule, ScheduleSchema } from "../gen/taskwire/v1/schedule_service_pb.ts";
import { OverlapPolicy, TaskStatusSchema } from "../gen/taskwire/v1/task_pb.ts";
import { createClient, type TaskwireClient } from "../sdk/client/index.ts";
import type { TaskServiceDefinition } from "../sdk/core/index.ts";
import {
  createTaskRegistry,
  deferredBackends,
  isTerminal,
  loadDefinitions,
  planOf,
  registryOf,
  stateName,
  TaskError,
  type TaskRegistry,
} from "../sdk/core/index.ts";
import {
  createNatsQueueBackend,
  createNatsTaskBackend,
  describeServers,
  openConnection,
  type Scheduling,
  startScheduling,
} from "../sdk/nats/index.ts";
import { createGateway } from "../server/index.ts";
import {
  createSupervisor,
  type Housekeeping,
  keepHouse,
  type Supervisor,
  serveSupervisorMetrics,
} from "../worker-runtime/index.ts";
import { type TaskTypes, taskTypesOfGateway } from "./gateway-task-types.ts";
import type { TaskwireConfig } from "./load-config.ts";
import { submitFromFile } from "./submit-from-file.ts";

/** A running part of Taskwire that a command stops on SIGINT/SIGTERM. */
export interface Stoppable {
  stop(): Promise<void>;
  /** Rejects when the part fails by itself (a pool given up, NATS refusing the gateway): the command stops and exits 1. */
  readonly failed?: Promise<never>;
}

/**
 * Starts the gateway of the config; resolves once it listens. NATS that does
 * not answer yet is waited for: meanwhile calls fail UNAVAILABLE and health is
 * NOT_SERVING. A NATS that refuses the gateway (its login, its permissions)
 * rejects `failed`.
 */
export async function runGateway(
  config: TaskwireConfig,
  log = console.log,
): Promise<
  Stoppable & {
    url: string;
    /** The web console's address, or undefined when the gateway serves none. */
    consoleUrl: string | undefined;
    firstService: TaskServiceDefinition | undefined;
    reloadTls(): void;
    /** Resolves once NATS is reached and the types provisioned: the gateway serves. */
    connected: Promise<void>;
  }
> {
  if (config.gateway.services.length === 0) {
    throw new Error(
      `${config.path}: gateway.services lists no generated *_taskwire modules: the gateway would accept nothing`,
    );
  }
  const definitions = await loadDefinitions(config.gateway.services);
  const registry = createTaskRegistry(definitions);
  // Checked before anything starts: a bad entry stops the gateway, naming it.
  const declared = declaredInConfig(config, registry);
  const where = describeServers(config.nats.connection);
  const closing = new AbortController();
  const connected = openConnection(config.nats.connection, "taskwire-gateway", {
    signal: closing.signal,
    onWaiting: (reason) => log(`taskwire gateway: waiting for NATS at ${where}: ${reason}`),
  });
  let scheduling: Scheduling | undefined;
  let housekeeping: Housekeeping | undefined;
  const ready = connected.then(async ({ nc }) => {
    try {
      const topology = { ackWaitMs: config.worker.ackWaitMs, replicas: config.nats.replicas, ...config.retention };
      const tasks = await createNatsTaskBackend({ nc, registry, topology });
      // The gateway fires a share of its types' schedules too: they fire while any gateway or worker runs.
      scheduling = await startScheduling(nc, registry, {
        tasks,
        topology,
        declared,
        onError: (error) => log(`taskwire gateway: firing a schedule: ${TaskError.from(error).rawMessage}`),
      });
      // And moves due tasks and queues keyed ones, as workers do: workers in other languages only run tasks.
      // Without the permissions for it (docs/security.md), it serves all the same, and says so.
      const onError = (error: unknown, doing: string) =>
        log(`taskwire gateway: ${doing}: ${TaskError.from(error).rawMessage}`);
      housekeeping = await keepHouse(nc, definitions, {
        holder: `gateway-${hostname()}-${process.pid}`,
        topology,
        onError,
      }).catch((error) => {
        onError(error, "moving due tasks and queueing keyed tasks");
        return undefined;
      });
      return { tasks, queues: await createNatsQueueBackend({ nc, tasks }), schedules: scheduling.store };
    } catch (error) {
      await nc.close();
      throw error;
    }
  });
  const backends = deferredBackends(ready, `not connected to NATS at ${where} yet`);
  const gateway = await createGateway({
    backend: backends.tasks,
    queues: backends.queues,
    schedules: backends.schedules,
    host: config.gateway.host,
    port: config.gateway.port,
    services: definitions,
    ...(config.gateway.auth ? { auth: config.gateway.auth } : {}),
    limits: config.gateway.limits,
    ...(config.gateway.tls ? { tls: config.gateway.tls } : {}),
    ...(config.gateway.allowedHosts ? { allowedHosts: config.gateway.allowedHosts } : {}),
    ...(config.gateway.console ? {} : { console: false }),
  }).catch((error: Error) => {
    closing.abort();
    // The gateway checks permissions as it starts: say which file and block they are in.
    if (/^(auth|limits)\./.test(error.message)) throw new Error(`${config.path}: gateway.${error.message}`);
    throw error;
  });
  log(`taskwire gateway on ${gateway.url} (worker types: ${definitions.map((d) => d.workerType).join(", ")})`);
  void ready.then(
    () => log(`taskwire gateway: connected to NATS at ${where}: serving`),
    () => undefined,
  );
  const failed = ready.then(
    () => new Promise<never>(() => {}),
    (error: TaskError) => {
      throw new TaskError(`${error.rawMessage} (is nats-server running? "taskwire dev" starts one)`, error.code);
    },
  );
  failed.catch(() => undefined); // read by the command; never an unhandled rejection
  return {
    url: gateway.url,
    consoleUrl: gateway.consoleUrl,
    // The configuration's own first service, for the banner's example.
    firstService: definitions[0],
    reloadTls: () => gateway.reloadTls(),
    connected: ready.then(() => undefined),
    failed,
    async stop() {
      closing.abort();
      await gateway.close();
      await scheduling?.close();
      await housekeeping?.stop();
      const nc = await connected.then(
        ({ nc }) => nc,
        () => undefined,
      );
      if (nc && !nc.isClosed()) await nc.drain();
    },
  };
}

/** Starts the supervisor with the config's worker pools. */
export function runWorkers(config: TaskwireConfig): Supervisor {
  if (config.worker.pools.length === 0)
    throw new Error(`${config.path}: worker.pools is empty: there is nothing to run`);
  return createSupervisor({
    nats: config.nats.connection,
    pools: config.worker.pools,
    shutdownGraceMs: config.worker.shutdownGraceMs,
    ackWaitMs: config.worker.ackWaitMs,
    replicas: config.nats.replicas,
    retention: config.retention,
    ...config.worker.restarts,
  });
}

/**
 * Serves the supervisor's worker processes' metrics where `where` says (the
 * config's `worker.metrics`); an address it cannot listen on is an error
 * naming that key.
 */
export async function serveWorkerMetrics(
  config: TaskwireConfig,
  supervisor: Supervisor,
  where: { readonly host: string; readonly port: number },
): Promise<Stoppable & { readonly url: string }> {
  const server = await serveSupervisorMetrics(supervisor, where).catch((error: Error) => {
    throw new Error(`${config.path}: worker.metrics: ${error.message}`);
  });
  return { url: server.url, stop: () => server.close() };
}

/** Where the client-side commands send their calls, and what they know of the task types. */
export interface ClientTarget {
  /** The gateway's URL. */
  readonly gateway: string;
  /** The credential sent with each call (TASKWIRE_TOKEN or --token-file), if any. */
  readonly token: string | undefined;
  /** The CA an https:// gateway's certificate is checked against (--ca or TASKWIRE_CA), else the system's. */
  readonly ca: Buffer | undefined;
  /** Learnt when first needed: `watch` needs none. */
  types(): Promise<TaskTypes>;
}

/** The config's gateway, and the task types of its generated modules. */
export function targetOfConfig(config: TaskwireConfig, token?: string, ca?: Buffer): ClientTarget {
  return {
    gateway: `${config.gateway.tls ? "https" : "http"}://${config.gateway.host}:${config.gateway.port}`,
    token,
    ca,
    async types() {
      const definitions = await loadDefinitions(config.gateway.services);
      const registry = createTaskRegistry(definitions);
      return {
        registry: registryOf(definitions),
        resolve(target) {
          const [workerType, methodName] = target.split("/");
          if (!workerType || !methodName)
            throw new Error(`"${target}" is not <worker type>/<Method>, e.g. hasher/Digest`);
          return registry.resolve(workerType, methodName);
        },
      };
    },
  };
}

/** A gateway named on the command line: the task types come from its reflection. */
export function targetOfGateway(gateway: string, token?: string, ca?: Buffer): ClientTarget {
  if (!URL.canParse(gateway) || !/^https?:$/.test(new URL(gateway).protocol))
    throw new Error(`--gateway "${gateway}" is not an http:// or https:// URL, e.g. http://127.0.0.1:8080`);
  let types: Promise<TaskTypes> | undefined;
  return { gateway, token, ca, types: () => (types ??= taskTypesOfGateway(gateway, token, ca)) };
}

/** `taskwire submit <type>/<Method> --json '{...}' [--wait]`: prints the task id, or the result with --wait. */
export async function submitCommand(
  target: ClientTarget,
  task: string,
  json: string,
  wait: boolean,
  out = console.log,
): Promise<void> {
  const types = await target.types();
  const method = types.resolve(task);
  let payload: JsonValue;
  try {
    payload = JSON.parse(json) as JsonValue;
  } catch (error) {
    throw new Error(`--json is not valid JSON: ${(error as Error).message}`);
  }
  const request = fromJson(method.input, payload, { registry: types.registry });
  await withClient(target, async (client) => {
    const handle = await client.submitTask(method, request);
    if (!wait) return out(handle.id);
    const result = await handle.result();
    out(toJsonString(method.output, result, { registry: types.registry }));
  });
}

/**
 * `taskwire submit <type>/<Method> --from tasks.jsonl [--checkpoint NAME]`.
 * Through the gateway; with a checkpoint, directly over NATS (checkpoints live
 * in JetStream), which needs the config.
 */
export async function submitFileCommand(
  target: ClientTarget,
  config: TaskwireConfig | undefined,
  task: string,
  path: string,
  checkpoint: string | undefined,
  out = console.log,
): Promise<void> {
  const method = (await target.types()).resolve(task);
  let client: TaskwireClient;
  if (checkpoint === undefined) client = await createClient(gatewayClientOptions(target));
  else if (config)
    client = await createClient({
      nats: config.nats.connection,
      services: await loadDefinitions(config.gateway.services),
    });
  else throw new Error("--checkpoint keeps its place in JetStream: it needs a taskwire.yaml naming the NATS server");
  try {
    await submitFromFile(client, method, path, { checkpoint, progress: process.stderr, out });
  } finally {
    await client.close();
  }
}

/** `taskwire status <id>`: prints the task's status as JSON. */
export async function statusCommand(target: ClientTarget, id: string, out = console.log) {
  const { registry } = await target.types();
  await withClient(target, async (client) => {
    out(JSON.stringify(toJson(TaskStatusSchema, await client.getTask(id), { registry }), null, 2));
  });
}

/** `taskwire watch <id>`: prints one line per status change until a terminal state. */
export async function watchCommand(target: ClientTarget, id: string, out = console.log) {
  await withClient(target, async (client) => {
    for await (const status of client.watchTask(id)) {
      const progress = status.progress
        ? ` ${Math.round(status.progress.fraction * 100)}% ${status.progress.message}`
        : "";
      out(`${new Date().toISOString()} ${stateName(status.state)}${progress}`);
      if (isTerminal(status.state)) return;
    }
  });
}

/**
 * Runs `run` with a client of the target's gateway, and closes it. A gateway
 * that cannot be reached (or is without NATS) is an error naming it.
 */
export async function withClient(target: ClientTarget, run: (client: TaskwireClient) => Promise<void>) {
  const client = await createClient(gatewayClientOptions(target));
  try {
    await run(client);
  } catch (error) {
    // Unreachable (connection refused, no such host), or without NATS: say which gateway.
    if (error instanceof ConnectError && error.code === Code.Unavailable)
      throw new Error(`the gateway at ${target.gateway} is unavailable: ${error.rawMessage}`, { cause: error });
    throw error;
  } finally {
    await client.close();
  }
}

/** The SDK's options for the target's gateway: its URL, credential and CA. */
function gatewayClientOptions(target: ClientTarget) {
  return {
    gateway: target.gateway,
    ...(target.token === undefined ? {} : { token: target.token }),
    ...(target.ca === undefined ? {} : { tls: { ca: target.ca } }),
  };
}

/**
 * taskwire.yaml's schedules as definitions, each checked against the gateway's
 * task types; an error names the entry and what is wrong with it.
 */
export function declaredInConfig(config: TaskwireConfig, registry: TaskRegistry): Schedule[] {
  return config.schedules.map((entry) => {
    try {
      const method = registry.resolve(entry.workerType, entry.method);
      const schedule = create(ScheduleSchema, {
        workerType: entry.workerType,
        scheduleId: entry.id,
        spec: {
          cron: entry.cron,
          timeZone: entry.timeZone,
          every: entry.everyMs === undefined ? undefined : durationFromMs(entry.everyMs),
          startAt: entry.startAt && timestampFromDate(entry.startAt),
          endAt: entry.endAt && timestampFromDate(entry.endAt),
          jitter: entry.jitterMs === undefined ? undefined : durationFromMs(entry.jitterMs),
        },
        task: {
          workerType: entry.workerType,
          method: entry.method,
          payload: anyPack(method.input, fromJson(method.input, entry.payload as JsonValue)),
        },
        overlap: { skip: OverlapPolicy.SKIP, buffer_one: OverlapPolicy.BUFFER_ONE, allow_all: OverlapPolicy.ALLOW_ALL }[
          entry.overlap ?? "skip"
        ],
        catchupWindow: entry.catchupWindowMs === undefined ? undefined : durationFromMs(entry.catchupWindowMs),
        description: entry.description,
      });
      planOf(schedule);
      return schedule;
    } catch (error) {
      throw new Error(`${entry.where}: ${TaskError.from(error).rawMessage}`);
    }
  });
}

import { create, type DescMessage } from "@bufbuild/protobuf";
import type { Interceptor, Transport } from "@connectrpc/connect";
import type { NatsConnection } from "@nats-io/transport-node";
import { type Task, TaskErrorSchema, type TaskStatus } from "../../gen/taskwire/v1/task_pb.ts";
import {
  type ListTasksRequest,
  ListTasksRequestSchema,
  type ListTasksResponse,
} from "../../gen/taskwire/v1/task_service_pb.ts";
import type {
  QueueBackend,
  RetentionSettings,
  ScheduleBackend,
  StatusStream,
  SubmitLimits,
  TaskBackend,
  TaskClient,
  TaskHandle,
  TaskMethod,
  TaskServiceDefinition,
} from "../core/index.ts";
import { createTaskRegistry, TaskError, taskFromOptions } from "../core/index.ts";
import {
  createConnectQueueBackend,
  createConnectScheduleBackend,
  createConnectTaskBackend,
  createGatewayTransport,
  type GatewayProtocol,
  type GatewaySessionOptions,
  withInterceptors,
} from "../gateway-client/index.ts";
import {
  createNatsQueueBackend,
  createNatsTaskBackend,
  type NatsConnectionSettings,
  openConnection,
  ScheduleStore,
} from "../nats/index.ts";
import { kvCheckpoints } from "./kv-checkpoints.ts";
import {
  type CheckpointStore,
  type SubmitItem,
  type SubmitManyOptions,
  type SubmitManySummary,
  submitMany,
} from "./submit-many.ts";
import { createTaskHandle, watchStatus } from "./task-handle.ts";

/** Talk to a Taskwire gateway over HTTP. */
export interface GatewayClientOptions extends GatewaySessionOptions {
  /** The gateway's base URL, e.g. `http://127.0.0.1:8080` or `https://tasks.example.com`. */
  gateway: string;
  /**
   * "connect" (binary Connect) or "grpc", over one HTTP/2 session; cleartext
   * for an http:// URL, TLS (see `tls`) for https://. @default "connect"
   */
  protocol?: GatewayProtocol;
  /** Headers sent with every call. */
  headers?: ConstructorParameters<typeof Headers>[0];
  /**
   * A credential the gateway accepts (an API key or a JWT), sent with every call
   * as `authorization: Bearer <token>`.
   */
  token?: string;
  /** Connect interceptors run around every call, the first outermost. */
  interceptors?: Interceptor[];
}

/**
 * Talk to a gateway through a transport of your own, such as connect-node's
 * `createConnectTransport` or `createGrpcTransport` with its own options.
 */
export interface TransportClientOptions {
  /** The transport every call goes through; the client does not close it. */
  transport: Transport;
}

/** Talk to NATS JetStream directly, for services inside the cluster. */
export interface DirectClientOptions {
  /** A server URL or connection settings (the client connects and closes it), or an open connection (left open). */
  nats: string | NatsConnectionSettings | NatsConnection;
  /** The task services this client may submit, e.g. `[hashService]`. */
  services: TaskServiceDefinition[];
  /** Limits checked before anything reaches NATS. */
  limits?: SubmitLimits;
  /**
   * How long `result()` trusts the pushed outcome of a task this client
   * submitted to come alone, from the task's acceptance; after that it also reads the task's status record,
   * in batches with other such tasks, at intervals that double up to 30 s
   * (a push is lost while the connection is down; for a keyed task, also if its
   * worker dies right after the write, or another client cancels it). @default 5_000
   */
  resultGraceMs?: number;
  /**
   * Copies a NATS cluster keeps of the streams and buckets this client creates
   * (1, 3 or 5). Those in place keep theirs: `taskwire migrate` changes them.
   * @default each type's `(taskwire.v1.worker).replicas`, else 1
   */
  replicas?: number;
  /**
   * The deployment's retention, for the streams and buckets this client creates
   * (those in place keep theirs). A type's own `(taskwire.v1.worker).retention` wins.
   * @default statuses and dead letters 7 days
   */
  retention?: RetentionSettings;
}

/** The Taskwire client: typed submits through generated clients, plus task queries. */
export interface TaskwireClient extends TaskClient {
  /** A handle on an existing task; `output` types its result. */
  task<O extends DescMessage>(id: string, output: O): TaskHandle<O>;
  /** The task's current status. */
  getTask(id: string): Promise<TaskStatus>;
  /** Follows a task's status until a terminal state. */
  watchTask(id: string): StatusStream;
  /** Cancels a task. */
  cancelTask(id: string, reason?: string): Promise<TaskStatus>;
  /** Lists tasks, newest first. */
  listTasks(request?: Partial<Omit<ListTasksRequest, "$typeName" | "$unknown">>): Promise<ListTasksResponse>;
  /**
   * Submits every item of a (possibly endless, lazily produced) sequence, with
   * at most `maxInFlight` unacknowledged, optionally resumable under a
   * checkpoint name (direct mode). Resolves with counts and the first refusals.
   */
  submitMany<I extends DescMessage>(
    method: TaskMethod<I>,
    items: Iterable<SubmitItem<I>> | AsyncIterable<SubmitItem<I>>,
    options?: SubmitManyOptions,
  ): Promise<SubmitManySummary>;
  /** Operates worker types' queues: counts, pause and resume, purge, dead letters. */
  readonly queues: QueueBackend;
  /** Recurring tasks: create, change, pause, trigger and preview schedules. */
  readonly schedules: ScheduleBackend;
  /** Closes what the client opened. Idempotent. */
  close(): Promise<void>;
}

/**
 * Creates a client in gateway mode (`{ gateway: url }`, or `{ transport }` with a
 * Connect transport of your own) or direct mode (`{ nats: url, services }`). All
 * have the same API.
 *
 * ```ts
 * const client = await createClient({ gateway: "http://127.0.0.1:8080" });
 * const hashes = createHashServiceClient(client);
 * const task = await hashes.digest({ text: "hello" });
 * console.log((await task.result()).hex);
 * ```
 */
export async function createClient(
  options: GatewayClientOptions | TransportClientOptions | DirectClientOptions,
): Promise<TaskwireClient> {
  if ("transport" in options) {
    const { transport } = options;
    return clientOf(
      createConnectTaskBackend(transport),
      createConnectQueueBackend(transport),
      createConnectScheduleBackend(transport),
      undefined,
      async () => {},
    );
  }
  if ("gateway" in options) {
    const own = createGatewayTransport(options.gateway, withToken(options));
    const transport = withInterceptors(own, options.interceptors ?? [], options.gateway);
    return clientOf(
      createConnectTaskBackend(transport),
      createConnectQueueBackend(transport),
      createConnectScheduleBackend(transport),
      undefined,
      async () => own.close(),
    );
  }
  const { nc, owned } = await openConnection(options.nats);
  try {
    const registry = createTaskRegistry(options.services);
    const backend = await createNatsTaskBackend({
      nc,
      registry,
      limits: options.limits,
      resultGraceMs: options.resultGraceMs,
      topology: { replicas: options.replicas, ...options.retention },
    });
    const queues = await createNatsQueueBackend({ nc, tasks: backend });
    const schedules = new ScheduleStore(nc, registry, backend, { replicas: options.replicas });
    return clientOf(backend, queues, schedules, kvCheckpoints(nc, { replicas: options.replicas }), async () => {
      schedules.close();
      await backend.close();
      if (owned) await nc.close();
    });
  } catch (error) {
    if (owned) await nc.close();
    throw error;
  }
}

function clientOf(
  backend: TaskBackend,
  queues: QueueBackend,
  schedules: ScheduleBackend,
  checkpoints: CheckpointStore | undefined,
  closeResources: () => Promise<void>,
): TaskwireClient {
  let closing: Promise<void> | undefined;
  return {
    submitTask(method, request, options) {
      // A chain, not an async function: see NatsTaskBackend.submit.
      let task: Task;
      try {
        task = taskFromOptions(method, request, options);
      } catch (error) {
        return Promise.reject(error);
      }
      return backend
        .submit(task)
        .then((accepted) => createTaskHandle(backend, accepted.taskId, method.output, accepted.duplicate));
    },
    async submitBatch(method, tasks) {
      const results = await backend.batchSubmit(
        tasks.map(({ request, options }) => taskFromOptions(method, request, options)),
      );
      return results.map(({ outcome }) =>
        outcome.case === "accepted"
          ? createTaskHandle(backend, outcome.value.taskId, method.output, outcome.value.duplicate)
          : TaskError.fromMessage(outcome.value ?? create(TaskErrorSchema), undefined),
      );
    },
    queues,
    schedules,
    submitMany: (method, items, options) => submitMany(backend, checkpoints, method, items, options),
    task: (id, output) => createTaskHandle(backend, id, output),
    getTask: (id) => backend.getTask(id),
    watchTask: (id) => watchStatus(backend, id),
    cancelTask: (id, reason = "") => backend.cancelTask(id, reason),
    listTasks: (request = {}) => backend.listTasks(create(ListTasksRequestSchema, request)),
    close: () => {
      closing ??= closeResources();
      return closing;
    },
  };
}

/** The options with `token` sent as an authorization header (the user's own headers otherwise kept). */
function withToken(options: GatewayClientOptions): GatewayClientOptions {
  if (options.token === undefined) return options;
  const headers = new Headers(options.headers);
  headers.set("authorization", `Bearer ${options.token}`);
  return { ...options, headers };
}

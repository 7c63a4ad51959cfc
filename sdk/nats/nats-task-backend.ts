import { setTimeout as sleep } from "node:timers/promises";
import { create } from "@bufbuild/protobuf";
import type { Any } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { errors, headers, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import {
  EndpointResultSchema,
  type Task,
  TaskState,
  type TaskStatus,
  WorkItemSchema,
} from "../../gen/taskwire/v1/task_pb.ts";
import {
  type BatchSubmitResult,
  BatchSubmitResultSchema,
  type ListTasksRequest,
  type ListTasksResponse,
  type SubmitResponse,
  SubmitResponseSchema,
} from "../../gen/taskwire/v1/task_service_pb.ts";
import type { TaskBackend, TaskRegistry } from "../core/index.ts";
import {
  checkWorkerType,
  decodeOutcome,
  decodeStatus,
  isTerminal,
  Mailbox,
  markCancelled,
  maxBatchSize,
  maxReasonLength,
  onAbort,
  type PreparedTask,
  prepareTask,
  queuedStatus,
  type SubmitLimits,
  searchableFields,
  searchTerm,
  searchText,
  TaskError,
  type TaskOutcome,
  taskIdToken,
  topology,
  workerTypeOf,
} from "../core/index.ts";
import { concatMessages, decodeMessage, encodeMessage } from "../wire/index.ts";
import { liveEndpoints, openWorkersBucket } from "./broadcast.ts";
import { cancelChildren, childrenOf, countChild } from "./children.ts";
import { jetStreamOptionsOf } from "./connection-settings.ts";
import { directGet, isQueuedAlready, publishToStream, type StoredMessage } from "./jetstream-ops.ts";
import { listTasks } from "./list-tasks.ts";
import { fromNatsError } from "./nats-error.ts";
import {
  checkServerVersion,
  keepProvisioned,
  provisionPatiently,
  provisionStatusBucket,
  provisionTaskIndex,
  provisionWorkerType,
  type StatusTopologyOptions,
  type StorageOptions,
  statusTtls,
  type WorkerTypeTopologyOptions,
} from "./provisioning.ts";
import { publishWorkItem } from "./publish-work-item.ts";
import { RequestPipeline } from "./request-pipeline.ts";
import { ResultInbox } from "./result-inbox.ts";
import { StatusFeed } from "./status-feed.ts";
import {
  bucketOf,
  readStatus,
  readStatusEntry,
  readStatusRecords,
  type StatusBucket,
  type StoredStatus,
  writeStatus,
} from "./status-store.ts";
import type { TaskIndexWriter } from "./task-index.ts";
import { keptPayload, unstartedOf, unstartedPlaces } from "./unstarted.ts";

/** Options of {@link createNatsTaskBackend}. */
export interface NatsTaskBackendOptions {
  /** A connection to a JetStream-enabled nats-server (2.12 or newer). */
  nc: NatsConnection;
  /** The task services accepted at submit. */
  registry: TaskRegistry;
  /** Limits checked before anything reaches NATS. */
  limits?: SubmitLimits;
  /** Stream, consumer and bucket options, applied when provisioning. */
  topology?: WorkerTypeTopologyOptions & StatusTopologyOptions;
  /** How long a task's outcome notification is trusted alone before its record is read too (see ResultInbox). @default 5_000 */
  resultGraceMs?: number;
}

/**
 * TaskService over NATS JetStream. Provisions the streams, consumers and
 * buckets of every registered worker type (idempotently) before resolving.
 */
export async function createNatsTaskBackend(options: NatsTaskBackendOptions): Promise<TaskBackend> {
  const { nc, registry } = options;
  checkServerVersion(nc);
  // A cluster electing its leader answers late: waited for, as provisioning is.
  const jsm = await provisionPatiently(() => jetstreamManager(nc, jetStreamOptionsOf(nc)));
  const provision = async () => {
    for (const definition of registry.definitions) {
      await provisionWorkerType(jsm, definition, options.topology);
      await provisionTaskIndex(jsm, definition, options.topology);
    }
    return provisionStatusBucket(nc, options.topology);
  };
  try {
    const kv = await provisionPatiently(provision);
    keepProvisioned(nc, provision, () => {}); // a failure shows as UNAVAILABLE on the next submit
    return new NatsTaskBackend(
      nc,
      jsm,
      bucketOf(kv, new RequestPipeline(nc), await statusTtls(jsm, registry.definitions)),
      registry,
      options.limits ?? {},
      new ResultInbox(
        nc,
        { records: (taskIds) => readStatusRecords(nc, taskIds), unstarted: (taskIds) => unstartedOf(nc, taskIds) },
        { graceMs: options.resultGraceMs },
      ),
      options.topology ?? {},
    );
  } catch (error) {
    throw fromNatsError(error, "provisioning JetStream");
  }
}

class NatsTaskBackend implements TaskBackend {
  private available = true;
  private readonly availabilityListeners = new Set<(available: boolean) => void>();
  /** Live worker instances, for broadcasts to all; opened on the first broadcast. */
  private workers: Promise<KV> | undefined;
  private readonly statusFeed: StatusFeed;
  private readonly index: TaskIndexWriter;

  private readonly nc: NatsConnection;
  private readonly jsm: JetStreamManager;
  private readonly bucket: StatusBucket;
  private readonly registry: TaskRegistry;
  private readonly limits: SubmitLimits;
  private readonly results: ResultInbox;
  /** Replicas and storage of the buckets it creates later (the live workers'). */
  private readonly storage: StorageOptions;
  constructor(
    nc: NatsConnection,
    jsm: JetStreamManager,
    bucket: StatusBucket & { readonly index: TaskIndexWriter },
    registry: TaskRegistry,
    limits: SubmitLimits,
    results: ResultInbox,
    storage: StorageOptions,
  ) {
    this.nc = nc;
    this.jsm = jsm;
    this.bucket = bucket;
    this.registry = registry;
    this.limits = limits;
    this.results = results;
    this.storage = storage;
    this.statusFeed = new StatusFeed(jetstream(nc, jetStreamOptionsOf(nc)));
    this.index = bucket.index;
    void this.followConnection();
  }

  onAvailabilityChange(listener: (available: boolean) => void): () => void {
    this.availabilityListeners.add(listener);
    listener(this.available);
    return () => this.availabilityListeners.delete(listener);
  }

  private async followConnection(): Promise<void> {
    const set = (available: boolean) => {
      if (available === this.available) return;
      this.available = available;
      for (const listener of this.availabilityListeners) listener(available);
    };
    for await (const status of this.nc.status()) {
      if (status.type === "disconnect") set(false);
      else if (status.type === "reconnect") {
        // Notifications published while disconnected are lost: waiters read too.
        this.results.recheckAll();
        set(true);
      }
    }
    set(false); // the connection is closed for good
  }

  /**
   * Refuses at once while NATS is unreachable. A publish made now would wait in
   * the client's buffer and might be stored after the caller gave up, so a
   * plain retry could submit the task twice.
   */
  private ensureAvailable(doing: string): void {
    if (!this.available)
      throw new TaskError(
        `${doing}: not connected to NATS (reconnecting); nothing was done, retry later`,
        Code.Unavailable,
      );
  }

  /**
   * Not async where it need not be: a producer has a thousand submits awaiting
   * their PubAck at once, and each suspended async frame (a generator and its
   * registers) is kept alive, and copied by every young-generation collection,
   * until then. A keyed task, which must look its key up first, takes the async way.
   */
  submit(task: Task, notify = true): Promise<SubmitResponse> {
    let prepared: PreparedTask;
    try {
      prepared = prepareTask(this.registry, task, this.limits, notify ? this.results : undefined);
      this.ensureAvailable(`submitting ${prepared.taskId}`);
    } catch (error) {
      return Promise.reject(error);
    }
    return task.idempotencyKey ? this.submitKeyed(task, prepared, notify) : this.enqueue(task, prepared, notify);
  }

  /** A keyed task may have run and left the queue already: its status record says so. */
  private async submitKeyed(task: Task, prepared: PreparedTask, notify: boolean): Promise<SubmitResponse> {
    const { taskId } = prepared;
    const existing = await readStatus(this.bucket, taskId).catch((e) =>
      Promise.reject(fromNatsError(e, "reading status")),
    );
    if (existing) return this.duplicate(taskId, existing.status.state);
    // A delayed one lives in another stream than the queue: look in both. (An
    // immediate task that meets a delayed one is caught when that one is due.)
    if (prepared.schedule) {
      const where = await this.findUnstarted(task.workerType, taskId).catch((e) =>
        Promise.reject(fromNatsError(e, "reading status")),
      );
      if (where) return this.duplicate(taskId, where.state);
    }
    return this.enqueue(task, prepared, notify);
  }

  /** Publishes a task that passed its checks (and its key lookup): a copy per endpoint for a broadcast. */
  private enqueue(task: Task, prepared: PreparedTask, notify: boolean): Promise<SubmitResponse> {
    if (prepared.broadcast) return this.submitBroadcast(task, prepared, prepared.broadcast, notify);
    if (prepared.singleton) return this.submitSingleton(task, prepared, notify);
    return this.publishTask(task, prepared, notify);
  }

  /**
   * A singleton method's task: the one of its key that waits or runs is returned
   * (a duplicate), else it is published where none of its key waits (expected
   * last subject sequence 0), else, refused there, the one that got in is returned.
   */
  private async submitSingleton(task: Task, prepared: PreparedTask, notify: boolean): Promise<SubmitResponse> {
    for (let tries = 0; tries < 3; tries++) {
      const active = await this.activeSingleton(task.workerType, prepared.subject).catch((e) =>
        Promise.reject(fromNatsError(e, "reading the key's task")),
      );
      if (active) return this.duplicate(active);
      try {
        return await this.publishTask(task, prepared, notify);
      } catch (error) {
        // Another task of the key got in first: it is the one to return, on the next try.
        if (!(error instanceof Error && /wrong last sequence/i.test(error.message))) throw error;
      }
    }
    throw new TaskError(`submitting ${prepared.taskId}: its key's task changed under each try; retry`, Code.Aborted);
  }

  /** The task of a singleton key that waits (held) or runs (holds the key's lease), if any. */
  private async activeSingleton(workerType: string, subject: string): Promise<string | undefined> {
    const waiting = await directGet(this.bucket.requests, topology.fairStream(workerType), { lastBySubject: subject });
    if (waiting) return decodeMessage(WorkItemSchema, waiting.data).taskId;
    const token = subject.slice(subject.lastIndexOf(".") + 1);
    const lease = await directGet(this.bucket.requests, topology.limitStream(workerType), {
      lastBySubject: topology.limitSubject(workerType, `key.${token}`, 0),
    });
    const holder = lease ? new TextDecoder().decode(lease.data) : "";
    if (!holder) return undefined;
    const status = await this.getTask(holder).catch(() => undefined);
    return status && !isTerminal(status.state) ? holder : undefined;
  }

  private publishTask(task: Task, prepared: PreparedTask, notify: boolean): Promise<SubmitResponse> {
    const { taskId } = prepared;
    // Before the publish: the outcome may be notified before the PubAck arrives.
    // A keyed task submitted again here is tracked already: its waiter stays.
    const tracked = notify && this.results.track(taskId);
    // An unkeyed id is new: it is indexed alongside its publish. A keyed one only once
    // stored, as its publish may be a duplicate (already indexed).
    const indexed = task.idempotencyKey ? undefined : this.indexSubmit(task.workerType, prepared);
    return publishWorkItem(this.bucket.requests, prepared.subject, prepared.bytes, publishHeaders(task, prepared), {
      taskId,
      workerType: task.workerType,
      method: task.method,
    }).then(
      (ack) => {
        if (ack.duplicate) {
          if (tracked) this.results.untrack(taskId);
          return this.duplicate(taskId);
        }
        if (tracked) this.results.accepted(taskId);
        // A held task is on its key's subject, where no lookup by id finds it: its record says it is queued.
        const recorded = prepared.held
          ? writeStatus(this.bucket, queuedStatus(decodeMessage(WorkItemSchema, prepared.bytes)), 0)
          : prepared.debounce
            ? markDebounced(this.bucket.requests, prepared.debounce, taskId)
            : undefined;
        // As create(SubmitResponseSchema, ...) makes it: this runs once per task.
        const accepted: SubmitResponse = {
          $typeName: SubmitResponseSchema.typeName,
          taskId,
          duplicate: false,
          state: prepared.schedule ? TaskState.SCHEDULED : TaskState.PENDING,
        };
        return Promise.all([indexed ?? this.indexSubmit(task.workerType, prepared), recorded]).then(() => accepted);
      },
      (error: unknown) => {
        if (tracked) this.results.untrack(taskId);
        // One message per task subject: the same id is already queued.
        if (isQueuedAlready(error)) return this.duplicate(taskId);
        const failure = fromNatsError(error, `submitting ${taskId}`);
        if (!(error instanceof errors.TimeoutError)) throw failure;
        // The publish left: JetStream may have stored it. Only the same id is a safe retry.
        throw new TaskError(
          `${failure.rawMessage}; the task may have been stored: look it up by its id, or submit again with the same idempotency key`,
          failure.code,
          { taskId, cause: error },
        );
      },
    );
  }

  /**
   * A broadcast: a deadline (at which unanswered endpoints make it INCOMPLETE),
   * then the status record listing every endpoint, then one copy per endpoint.
   * The deadline goes first, so a submit that fails halfway still ends.
   */
  private async submitBroadcast(
    task: Task,
    prepared: PreparedTask,
    broadcast: NonNullable<PreparedTask["broadcast"]>,
    notify: boolean,
  ): Promise<SubmitResponse> {
    const { workerType, method } = task;
    const { taskId } = prepared;
    const token = taskIdToken(taskId);
    const doing = `broadcasting ${taskId}`;
    let tracked = false;
    try {
      this.workers ??= openWorkersBucket(this.nc, this.storage);
      const endpoints =
        broadcast.endpoints.length > 0 ? broadcast.endpoints : await liveEndpoints(await this.workers, workerType);
      if (endpoints.length === 0) {
        throw new TaskError(`${doing}: no worker of type "${workerType}" is running`, Code.FailedPrecondition, {
          taskId,
        });
      }
      const deadline = headers();
      deadline.set("Nats-Msg-Id", `${taskId}/deadline`);
      deadline.set("Nats-Schedule", `@at ${broadcast.deadline.toISOString()}`);
      deadline.set("Nats-Schedule-Target", topology.dueSubject(workerType, token));
      await publishToStream(this.bucket.requests, topology.waitingSubject(workerType, token), prepared.bytes, deadline);
      const status = queuedStatus(decodeMessage(WorkItemSchema, prepared.bytes));
      status.endpoints = endpoints.map((endpoint) =>
        create(EndpointResultSchema, { endpoint, state: TaskState.PENDING }),
      );
      tracked = notify && this.results.track(taskId);
      if (!(await writeStatus(this.bucket, status, 0))) {
        if (tracked) this.results.untrack(taskId);
        return this.duplicate(taskId);
      }
      await Promise.all(
        endpoints.map((endpoint) => {
          const id = headers();
          id.set("Nats-Msg-Id", `${taskId}/${endpoint}`);
          const own = encodeMessage(WorkItemSchema, create(WorkItemSchema, { endpoint }));
          return publishWorkItem(
            this.bucket.requests,
            topology.broadcastSubject(workerType, endpoint, token),
            concatMessages(prepared.bytes, own),
            id,
            { taskId, workerType, method },
          );
        }),
      );
      if (tracked) this.results.accepted(taskId);
      await this.indexSubmit(workerType, prepared);
      return create(SubmitResponseSchema, { taskId, state: TaskState.PENDING });
    } catch (error) {
      if (tracked) this.results.untrack(taskId);
      throw fromNatsError(error, doing);
    }
  }

  /** Adds a stored task to its type's submits, and to the entries of its searchable fields' values. */
  private indexSubmit(workerType: string, prepared: PreparedTask): Promise<unknown> {
    const submitted = this.index.add(topology.indexSubject(workerType), prepared.taskId);
    if (!prepared.searchTerms) return submitted;
    return Promise.all([
      submitted,
      ...prepared.searchTerms.map((term) =>
        this.index.add(topology.indexFieldSubject(workerType, term), prepared.taskId),
      ),
    ]);
  }

  async batchSubmit(tasks: Task[], options: { notify?: boolean } = {}): Promise<BatchSubmitResult[]> {
    if (tasks.length > maxBatchSize) {
      throw new TaskError(`a batch holds at most ${maxBatchSize} tasks, got ${tasks.length}`, Code.InvalidArgument);
    }
    // Publishes are pipelined: every PubAck is awaited together.
    return Promise.all(
      tasks.map((task) =>
        this.submit(task, options.notify ?? true).then(
          (accepted) => create(BatchSubmitResultSchema, { outcome: { case: "accepted", value: accepted } }),
          (error) =>
            create(BatchSubmitResultSchema, { outcome: { case: "error", value: TaskError.from(error).toMessage(0) } }),
        ),
      ),
    );
  }

  async getTask(taskId: string): Promise<TaskStatus> {
    const { status } = await this.load(taskId);
    // A parent's record keeps how many children it waits for; their ends are counted apart.
    if (status.children) status.children = await childrenOf(this.bucket.requests, status).catch(() => status.children);
    return status;
  }

  async getPayload(taskId: string): Promise<Any | undefined> {
    return keptPayload(this.nc, taskId).catch((error) =>
      Promise.reject(fromNatsError(error, `reading the payload of ${taskId}`)),
    );
  }

  awaitTerminal(taskId: string, signal?: AbortSignal): Promise<TaskStatus> {
    return this.awaitPushed(taskId, signal, decodeStatus);
  }

  awaitOutcome(taskId: string, signal?: AbortSignal): Promise<TaskOutcome> {
    return this.awaitPushed(taskId, signal, decodeOutcome);
  }

  /**
   * A task submitted here: its terminal status, pushed to this client once
   * stored, decoded by `decode`; when none comes (or it does not decode), the
   * record, read and followed to its end.
   */
  private awaitPushed<T extends TaskOutcome>(
    taskId: string,
    signal: AbortSignal | undefined,
    decode: (bytes: Uint8Array) => T,
  ): Promise<T | TaskStatus> {
    // Not async: a producer may await a hundred thousand results, each holding
    // what its wait keeps alive (an async function's frame is a generator).
    const pushed = this.results.take(taskId, signal);
    if (!pushed) return this.followToTerminal(taskId, signal);
    return pushed.then((came) => {
      const decoded = came instanceof Uint8Array ? decodedOrUndefined(decode, came) : came;
      return decoded ?? this.followToTerminal(taskId, signal);
    });
  }

  private async followToTerminal(taskId: string, signal?: AbortSignal): Promise<TaskStatus> {
    if (signal?.aborted) throw new TaskError(`waiting for ${taskId} was aborted`, Code.Canceled, { taskId });
    let last: TaskStatus | undefined;
    for await (const status of this.watchTask(taskId, signal)) last = status;
    if (!last) throw new TaskError(`watch of ${taskId} ended without a status`, Code.Internal);
    return last;
  }

  async *watchTask(taskId: string, signal?: AbortSignal): AsyncIterable<TaskStatus> {
    const workerType = workerTypeOf(taskId);
    this.ensureAvailable(`watching ${taskId}`);
    const updates = new Mailbox<StoredStatus | TaskError>();
    const listener = (update: StoredStatus | undefined) =>
      updates.push(update ?? new TaskError(`watch of ${taskId} ended: the NATS connection closed`, Code.Unavailable));
    // Follow first, then read: no write between the two can be missed.
    let unlisten: () => void;
    try {
      unlisten = await this.statusFeed.listen(taskId, workerType, listener);
    } catch (error) {
      throw fromNatsError(error, `watching ${taskId}`);
    }
    // Aborted meanwhile, the watch ends at once.
    const stopListening = signal && onAbort(signal, () => updates.close());
    try {
      updates.unshift(await this.load(taskId));
      let revision = -1;
      for await (const update of updates) {
        if (update instanceof TaskError) throw update;
        if (update.revision <= revision) continue; // seen already
        revision = update.revision;
        yield update.status;
        if (isTerminal(update.status.state)) return;
      }
      throw new TaskError(`watch of ${taskId} was aborted`, Code.Canceled);
    } finally {
      stopListening?.();
      unlisten();
    }
  }

  async close(): Promise<void> {
    this.statusFeed.close();
    this.results.close();
    this.bucket.requests.close();
  }

  async cancelTask(taskId: string, reason: string): Promise<TaskStatus> {
    const workerType = workerTypeOf(taskId);
    // It is kept in the record's error: a long one could make the record too large to store.
    if (reason.length > maxReasonLength) {
      throw new TaskError(
        `reason must be at most ${maxReasonLength} characters, got ${reason.length}`,
        Code.InvalidArgument,
        { taskId },
      );
    }
    for (;;) {
      const current = await this.load(taskId);
      if (isTerminal(current.status.state)) {
        // Made again, a cancel removes the queued message an earlier one could not, and
        // counts the task in its parent's children (once however often).
        if (current.status.state === TaskState.CANCELLED) {
          await this.removeUnstarted(workerType, taskId);
          await countChild(this.bucket, current.status);
        }
        return current.status;
      }
      const cancelled = current.status;
      markCancelled(cancelled, reason || "cancelled by request");
      const written = await writeStatus(this.bucket, cancelled, current.revision).catch((e) =>
        Promise.reject(fromNatsError(e, `cancelling ${taskId}`)),
      );
      if (written === undefined) continue; // someone wrote first: decide again
      this.results.deliver(cancelled);
      // Tell a worker running it to abort, then take it off the queue (or the schedule,
      // or its wait for its children); its parent counts it; its children are cancelled.
      this.nc.publish(topology.cancelSubject(workerType), taskId);
      await this.removeUnstarted(workerType, taskId);
      await countChild(this.bucket, cancelled);
      // Running, it may have spawned children before any wait recorded them: its list is read.
      const why = `its parent ${taskId} was cancelled`;
      await cancelChildren(this.bucket.requests, taskId, (id) => this.cancelTask(id, why));
      return cancelled;
    }
  }

  async listTasks(request: ListTasksRequest): Promise<ListTasksResponse> {
    const pageSize = request.pageSize === 0 ? 100 : request.pageSize;
    if (pageSize > 1000) throw new TaskError(`page_size must be at most 1000, got ${pageSize}`, Code.InvalidArgument);
    if (request.workerType) checkWorkerType(request.workerType);
    else if (request.idempotencyKey) {
      throw new TaskError("idempotency_key needs worker_type: a key is unique within its type", Code.InvalidArgument);
    }
    const search = request.fieldName || request.fieldValue ? this.searchSubject(request) : undefined;
    this.ensureAvailable("listing tasks");
    const types = request.workerType ? [request.workerType] : this.registry.workerTypes().toSorted();
    try {
      return await listTasks(this.nc, types, request, pageSize, search);
    } catch (error) {
      throw fromNatsError(error, "listing tasks");
    }
  }

  /** The index subject of a `field_name`/`field_value` search; INVALID_ARGUMENT, naming why, when there is none. */
  private searchSubject({ workerType, fieldName, fieldValue }: ListTasksRequest): string {
    if (!workerType) throw new TaskError("field_name needs worker_type", Code.InvalidArgument);
    const methods = this.registry.definitions.find((d) => d.workerType === workerType)?.methods ?? {};
    const fields = Object.values(methods).flatMap((method) => searchableFields(method.input));
    const field = fields.find((f) => f.name === fieldName || f.jsonName === fieldName);
    if (!field) {
      const names = [...new Set(fields.map((f) => f.name))];
      throw new TaskError(
        `worker type "${workerType}" has no searchable field "${fieldName}" (${names.length > 0 ? `searchable: ${names.join(", ")}` : "none is marked (taskwire.v1.field).searchable"})`,
        Code.InvalidArgument,
      );
    }
    return topology.indexFieldSubject(workerType, searchTerm(field.name, searchText(field, fieldValue)));
  }

  private async duplicate(taskId: string, state?: TaskState): Promise<SubmitResponse> {
    const known =
      state ??
      (await this.getTask(taskId).then(
        (s) => s.state,
        () => TaskState.PENDING,
      ));
    return create(SubmitResponseSchema, { taskId, duplicate: true, state: known });
  }

  /**
   * The status record, or the queued WorkItem's status (with the revision of the
   * key: 0, or a purge marker's, which a write must go over), or NOT_FOUND.
   */
  private async load(taskId: string): Promise<StoredStatus> {
    const workerType = workerTypeOf(taskId);
    this.ensureAvailable(`reading ${taskId}`);
    try {
      const { status, revision } = await readStatusEntry(this.bucket, taskId);
      if (status) return { status, revision };
      const unstarted = await this.findUnstarted(workerType, taskId);
      if (unstarted) {
        return {
          status: queuedStatus(decodeMessage(WorkItemSchema, unstarted.message.data), unstarted.state),
          revision,
        };
      }
      // A worker may have written the result and acked between the two reads.
      const finished = await readStatus(this.bucket, taskId);
      if (finished) return finished;
    } catch (error) {
      throw fromNatsError(error, `reading ${taskId}`);
    }
    throw new TaskError(`task ${taskId} not found`, Code.NotFound, { taskId });
  }

  /** A task's WorkItem while it is queued (PENDING) or waiting for its start time (SCHEDULED). */
  /**
   * Deletes a cancelled task's queued or scheduled message, if it still has one. A first
   * delivery does not read the task's record (that would cost every task a read), so a
   * message left behind would run for a worker that missed the cancel message: the
   * delete is tried three times, then the cancel fails UNAVAILABLE, saying so.
   */
  private async removeUnstarted(workerType: string, taskId: string): Promise<void> {
    let failure: unknown;
    for (let tries = 0; tries < 3; tries++) {
      if (tries > 0) await sleep(100 * 2 ** tries);
      try {
        // Found again each time: a worker may have taken and acked it meanwhile.
        const unstarted = await this.findUnstarted(workerType, taskId);
        if (!unstarted) return;
        await this.jsm.streams.deleteMessage(unstarted.stream, unstarted.message.seq, false);
        return;
      } catch (error) {
        failure = error;
      }
    }
    throw new TaskError(
      `${taskId} is CANCELLED, but its queued message could not be removed: ${(failure as Error).message}; a worker that missed the cancel could still run it: call CancelTask again`,
      Code.Unavailable,
      { taskId, cause: failure },
    );
  }

  private async findUnstarted(
    workerType: string,
    taskId: string,
  ): Promise<{ stream: string; message: StoredMessage; state: TaskState } | undefined> {
    const token = taskIdToken(taskId);
    for (const { stream, subject, state } of unstartedPlaces(workerType)) {
      try {
        const message = await directGet(this.bucket.requests, stream, { nextBySubject: subject(token) });
        if (message) return { stream, message, state };
      } catch (error) {
        // The worker type has no stream on this server: nothing of it is there.
        if (!(error instanceof errors.NoRespondersError)) throw error;
      }
    }
    return undefined;
  }
}

/**
 * A keyed task's id is its key's: another submit (a retry, a second client)
 * may publish it too, and the duplicate window drops the repeat even after the
 * first one left the queue. An unkeyed id is new, so only the per-subject limit
 * guards it, and its publish carries no headers at all: no dedup entry for the
 * server to keep, no header to build. A delayed task also carries its schedule.
 */
function publishHeaders(task: Task, prepared: PreparedTask): MsgHdrs | undefined {
  if (!task.idempotencyKey && !prepared.schedule && !prepared.held) return undefined;
  const h = headers();
  // A held task shares its key's subject: only the id tells a repeat.
  if (task.idempotencyKey || prepared.held) h.set("Nats-Msg-Id", prepared.taskId);
  // A singleton's: only where none of its key waits.
  if (prepared.singleton) h.set("Nats-Expected-Last-Subject-Sequence", "0");
  if (prepared.schedule) {
    h.set("Nats-Schedule", `@at ${prepared.schedule.at.toISOString()}`);
    h.set("Nats-Schedule-Target", prepared.schedule.target);
  }
  return h;
}

/** Pushed bytes decoded, or undefined when they are not a TaskStatus (the record is read instead). */
function decodedOrUndefined<T>(decode: (bytes: Uint8Array) => T, bytes: Uint8Array): T | undefined {
  try {
    return decode(bytes);
  } catch {
    return undefined;
  }
}

/**
 * Names a debounced task the last of its method and key (the subject keeps
 * only the latest: a rollup); when due, one that is not the last is cancelled.
 */
async function markDebounced(requests: RequestPipeline, subject: string, taskId: string): Promise<void> {
  const h = headers();
  h.set("Nats-Rollup", "sub");
  await publishToStream(requests, subject, new TextEncoder().encode(taskId), h);
}

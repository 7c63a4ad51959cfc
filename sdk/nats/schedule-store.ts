import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, timestampNow } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { headers, type NatsConnection } from "@nats-io/transport-node";
import {
  type Schedule,
  type ScheduleInfo,
  ScheduleInfoSchema,
  ScheduleSchema,
} from "../../gen/taskwire/v1/schedule_service_pb.ts";
import { type ScheduleSpec, type Task, TaskSchema } from "../../gen/taskwire/v1/task_pb.ts";
import {
  checkScheduleId,
  checkWorkerType,
  compileSpec,
  isTerminal,
  jitterMsOf,
  nextTime,
  nextTimes,
  planOf,
  prepareTask,
  type ScheduleBackend,
  type ScheduleChange,
  type SchedulePlan,
  scheduledTaskKey,
  scheduleKey,
  type TaskBackend,
  TaskError,
  type TaskRegistry,
  topology,
} from "../core/index.ts";
import { jetStreamOptionsOf } from "./connection-settings.ts";
import { directGet, publishToStream } from "./jetstream-ops.ts";
import { provisionBucket, type StorageOptions } from "./provisioning.ts";
import { RequestPipeline } from "./request-pipeline.ts";

/** Metadata keys the task of a scheduled time carries. */
export const scheduleMetadata = { schedule: "taskwire-schedule", time: "taskwire-scheduled-time" } as const;
/** Headers of an armed time: its nominal time and the generation that armed it. */
const timeHeader = "Taskwire-Schedule-Time";
const generationHeader = "Taskwire-Schedule-Generation";

/** Opens (creating if needed) the bucket of schedules: a ScheduleInfo per `<worker type>.<schedule id>`, kept until deleted. */
export function openSchedulesBucket(nc: NatsConnection, options: StorageOptions = {}): Promise<KV> {
  return provisionBucket(nc, topology.schedulesBucket, { ttlMs: undefined, defaultTtlMs: 0 }, options);
}

/**
 * Schedules in KV, changed by compare-and-set, each with one armed message (a
 * message schedule `@at` its next time) in its worker type's `SCHED_<type>`
 * stream. The server turns an armed message into a tick at its time; a
 * {@link ScheduleTicker} fires the tick. `tasks` submits a schedule's task (its
 * registry must know the types scheduled); `registry` checks a definition's
 * task, and names the types this store serves.
 */
export class ScheduleStore implements ScheduleBackend {
  readonly tasks: TaskBackend;
  private readonly nc: NatsConnection;
  private readonly registry: TaskRegistry;
  private readonly storage: StorageOptions;
  private opened: Promise<{ kv: KV; jsm: JetStreamManager }> | undefined;
  private pipeline: RequestPipeline | undefined;

  /** A store that opens its bucket on first use (a client that never schedules needs no permission for it). */
  constructor(nc: NatsConnection, registry: TaskRegistry, tasks: TaskBackend, storage: StorageOptions = {}) {
    this.nc = nc;
    this.registry = registry;
    this.tasks = tasks;
    this.storage = storage;
  }

  /** A store with its bucket open (created if needed). */
  static async open(
    nc: NatsConnection,
    registry: TaskRegistry,
    tasks: TaskBackend,
    storage: StorageOptions = {},
  ): Promise<ScheduleStore> {
    const store = new ScheduleStore(nc, registry, tasks, storage);
    await store.bucket();
    return store;
  }

  /** Closes what it opened (its request pipeline), not the connection. */
  close(): void {
    this.pipeline?.close();
  }

  private bucket(): Promise<{ kv: KV; jsm: JetStreamManager }> {
    this.opened ??= (async () => ({
      kv: await openSchedulesBucket(this.nc, this.storage),
      jsm: await jetstreamManager(this.nc, jetStreamOptionsOf(this.nc)),
    }))();
    // A failure (NATS unreachable) is tried again by the next call.
    this.opened.catch(() => {
      this.opened = undefined;
    });
    return this.opened;
  }

  private get requests(): RequestPipeline {
    this.pipeline ??= new RequestPipeline(this.nc);
    return this.pipeline;
  }

  async createSchedule(schedule: Schedule, options: ScheduleChange & { upsert?: boolean } = {}): Promise<ScheduleInfo> {
    const checked = this.check(schedule);
    const plan = planOf(checked);
    const key = scheduleKey(checked.workerType, checked.scheduleId);
    for (;;) {
      const stored = await this.read(checked.workerType, checked.scheduleId);
      if (stored && !options.upsert)
        throw new TaskError(`schedule ${key} already exists: update it, or create with upsert`, Code.AlreadyExists);
      if (stored && sameDefinition(stored, checked)) return stored;
      const now = new Date();
      const info = create(ScheduleInfoSchema, {
        ...(stored ?? { createdAt: timestampFromDate(now), fired: 0n, skipped: 0n }),
        schedule: checked,
        updatedAt: timestampFromDate(now),
        updatedBy: options.by ?? "",
        declaredIn: stored?.declaredIn ?? "",
        generation: (stored?.generation ?? 0n) + 1n,
        bufferedTime: undefined,
        revision: 0n,
      });
      if (!info.paused) setNext(info, nextTime(plan, now.getTime() - 1, now.getTime()).next);
      const written = await this.write(info, stored?.revision ?? 0n);
      if (written) return this.armed(written, plan);
    }
  }

  /** As {@link createSchedule} with upsert, recording where the schedule was declared. */
  async declareSchedule(schedule: Schedule, declaredIn: string): Promise<ScheduleInfo> {
    const info = await this.createSchedule(schedule, { upsert: true, by: declaredIn });
    if (info.declaredIn === declaredIn) return info;
    return this.change(schedule.workerType, schedule.scheduleId, undefined, (i) => {
      i.declaredIn = declaredIn;
      return false;
    });
  }

  async updateSchedule(
    schedule: Schedule,
    options: ScheduleChange & { revision?: bigint } = {},
  ): Promise<ScheduleInfo> {
    const checked = this.check(schedule);
    const plan = planOf(checked);
    return this.change(checked.workerType, checked.scheduleId, options.revision, (info) => {
      info.schedule = checked;
      info.updatedBy = options.by ?? "";
      info.bufferedTime = undefined;
      if (!info.paused) setNext(info, nextTime(plan, Date.now() - 1, Date.now()).next);
      return true;
    });
  }

  async deleteSchedule(workerType: string, scheduleId: string): Promise<void> {
    checkWorkerType(workerType);
    checkScheduleId(scheduleId);
    if (!(await this.read(workerType, scheduleId))) throw notFound(workerType, scheduleId);
    await (await this.bucket()).kv.purge(scheduleKey(workerType, scheduleId));
    await this.disarm(workerType, scheduleId);
  }

  pauseSchedule(
    workerType: string,
    scheduleId: string,
    options: ScheduleChange & { note?: string } = {},
  ): Promise<ScheduleInfo> {
    return this.change(workerType, scheduleId, undefined, (info) => {
      info.paused = true;
      info.pauseNote = options.note ?? "";
      info.updatedBy = options.by ?? "";
      info.nextTime = undefined;
      info.bufferedTime = undefined;
      return true;
    });
  }

  resumeSchedule(workerType: string, scheduleId: string, options: ScheduleChange = {}): Promise<ScheduleInfo> {
    return this.change(workerType, scheduleId, undefined, (info) => {
      if (!info.paused) return false;
      info.paused = false;
      info.pauseNote = "";
      info.updatedBy = options.by ?? "";
      setNext(info, nextTime(planOf(info.schedule as Schedule), Date.now() - 1, Date.now()).next);
      return true;
    });
  }

  async getSchedule(workerType: string, scheduleId: string): Promise<ScheduleInfo> {
    checkWorkerType(workerType);
    checkScheduleId(scheduleId);
    const info = await this.read(workerType, scheduleId);
    if (!info) throw notFound(workerType, scheduleId);
    return info;
  }

  async listSchedules(workerType?: string): Promise<ScheduleInfo[]> {
    if (workerType) checkWorkerType(workerType);
    const keys: string[] = [];
    const { kv } = await this.bucket();
    for await (const key of await kv.keys(workerType ? `${workerType}.*` : undefined)) keys.push(key);
    keys.sort();
    const infos: ScheduleInfo[] = [];
    for (const key of keys) {
      const [type = "", id = ""] = key.split(".");
      const info = await this.read(type, id);
      if (info) infos.push(info);
    }
    return infos;
  }

  async triggerSchedule(workerType: string, scheduleId: string): Promise<string> {
    const info = await this.getSchedule(workerType, scheduleId);
    const now = new Date();
    const taskId = await this.submit(info, now, `${scheduledTaskKey(scheduleId, now)}/now`);
    // The overlap policy of the next times counts this task as the previous one.
    await this.change(workerType, scheduleId, undefined, (i) => {
      i.lastTaskId = taskId;
      return false;
    }).catch(() => undefined);
    return taskId;
  }

  async previewSchedule(
    of: { workerType: string; scheduleId: string } | ScheduleSpec,
    count = 5,
    after = new Date(),
  ): Promise<Date[]> {
    if (!Number.isInteger(count) || count < 0 || count > 100)
      throw new TaskError(`count ${count}: must be 1 to 100`, Code.InvalidArgument);
    const spec = "workerType" in of ? (await this.getSchedule(of.workerType, of.scheduleId)).schedule?.spec : of;
    if (!spec) throw new TaskError("spec: required", Code.InvalidArgument);
    return nextTimes(compileSpec(spec), after, count || 5);
  }

  /** The stored schedule, or undefined. */
  async read(workerType: string, scheduleId: string): Promise<ScheduleInfo | undefined> {
    await this.bucket();
    // A direct get of the key's subject: what a worker's permissions allow (docs/security.md).
    const found = await directGet(this.requests, `KV_${topology.schedulesBucket}`, {
      lastBySubject: `$KV.${topology.schedulesBucket}.${scheduleKey(workerType, scheduleId)}`,
    });
    // A deleted schedule leaves a purge marker, with no data.
    if (!found || found.data.length === 0) return undefined;
    return decode(found.data, found.seq);
  }

  /**
   * Writes a schedule's record if its revision is still `revision` (0: if it
   * does not exist); undefined when it changed meanwhile.
   */
  async write(info: ScheduleInfo, revision: bigint): Promise<ScheduleInfo | undefined> {
    const { workerType, scheduleId } = info.schedule as Schedule;
    const key = scheduleKey(workerType, scheduleId);
    const data = toBinary(ScheduleInfoSchema, { ...info, revision: 0n });
    const { kv } = await this.bucket();
    try {
      const written = revision === 0n ? await kv.create(key, data) : await kv.update(key, data, Number(revision));
      return { ...info, revision: BigInt(written) };
    } catch (error) {
      if (isConflict(error)) return undefined;
      throw error;
    }
  }

  /**
   * Arms a schedule's next time: its message in `SCHED_<type>`, which the
   * server turns into a tick `@at` that time plus jitter (or, for a time
   * buffered behind an unfinished task, in a second). Replaces any armed before.
   */
  async arm(info: ScheduleInfo, plan: SchedulePlan, at?: Date): Promise<void> {
    const { workerType, scheduleId } = info.schedule as Schedule;
    if (!info.nextTime || info.paused) return this.disarm(workerType, scheduleId);
    const time = timestampDate(info.nextTime);
    const when = at ?? new Date(time.getTime() + jitterMsOf(plan, workerType, scheduleId, time));
    const h = headers();
    h.set("Nats-Schedule", `@at ${when.toISOString()}`);
    h.set("Nats-Schedule-Target", topology.scheduleTickSubject(workerType, scheduleId));
    h.set(timeHeader, time.toISOString());
    h.set(generationHeader, String(info.generation));
    await publishToStream(this.requests, topology.scheduleArmSubject(workerType, scheduleId), new Uint8Array(0), h);
  }

  /** Whether a schedule's armed message is in place. */
  async isArmed(workerType: string, scheduleId: string): Promise<boolean> {
    const found = await directGet(this.requests, topology.schedulerStream(workerType), {
      lastBySubject: topology.scheduleArmSubject(workerType, scheduleId),
    });
    return found !== null;
  }

  /** Submits the schedule's task for `time` under `key`; resolves with its id. */
  async submit(info: ScheduleInfo, time: Date, key: string): Promise<string> {
    const schedule = info.schedule as Schedule;
    const task = create(TaskSchema, {
      ...(schedule.task as Task),
      workerType: schedule.workerType,
      idempotencyKey: key,
      metadata: {
        ...schedule.task?.metadata,
        [scheduleMetadata.schedule]: schedule.scheduleId,
        [scheduleMetadata.time]: time.toISOString(),
      },
    });
    const [result] = await this.tasks.batchSubmit([task], { notify: false });
    if (result?.outcome.case === "accepted") return result.outcome.value.taskId;
    const error = result?.outcome.case === "error" ? result.outcome.value : undefined;
    throw new TaskError(
      `submitting schedule ${scheduleKey(schedule.workerType, schedule.scheduleId)}'s task: ${error?.message ?? "no answer"}`,
      (error?.code as number as Code | undefined) || Code.Internal,
    );
  }

  /** Whether the task is still unfinished (queued, delayed, running or retrying); a task no longer stored is finished. */
  async unfinished(taskId: string): Promise<boolean> {
    if (!taskId) return false;
    try {
      return !isTerminal((await this.tasks.getTask(taskId)).state);
    } catch (error) {
      if (error instanceof TaskError && error.code === Code.NotFound) return false;
      throw error;
    }
  }

  private async disarm(workerType: string, scheduleId: string): Promise<void> {
    await (await this.bucket()).jsm.streams.purge(topology.schedulerStream(workerType), {
      filter: topology.scheduleArmSubject(workerType, scheduleId),
    });
  }

  /**
   * Applies `edit` to the stored schedule by compare-and-set, retrying on a
   * conflict; an edit that returns true changed the definition or the pause
   * (the generation advances, and the schedule is armed again).
   */
  private async change(
    workerType: string,
    scheduleId: string,
    revision: bigint | undefined,
    edit: (info: ScheduleInfo) => boolean,
  ): Promise<ScheduleInfo> {
    checkWorkerType(workerType);
    checkScheduleId(scheduleId);
    for (;;) {
      const stored = await this.read(workerType, scheduleId);
      if (!stored) throw notFound(workerType, scheduleId);
      if (revision && stored.revision !== revision)
        throw new TaskError(
          `schedule ${scheduleKey(workerType, scheduleId)} changed since revision ${revision} (now ${stored.revision}): read it again`,
          Code.Aborted,
        );
      const info = create(ScheduleInfoSchema, stored);
      const rearm = edit(info);
      if (rearm) {
        info.generation += 1n;
        info.updatedAt = timestampNow();
      }
      const written = await this.write(info, stored.revision);
      if (!written) continue;
      return rearm ? this.armed(written, planOf(info.schedule as Schedule)) : written;
    }
  }

  /** Arms a schedule just written; a failure is left to the tickers' repair (see ScheduleTicker). */
  private async armed(info: ScheduleInfo, plan: SchedulePlan): Promise<ScheduleInfo> {
    await this.arm(info, plan).catch(() => undefined);
    return info;
  }

  /** The definition checked against the registry: the type and method exist, the payload is theirs, and the task leaves its key and times to the schedule. */
  private check(schedule: Schedule): Schedule {
    const checked = create(ScheduleSchema, schedule);
    checkWorkerType(checked.workerType);
    checkScheduleId(checked.scheduleId);
    const task = create(TaskSchema, checked.task ?? {});
    if (task.workerType !== "" && task.workerType !== checked.workerType)
      invalid(`task.worker_type "${task.workerType}": must be empty or the schedule's (${checked.workerType})`);
    if (task.idempotencyKey !== "") invalid("task.idempotency_key: must be empty (each time's key is the schedule's)");
    if (task.schedule.case !== undefined)
      invalid(`task.${task.schedule.case}: must be unset (the schedule sets the times)`);
    if (task.expiresAt) invalid("task.expires_at: must be unset (use the method's expires_after)");
    task.workerType = checked.workerType;
    checked.task = task;
    // The task as it would be submitted now: method, payload, limits.
    prepareTask(this.registry, { ...task, idempotencyKey: "check" });
    return checked;
  }
}

function setNext(info: ScheduleInfo, next: Date | undefined): void {
  info.nextTime = next && timestampFromDate(next);
}

/** Whether two definitions are the same (the stored one's fields as set, against a checked one). */
function sameDefinition(stored: ScheduleInfo, checked: Schedule): boolean {
  const a = stored.schedule && toBinary(ScheduleSchema, stored.schedule);
  const b = toBinary(ScheduleSchema, checked);
  return a !== undefined && a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function decode(data: Uint8Array, revision: number): ScheduleInfo {
  const info = fromBinary(ScheduleInfoSchema, data);
  info.revision = BigInt(revision);
  return info;
}

function isConflict(error: unknown): boolean {
  return error instanceof Error && /wrong last sequence|key exists/i.test(error.message);
}

function notFound(workerType: string, scheduleId: string): TaskError {
  return new TaskError(`schedule ${scheduleKey(workerType, scheduleId)} not found`, Code.NotFound);
}

function invalid(message: string): never {
  throw new TaskError(message, Code.InvalidArgument);
}

/** The headers of a tick: its time and generation; undefined when they are not a tick's. */
export function tickOf(h: { get(name: string): string } | undefined): { time: Date; generation: bigint } | undefined {
  const time = new Date(h?.get(timeHeader) ?? "");
  const generation = h?.get(generationHeader) ?? "";
  if (Number.isNaN(time.getTime()) || !/^\d+$/.test(generation)) return undefined;
  return { time, generation: BigInt(generation) };
}

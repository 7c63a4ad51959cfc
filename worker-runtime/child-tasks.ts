import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { ChildFailure, TaskState } from "../gen/taskwire/v1/task_pb.ts";
import {
  decodeOutcome,
  keyedTaskId,
  type TaskBackend,
  TaskError,
  type TaskMethod,
  type TaskRegistry,
  taskFromOptions,
} from "../sdk/core/index.ts";
import {
  childIds,
  countChildren,
  listChild,
  readStatusRecords,
  type StatusBucket,
  type TaskIndexWriter,
} from "../sdk/nats/index.ts";
import { decodeMessage } from "../sdk/wire/index.ts";
import type { ChildCounts, ChildOutcome, SpawnOptions } from "./task-context.ts";

/** Thrown by waitForChildren to end a run that must wait: the attempt parks the task. */
export class WaitingForChildren extends Error {
  /** The children spawned when it began to wait. */
  readonly spawned: bigint;
  constructor(spawned: bigint) {
    super(`waiting for ${spawned} child task(s): the task runs again once they have ended`);
    this.spawned = spawned;
  }
}

const failures: Record<NonNullable<SpawnOptions["onFailure"]>, ChildFailure> = {
  fail: ChildFailure.FAIL_PARENT,
  continue: ChildFailure.CONTINUE,
  ignore: ChildFailure.IGNORE,
};

/**
 * One run's side of a parent task: spawns its children (each keyed by the
 * parent and its key, so a run again finds the same ones), and counts them when
 * it waits (sdk/nats/children.ts holds the counters).
 */
export class ChildTasks {
  private spawned = 0;
  private readonly listed: Promise<void>[] = [];
  private readonly parentId: string;
  private readonly tasks: TaskBackend;
  private readonly learn: (method: TaskMethod) => void;
  private readonly bucket: StatusBucket & { readonly index: TaskIndexWriter };
  /** The children spawned at the task's last wait, as its record says: they exist, and the counters count from them. */
  private readonly waited: bigint;
  constructor(
    parentId: string,
    tasks: TaskBackend,
    learn: (method: TaskMethod) => void,
    bucket: StatusBucket & { readonly index: TaskIndexWriter },
    waited: bigint,
  ) {
    this.parentId = parentId;
    this.tasks = tasks;
    this.learn = learn;
    this.bucket = bucket;
    this.waited = waited;
  }

  /** The counts its last wait returned: what the task's final record keeps. */
  lastCounts: ChildCounts | undefined;

  /** Children spawned in this run (the ones before the last wait included), and at the last wait. */
  get counts(): { readonly spawned: bigint; readonly waited: bigint } {
    return { spawned: BigInt(this.spawned), waited: this.waited };
  }

  async spawn<I extends DescMessage>(
    method: TaskMethod<I>,
    request: MessageInitShape<I>,
    options: SpawnOptions = {},
  ): Promise<string> {
    const rank = this.spawned++;
    const { key = String(rank), onFailure = "fail", ...submit } = options;
    const idempotencyKey = `child/${this.parentId}/${key}`;
    // Spawned before the last wait: it exists (a run again spawns the same children, in order).
    if (BigInt(rank) < this.waited) return keyedTaskId(method.workerType, idempotencyKey);
    this.learn(method as TaskMethod);
    const task = taskFromOptions(method, request, { ...submit, idempotencyKey });
    task.parentTaskId = this.parentId;
    task.childFailure = failures[onFailure];
    const [result] = await this.tasks.batchSubmit([task], { notify: false });
    if (result?.outcome.case !== "accepted") {
      const error = result?.outcome.case === "error" ? result.outcome.value : undefined;
      throw new TaskError(
        `spawning child ${key} (${method.workerType}/${method.name}): ${error?.message ?? "no answer"}`,
        (error?.code as number as Code | undefined) || Code.Internal,
      );
    }
    const childId = result.outcome.value.taskId;
    this.listed.push(listChild(this.bucket.index, this.parentId, childId));
    return childId;
  }

  async waitForChildren(): Promise<ChildCounts> {
    await Promise.all(this.listed.splice(0));
    const spawned = BigInt(this.spawned);
    if (spawned === 0n) return { spawned: 0, ended: 0, failed: 0 };
    const count = await countChildren(this.bucket.requests, this.parentId, this.waited);
    if (count.fatal) throw await this.failure(count.fatal);
    if (count.ended < spawned) throw new WaitingForChildren(spawned);
    this.lastCounts = { spawned: this.spawned, ended: Number(count.ended), failed: Number(count.failed) };
    return this.lastCounts;
  }

  async *children<O extends DescMessage>(output: O): AsyncIterable<ChildOutcome<O>[]> {
    await Promise.all(this.listed.splice(0));
    // A child spawned again (by a run that did not reach its wait) is listed again: once is enough.
    const seen = new Set<string>();
    for await (const listed of childIds(this.bucket.requests, this.parentId)) {
      const ids = listed.filter((id) => !seen.has(id) && seen.add(id));
      if (ids.length === 0) continue;
      const records = await readStatusRecords(this.bucket.requests.nc, ids);
      yield ids.map((taskId) => outcomeOf(taskId, records.get(taskId), output));
    }
  }

  async child<O extends DescMessage>(taskId: string, output: O): Promise<ChildOutcome<O>> {
    const records = await readStatusRecords(this.bucket.requests.nc, [taskId]);
    return outcomeOf(taskId, records.get(taskId), output);
  }

  /** The error a parent's wait fails with: its child failed, and its policy fails the parent. */
  private async failure(childId: string): Promise<TaskError> {
    const [record] = (await readStatusRecords(this.bucket.requests.nc, [childId])).values();
    const why = record ? decodeOutcome(record).error?.message : undefined;
    return new TaskError(`child task ${childId} failed${why ? `: ${why}` : ""}`, Code.Aborted, { retryable: false });
  }
}

/**
 * A registry of the worker's own types that also resolves the methods its
 * handlers spawn children of: each is learnt from the method given to spawn.
 */
export function learningRegistry(base: TaskRegistry): TaskRegistry & { learn(method: TaskMethod): void } {
  const learnt = new Map<string, TaskMethod>();
  return {
    definitions: base.definitions,
    workerTypes: () => base.workerTypes(),
    resolve: (workerType, name) => learnt.get(`${workerType}/${name}`) ?? base.resolve(workerType, name),
    learn: (method) => learnt.set(`${method.workerType}/${method.name}`, method),
  };
}

/** A child's outcome from its record's bytes (UNSPECIFIED without a record), its result decoded as `output`. */
function outcomeOf<O extends DescMessage>(taskId: string, bytes: Uint8Array | undefined, output: O): ChildOutcome<O> {
  if (!bytes) return { taskId, state: TaskState.UNSPECIFIED };
  const outcome = decodeOutcome(bytes);
  return {
    taskId,
    state: outcome.state,
    ...(outcome.result ? { result: decodeMessage(output, outcome.result.value) } : {}),
    ...(outcome.error ? { error: outcome.error } : {}),
  };
}

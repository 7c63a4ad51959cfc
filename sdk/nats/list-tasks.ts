import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { NatsConnection } from "@nats-io/transport-node";
import { type TaskState, type TaskStatus, WorkItemSchema } from "../../gen/taskwire/v1/task_pb.ts";
import {
  type ListTasksRequest,
  type ListTasksResponse,
  ListTasksResponseSchema,
} from "../../gen/taskwire/v1/task_service_pb.ts";
import { decodeStatus, encodedOutcome, keyedTaskId, queuedStatus, TaskError, topology } from "../core/index.ts";
import { decodeMessage } from "../wire/index.ts";
import { readStatusRecords } from "./status-store.ts";
import { type IndexEntry, IndexReader, indexedStates, stateIndexSubject } from "./task-index.ts";
import { unstartedTasks } from "./unstarted.ts";

/** Index entries a call looks at, at most: a `states` filter that matches little ends a page early, with a token. */
export const listBudget = 1_000;

/** Statuses read in one batched request, at most. */
const statusesPerRead = 100;

/**
 * A page of tasks, newest first, from the types' indexes (task-index.ts): its
 * cost is that of the page, whatever the number of tasks held. Without a worker
 * type the types are merged by the time their tasks were indexed. With a
 * `states` filter of indexed states only (running and the terminal ones) the
 * pages come from those states' entries, else from the submits'; either way
 * each task's status is read, and a task in another state now is left out. A
 * task whose status is gone (expired) is skipped. A page ends when full, when
 * every index is read, or when {@link listBudget} entries were looked at (a
 * filter that matches few): then it may be short, or empty, and still carry a token.
 */
export async function listTasks(
  nc: NatsConnection,
  workerTypes: readonly string[],
  request: Pick<ListTasksRequest, "pageToken" | "states" | "since" | "until" | "idempotencyKey">,
  pageSize: number,
  /** A search's index subject (searchable-fields.ts), of the one type listed. */
  search?: string,
): Promise<ListTasksResponse> {
  const states = new Set<TaskState>(request.states);
  const inStates = (state: TaskState) => states.size === 0 || states.has(state);
  if (request.idempotencyKey) return keyedTask(nc, workerTypes[0] as string, request.idempotencyKey, inStates);
  const since = request.since && timestampDate(request.since);
  const until = request.until && timestampDate(request.until);
  if (since && until && since >= until) {
    throw new TaskError(
      `since (${since.toISOString()}) must be before until (${until.toISOString()})`,
      Code.InvalidArgument,
    );
  }
  const subjects = search
    ? new Map([[search.slice(subjectPrefix.length), { workerType: workerTypes[0] as string, subject: search }]])
    : subjectsOf(workerTypes, states);
  const positions = request.pageToken ? positionsOf(request.pageToken, subjects) : undefined;
  const readers: IndexReader[] = [];
  for (const [key, { workerType, subject }] of subjects) {
    const at = positions?.get(key);
    // A subject the token does not name was read through.
    if (positions && !at) continue;
    readers.push(
      new IndexReader(nc, workerType, subject, {
        ...(at ? { from: { seq: at[0], skip: at[1] }, spacing: at[2] } : {}),
        ...(since ? { since } : {}),
        ...(until ? { until } : {}),
      }),
    );
  }
  const tasks: TaskStatus[] = [];
  const seen = new Set<string>();
  let examined = 0;
  while (tasks.length < pageSize && examined < listBudget) {
    // As many entries as the page still lacks: the page fills, if it does, at the batch's end.
    const wanted = Math.min(pageSize - tasks.length, listBudget - examined, statusesPerRead);
    const batch: IndexEntry[] = [];
    while (batch.length < wanted) {
      const next = await newest(readers, wanted - batch.length);
      if (!next) break;
      batch.push(next.take());
    }
    if (batch.length === 0) break;
    examined += batch.length;
    const statuses = await statusesOf(
      nc,
      batch.map((entry) => entry.taskId),
      inStates,
    );
    for (const { taskId } of batch) {
      const status = statuses.get(taskId);
      // An id indexed twice (an index write retried, a task started twice) is listed once.
      if (status === undefined || seen.has(taskId)) continue;
      seen.add(taskId);
      if (status) tasks.push(status);
    }
  }
  return create(ListTasksResponseSchema, { tasks, nextPageToken: tokenOf(readers) });
}

/** An index subject a listing reads, by its key in page tokens (the subject past `taskwire.index.`). */
type Subjects = Map<string, { readonly workerType: string; readonly subject: string }>;

/** The subjects a listing reads: each state's of each type when every state asked for has them, else the submits'. */
function subjectsOf(workerTypes: readonly string[], states: ReadonlySet<TaskState>): Subjects {
  const byState = states.size > 0 && [...states].every((state) => indexedStates.has(state));
  const subjects: Subjects = new Map();
  for (const workerType of workerTypes) {
    const all = byState
      ? [...states].map((state) => stateIndexSubject(workerType, state))
      : [topology.indexSubject(workerType)];
    for (const subject of all) subjects.set(subject.slice(subjectPrefix.length), { workerType, subject });
  }
  return subjects;
}

/** What an index subject's key in page tokens leaves out. */
const subjectPrefix = topology.indexSubject("");

/**
 * The one task of a type submitted with `key`, if it exists and is in a state
 * `wanted`. (The backend refuses a key without a worker type: a key is unique within its type.)
 */
async function keyedTask(
  nc: NatsConnection,
  workerType: string,
  key: string,
  wanted: (state: TaskState) => boolean,
): Promise<ListTasksResponse> {
  const taskId = keyedTaskId(workerType, key);
  const status = (await statusesOf(nc, [taskId], wanted)).get(taskId);
  const tasks = status ? [status] : [];
  return create(ListTasksResponseSchema, { tasks });
}

/** The reader whose next entry is the newest of all; undefined when every one is read through. */
async function newest(readers: readonly IndexReader[], want: number): Promise<IndexReader | undefined> {
  const heads = await Promise.all(readers.map((reader) => reader.peek(want)));
  let best: number | undefined;
  for (const [i, head] of heads.entries()) {
    if (!head) continue;
    const current = best === undefined ? undefined : heads[best];
    if (!current || head.indexedAtUs > current.indexedAtUs) best = i;
  }
  return best === undefined ? undefined : readers[best];
}

/**
 * The statuses of some tasks by id: the status records, then the queued or
 * scheduled WorkItems of those without one, then the records again of those
 * found in neither (a task that finished between the two reads). A task found
 * nowhere (its status expired, or its submit failed after it was indexed) is absent;
 * one found in a state `wanted` refuses is null, and not decoded (most of a
 * filtered listing's cost).
 */
async function statusesOf(
  nc: NatsConnection,
  taskIds: readonly string[],
  wanted: (state: TaskState) => boolean = () => true,
): Promise<Map<string, TaskStatus | null>> {
  const statuses = new Map<string, TaskStatus | null>();
  const records = async (ids: readonly string[]) => {
    for (const [taskId, bytes] of await readStatusRecords(nc, ids)) {
      statuses.set(taskId, wanted(encodedOutcome(bytes).state) ? decodeStatus(bytes) : null);
    }
  };
  await records(taskIds);
  const missing = taskIds.filter((id) => !statuses.has(id));
  if (missing.length === 0) return statuses;
  for (const [taskId, { state, workItem }] of await unstartedTasks(nc, missing)) {
    statuses.set(taskId, wanted(state) ? queuedStatus(decodeMessage(WorkItemSchema, workItem), state) : null);
  }
  const finished = missing.filter((id) => !statuses.has(id));
  if (finished.length > 0) await records(finished);
  return statuses;
}

/**
 * A page token: where each subject's listing stands, as JSON in base64url,
 * `{"<type>[.<state>]":[seq, skip, sequences per id]}`; a subject read through is left out.
 */
function tokenOf(readers: readonly IndexReader[]): string {
  const at: Record<string, [number, number, number]> = {};
  let any = false;
  for (const reader of readers) {
    const position = reader.position();
    if (!position) continue;
    at[reader.subject.slice(subjectPrefix.length)] = [position.seq, position.skip, reader.spacing];
    any = true;
  }
  return any ? Buffer.from(JSON.stringify(at)).toString("base64url") : "";
}

/** Longest page token accepted: a position per subject is a few dozen characters. */
const maxTokenLength = 8_192;

/** The positions a page token holds, each of a subject this request reads. */
function positionsOf(token: string, subjects: Subjects): Map<string, [number, number, number]> {
  const shown = token.length > 64 ? `${token.slice(0, 64)}...` : token;
  const refuse = (why: string) =>
    new TaskError(`page_token "${shown}" is not one a ListTasks answer gave: ${why}`, Code.InvalidArgument);
  if (token.length > maxTokenLength) throw refuse(`${token.length} characters, at most ${maxTokenLength}`);
  let at: unknown;
  try {
    at = JSON.parse(Buffer.from(token, "base64url").toString());
  } catch {
    throw refuse("it does not decode");
  }
  if (typeof at !== "object" || at === null || Array.isArray(at)) throw refuse("it does not decode");
  const positions = new Map<string, [number, number, number]>();
  for (const [key, value] of Object.entries(at)) {
    if (!subjects.has(key)) throw refuse(`it lists "${key}", which this request does not`);
    if (!isPosition(value)) throw refuse(`its position of "${key}" is malformed`);
    positions.set(key, value);
  }
  return positions;
}

function isPosition(value: unknown): value is [number, number, number] {
  return (
    Array.isArray(value) &&
    value.length === 3 &&
    Number.isSafeInteger(value[0]) &&
    Number.isSafeInteger(value[1]) &&
    (value[0] as number) >= 0 &&
    (value[1] as number) >= 0 &&
    typeof value[2] === "number" &&
    Number.isFinite(value[2]) &&
    value[2] > 0
  );
}

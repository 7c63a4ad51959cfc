import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import type { NatsConnection } from "@nats-io/transport-node";
import { type TaskState, type TaskStatus, WorkItemSchema } from "../../gen/taskwire/v1/task_pb.ts";
import {
  type ListTasksRequest,
  type ListTasksResponse,
  ListTasksResponseSchema,
} from "../../gen/taskwire/v1/task_service_pb.ts";
import { decodeStatus, queuedStatus, TaskError } from "../core/index.ts";
import { decodeMessage } from "../wire/index.ts";
import { readStatusRecords } from "./status-store.ts";
import { type IndexEntry, type IndexPosition, IndexReader } from "./task-index.ts";
import { unstartedTasks } from "./unstarted.ts";

/** Index entries a call looks at, at most: a `states` filter that matches little ends a page early, with a token. */
export const listBudget = 1_000;

/** Statuses read in one batched request, at most. */
const statusesPerRead = 100;

/**
 * A page of tasks, newest first, from the types' indexes (task-index.ts): its
 * cost is that of the page, whatever the number of tasks held. Without a worker
 * type the types are merged by the time their tasks were indexed. A task whose
 * status is gone (expired) is skipped. A page ends when full, when every index
 * is read, or when {@link listBudget} entries were looked at (a `states` filter
 * that matches few): then it may be short, or empty, and still carry a token.
 */
export async function listTasks(
  nc: NatsConnection,
  workerTypes: readonly string[],
  request: Pick<ListTasksRequest, "pageToken" | "states">,
  pageSize: number,
): Promise<ListTasksResponse> {
  const readers = request.pageToken
    ? readersFromToken(nc, workerTypes, request.pageToken)
    : workerTypes.map((type) => new IndexReader(nc, type));
  const states = new Set<TaskState>(request.states);
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
    );
    for (const { taskId } of batch) {
      const status = statuses.get(taskId);
      // An id indexed twice (an index write retried) is listed once.
      if (!status || seen.has(taskId)) continue;
      seen.add(taskId);
      if (states.size === 0 || states.has(status.state)) tasks.push(status);
    }
  }
  return create(ListTasksResponseSchema, { tasks, nextPageToken: tokenOf(readers) });
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
 * nowhere (its status expired, or its submit failed after it was indexed) is absent.
 */
async function statusesOf(nc: NatsConnection, taskIds: readonly string[]): Promise<Map<string, TaskStatus>> {
  const statuses = new Map<string, TaskStatus>();
  const records = async (ids: readonly string[]) => {
    for (const [taskId, bytes] of await readStatusRecords(nc, ids)) statuses.set(taskId, decodeStatus(bytes));
  };
  await records(taskIds);
  const missing = taskIds.filter((id) => !statuses.has(id));
  if (missing.length === 0) return statuses;
  for (const [taskId, { state, workItem }] of await unstartedTasks(nc, missing)) {
    statuses.set(taskId, queuedStatus(decodeMessage(WorkItemSchema, workItem), state));
  }
  const finished = missing.filter((id) => !statuses.has(id));
  if (finished.length > 0) await records(finished);
  return statuses;
}

/**
 * A page token: where each type's listing stands, as JSON in base64url,
 * `{"<type>":[seq, skip, ids per message]}`; a type read through is left out.
 */
function tokenOf(readers: readonly IndexReader[]): string {
  const at: Record<string, [number, number, number]> = {};
  let any = false;
  for (const reader of readers) {
    const position = reader.position();
    if (!position) continue;
    at[reader.workerType] = [position.seq, position.skip, reader.perMessage];
    any = true;
  }
  return any ? Buffer.from(JSON.stringify(at)).toString("base64url") : "";
}

/** Longest page token accepted: a position per type is a few dozen characters. */
const maxTokenLength = 8_192;

function readersFromToken(nc: NatsConnection, workerTypes: readonly string[], token: string): IndexReader[] {
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
  const readers: IndexReader[] = [];
  for (const [type, value] of Object.entries(at)) {
    if (!workerTypes.includes(type)) throw refuse(`it lists worker type "${type}", which this request does not`);
    if (!isPosition(value)) throw refuse(`its position of "${type}" is malformed`);
    const [seq, skip, perMessage] = value;
    readers.push(new IndexReader(nc, type, { seq, skip } satisfies IndexPosition, perMessage));
  }
  return readers;
}

function isPosition(value: unknown): value is [number, number, number] {
  return (
    Array.isArray(value) &&
    value.length === 3 &&
    value.every((n) => Number.isSafeInteger(n) && n >= 0) &&
    (value[2] as number) >= 1
  );
}

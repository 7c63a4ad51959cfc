import { timestampNow } from "@bufbuild/protobuf/wkt";
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { headers, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { type TaskStatus, TaskStatusSchema } from "../../gen/taskwire/v1/task_pb.ts";
import { decodeStatus, isTerminal, topology, workerTypeOf } from "../core/index.ts";
import { encodeMessage } from "../wire/index.ts";
import { directGet, directGetLast, publishToStream } from "./jetstream-ops.ts";
import type { RequestPipeline } from "./request-pipeline.ts";
import { TaskIndexWriter } from "./task-index.ts";

/** A status record as read from the status bucket, with its revision for conditional writes. */
export interface StoredStatus {
  readonly status: TaskStatus;
  readonly revision: number;
}

/** The status bucket: watched and listed through the KV API; read and written through a request pipeline. */
export interface StatusBucket {
  readonly kv: KV;
  readonly requests: RequestPipeline;
  /**
   * The `Nats-TTL` of the worker types that keep their records for less than the
   * bucket does (provisioning's `statusTtls`); the others' records take the bucket's TTL.
   */
  readonly ttls?: ReadonlyMap<string, string>;
  /** Where a terminal record's task is added to its state's entries (task-index.ts); without it, nowhere. */
  readonly index?: TaskIndexWriter;
}

/** The status bucket of a process: its writes of terminal records go to the index. */
export function bucketOf(
  kv: KV,
  requests: RequestPipeline,
  ttls?: ReadonlyMap<string, string>,
): StatusBucket & { readonly index: TaskIndexWriter } {
  return { kv, requests, index: new TaskIndexWriter(requests), ...(ttls ? { ttls } : {}) };
}

/** Reads a task's status record; undefined when there is none. */
export async function readStatus(bucket: StatusBucket, taskId: string): Promise<StoredStatus | undefined> {
  const entry = await readStatusEntry(bucket, taskId);
  return entry.status ? { status: entry.status, revision: entry.revision } : undefined;
}

/**
 * Reads a task's status key: its record, if it has one, and the revision a
 * conditional write must name, the record's or that of the delete or purge
 * marker (an operator's `kv purge`) that stands in its place (a marker refuses a
 * create as a record would), or 0 when the key holds nothing.
 */
export async function readStatusEntry(
  bucket: StatusBucket,
  taskId: string,
): Promise<{ readonly status: TaskStatus | undefined; readonly revision: number }> {
  const stored = await directGet(bucket.requests, topology.statusStream, {
    lastBySubject: topology.statusSubject(taskId),
  });
  if (!stored) return { status: undefined, revision: 0 };
  // A marker's body is empty.
  return { status: stored.data.length > 0 ? decodeStatus(stored.data) : undefined, revision: stored.seq };
}

/**
 * The latest status records of some tasks (a few hundred at most: one request),
 * encoded, by task id; a task without a record (or whose record was deleted)
 * is absent.
 */
export async function readStatusRecords(
  nc: NatsConnection,
  taskIds: readonly string[],
): Promise<Map<string, Uint8Array>> {
  const prefix = topology.statusSubject("");
  const found = await directGetLast(nc, topology.statusStream, taskIds.map(topology.statusSubject));
  const records = new Map<string, Uint8Array>();
  for (const [subject, stored] of found)
    if (stored.data.length > 0) records.set(subject.slice(prefix.length), stored.data);
  return records;
}

/** A status record as written: its revision and the bytes stored. */
export interface WrittenStatus {
  readonly revision: number;
  readonly bytes: Uint8Array;
}

/**
 * Writes a status record only if it is still at `expectedRevision` (0: only if
 * there is none). Returns what was stored, or undefined when someone else wrote
 * first; the caller then reads the record again and decides.
 */
export function writeStatus(
  bucket: StatusBucket,
  status: TaskStatus,
  expectedRevision: number,
): Promise<WrittenStatus | undefined> {
  status.updatedAt = timestampNow();
  const bytes = encodeMessage(TaskStatusSchema, status);
  // A chain, not an async function, as every hot-path publish (see NatsTaskBackend.submit).
  const ttl = bucket.ttls?.size ? bucket.ttls.get(workerTypeOf(status.taskId)) : undefined;
  const expect = ttl
    ? expectRevision(expectedRevision, ttl)
    : expectedRevision === 0
      ? createOnly
      : expectRevision(expectedRevision);
  return publishToStream(bucket.requests, topology.statusSubject(status.taskId), bytes, expect).then(
    (ack) => {
      if (isTerminal(status.state)) bucket.index?.addState(status);
      return { revision: ack.seq, bytes };
    },
    (error: unknown) => {
      if (isWrongRevision(error)) return undefined;
      throw error;
    },
  );
}

function expectRevision(revision: number, ttl?: string): MsgHdrs {
  const expect = headers();
  expect.set("Nats-Expected-Last-Subject-Sequence", String(revision));
  if (ttl) expect.set("Nats-TTL", ttl);
  return expect;
}

/**
 * The headers of a first write (most tasks' only one), made once: a publish
 * only encodes its headers, and nothing here changes these.
 */
const createOnly = expectRevision(0);

// JetStream answers "wrong last sequence" when the expected revision does not
// match (a create finds a record, an update finds a newer one).
function isWrongRevision(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError &&
    (error.code === JetStreamApiCodes.StreamWrongLastSequence ||
      error.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

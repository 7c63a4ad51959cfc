import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { errors, type NatsConnection } from "@nats-io/transport-node";
import { TaskError, topology } from "../core/index.ts";
import { type BatchedMessage, directGetBatch, isNoSuchStream, publishToStream } from "./jetstream-ops.ts";
import type { RequestPipeline } from "./request-pipeline.ts";

/**
 * The task index: each worker type's task ids in submit order, in stream
 * `INDEX_<type>`, so that ListTasks reads a page without going through every
 * task. A message holds the ids one submitter stored in one event-loop turn
 * (at most {@link maxIdsPerMessage}), so that a producer's thousand submits
 * cost the server a few index writes, not a thousand.
 */
export const maxIdsPerMessage = 64;

/** Index writes tried at most, when a write fails before it could be stored. */
const writeTries = 3;

interface Batch {
  readonly ids: string[];
  readonly done: Promise<void>;
  readonly resolve: () => void;
}

/** Writes the ids of stored tasks to their type's index. */
export class TaskIndexWriter {
  private batches = new Map<string, Batch>();
  private readonly requests: RequestPipeline;
  constructor(requests: RequestPipeline) {
    this.requests = requests;
  }

  /**
   * Adds a task to its type's index with the others of this event-loop turn.
   * Resolves once written, or once given up: an index write that fails leaves
   * the task out of ListTasks, but the task itself is stored, and GetTask finds it.
   */
  add(workerType: string, taskId: string): Promise<void> {
    let batch = this.batches.get(workerType);
    if (!batch) {
      // Before the task's own publish leaves (the pipeline sends at the end of the
      // turn too): the index write goes out with it, in the same socket write.
      if (this.batches.size === 0) setImmediate(this.flush);
      let resolve = () => {};
      const done = new Promise<void>((r) => {
        resolve = r;
      });
      batch = { ids: [], done, resolve };
      this.batches.set(workerType, batch);
    }
    batch.ids.push(taskId);
    return batch.done;
  }

  private readonly flush = () => {
    const batches = this.batches;
    this.batches = new Map();
    for (const [workerType, { ids, resolve }] of batches) {
      const writes: Promise<void>[] = [];
      for (let at = 0; at < ids.length; at += maxIdsPerMessage) {
        writes.push(this.write(workerType, encoder.encode(ids.slice(at, at + maxIdsPerMessage).join("\n"))));
      }
      void Promise.all(writes).then(resolve);
    }
  };

  private async write(workerType: string, bytes: Uint8Array): Promise<void> {
    for (let tries = 1; ; tries++) {
      try {
        await publishToStream(this.requests, topology.indexSubject(workerType), bytes);
        return;
      } catch (error) {
        // A write that timed out may have been stored: writing it again would list its tasks twice.
        if (tries === writeTries || error instanceof errors.TimeoutError) return;
        await sleep(100 * 2 ** tries);
      }
    }
  }
}

/**
 * Where a listing of one type stands: the ids still to list are those of the
 * index messages up to `seq`, less the last `skip` ids of message `seq` (listed
 * already).
 */
export interface IndexPosition {
  readonly seq: number;
  readonly skip: number;
}

/** A task id read from the index, with when it was indexed and the position after it. */
export interface IndexEntry {
  readonly taskId: string;
  readonly workerType: string;
  readonly indexedAtUs: number;
  readonly after: IndexPosition;
}

/**
 * Reads one type's index newest first, a window of messages at a time. JetStream
 * reads forwards only, so a window ends at the position and starts as far before
 * it as the ids wanted need, at the ids per message seen so far.
 */
export class IndexReader {
  private readonly buffer: IndexEntry[] = [];
  /** Where the next read ends; undefined before the first read. */
  private next: IndexPosition | undefined;
  private exhausted = false;
  /** Messages of the last read. */
  private window = 0;
  /** The position after the last entry taken: where a next page starts. */
  private taken: IndexPosition | undefined;

  readonly workerType: string;
  /** Ids per index message, on average so far: it sizes the next read. */
  perMessage: number;
  private readonly nc: NatsConnection;
  constructor(nc: NatsConnection, workerType: string, from?: IndexPosition, perMessage = 1) {
    this.nc = nc;
    this.workerType = workerType;
    this.next = from;
    this.taken = from;
    this.perMessage = perMessage;
  }

  /** The newest entry not taken yet, reading up to `want` more ids if none is at hand; undefined at the end. */
  async peek(want: number): Promise<IndexEntry | undefined> {
    while (this.buffer.length === 0 && !this.exhausted) await this.read(want);
    return this.buffer[0];
  }

  /** Takes the entry {@link peek} gave. */
  take(): IndexEntry {
    const entry = this.buffer.shift();
    if (!entry) throw new Error("IndexReader.take without an entry");
    this.taken = entry.after;
    return entry;
  }

  /** Where a next page starts; undefined when every entry has been taken. */
  position(): IndexPosition | undefined {
    if (this.exhausted && this.buffer.length === 0) return undefined;
    return this.taken;
  }

  private async read(want: number): Promise<void> {
    const stream = topology.indexStream(this.workerType);
    let messages: BatchedMessage[];
    if (this.next === undefined) {
      // The first page: the newest message gives where the index ends.
      messages = await directGetBatch(this.nc, stream, { multi_last: [topology.indexSubject(this.workerType)] }).catch(
        (error: unknown) => {
          if (isNoSuchStream(error)) {
            throw new TaskError(`unknown worker type "${this.workerType}"`, Code.NotFound);
          }
          throw error;
        },
      );
      const last = messages[0];
      this.taken = last && { seq: last.seq, skip: 0 };
      if (!last || last.seq === 1) this.exhausted = true;
    } else {
      const end = this.next.seq;
      // As many messages as the ids wanted need at the ids per message seen, but at most
      // twice the last read: an estimate from a few messages may be far off.
      const count = Math.min(Math.max(Math.ceil(want / this.perMessage), 1), Math.max(minWindow, 2 * this.window));
      this.window = count;
      const first = Math.max(end - count + 1, 1);
      // Messages aged out before `first` make the read start later, past `end`: those are dropped.
      const read = end < 1 ? [] : await directGetBatch(this.nc, stream, { seq: first, batch: end - first + 1 });
      messages = read.filter((message) => message.seq <= end);
      const oldest = messages[0];
      if (!oldest || oldest.seq > first || first === 1) this.exhausted = true;
    }
    let ids = 0;
    for (const message of messages.toReversed()) {
      const all = idsOf(message);
      ids += all.length;
      // Of the message the position is in, the ids after it are listed already.
      const listed = message.seq === this.next?.seq ? this.next.skip : 0;
      for (let i = all.length - 1 - listed; i >= 0; i--) {
        this.buffer.push({
          taskId: all[i] as string,
          workerType: this.workerType,
          indexedAtUs: message.storedAtUs,
          // Past a message's first id, the position is the whole message before it.
          after: i === 0 ? { seq: message.seq - 1, skip: 0 } : { seq: message.seq, skip: all.length - i },
        });
      }
    }
    if (messages.length > 0) this.perMessage = Math.max(1, Math.round(ids / messages.length));
    const oldest = messages[0];
    this.next = oldest && { seq: oldest.seq - 1, skip: 0 };
  }
}

/** Index messages a read may take at once, whatever the reads before. */
const minWindow = 16;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function idsOf(message: BatchedMessage): string[] {
  return message.data.length === 0 ? [] : decoder.decode(message.data).split("\n");
}

import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { errors, type NatsConnection } from "@nats-io/transport-node";
import { TaskState, type TaskStatus } from "../../gen/taskwire/v1/task_pb.ts";
import { stateName, TaskError, topology, workerTypeOf } from "../core/index.ts";
import { type BatchedMessage, directGetBatch, isNoSuchStream, publishToStream } from "./jetstream-ops.ts";
import type { RequestPipeline } from "./request-pipeline.ts";

/**
 * The task index: each worker type's task ids in submit order, and the ids of
 * those that entered each indexed state (running, and every terminal one), in
 * stream `INDEX_<type>`, so that ListTasks reads a page without going through
 * every task. A message holds the ids one process wrote to one subject in one
 * event-loop turn (at most {@link maxIdsPerMessage}), so that a producer's
 * thousand submits cost the server a few index writes, not a thousand.
 */
export const maxIdsPerMessage = 64;

/** Index writes tried at most, when a write fails before it could be stored. */
const writeTries = 3;

/** The states with entries of their own (the lower-case name is the subject's last token). */
export const indexedStates: ReadonlySet<TaskState> = new Set([
  TaskState.RUNNING,
  TaskState.SUCCEEDED,
  TaskState.FAILED,
  TaskState.CANCELLED,
  TaskState.EXPIRED,
  TaskState.INCOMPLETE,
]);

/** The subject of a state's entries of a type. */
export function stateIndexSubject(workerType: string, state: TaskState): string {
  return topology.indexStateSubject(workerType, stateName(state).toLowerCase());
}

interface Batch {
  readonly ids: string[];
  readonly done: Promise<void>;
  readonly resolve: () => void;
}

/** Writes task ids to index subjects. */
export class TaskIndexWriter {
  private batches = new Map<string, Batch>();
  private readonly requests: RequestPipeline;
  constructor(requests: RequestPipeline) {
    this.requests = requests;
  }

  /**
   * Adds a task to an index subject with the others of this event-loop turn.
   * Resolves once written, or once given up: an index write that fails leaves
   * the task out of that list, but the task itself is stored, and GetTask finds it.
   */
  add(subject: string, taskId: string): Promise<void> {
    let batch = this.batches.get(subject);
    if (!batch) {
      // Before the task's own publish leaves (the pipeline sends at the end of the
      // turn too): the index write goes out with it, in the same socket write.
      if (this.batches.size === 0) setImmediate(this.flush);
      let resolve = () => {};
      const done = new Promise<void>((r) => {
        resolve = r;
      });
      batch = { ids: [], done, resolve };
      this.batches.set(subject, batch);
    }
    batch.ids.push(taskId);
    return batch.done;
  }

  /** Adds a task that entered `status.state` to that state's entries, when the state has them. */
  addState(status: TaskStatus): void {
    if (indexedStates.has(status.state)) {
      void this.add(stateIndexSubject(workerTypeOf(status.taskId), status.state), status.taskId);
    }
  }

  private readonly flush = () => {
    const batches = this.batches;
    this.batches = new Map();
    for (const [subject, { ids, resolve }] of batches) {
      const writes: Promise<void>[] = [];
      for (let at = 0; at < ids.length; at += maxIdsPerMessage) {
        writes.push(this.write(subject, encoder.encode(ids.slice(at, at + maxIdsPerMessage).join("\n"))));
      }
      void Promise.all(writes).then(resolve);
    }
  };

  private async write(subject: string, bytes: Uint8Array): Promise<void> {
    for (let tries = 1; ; tries++) {
      try {
        await publishToStream(this.requests, subject, bytes);
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
 * Where the listing of one index subject stands: the ids still to list are
 * those of its messages up to `seq`, less the last `skip` ids of message `seq`
 * (listed already).
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

/** Where an {@link IndexReader} starts, and what it knows from the page before. */
export interface IndexReaderOptions {
  /** The position a page token gave; absent, the subject's newest entry (or the newest before `until`). */
  readonly from?: IndexPosition;
  /** Stream sequences per id of the subject, as the page before saw them. */
  readonly spacing?: number;
  /** Entries indexed before this time end the listing. */
  readonly since?: Date;
  /** Without `from`: the listing starts with the newest entry indexed before this time. */
  readonly until?: Date;
}

/**
 * Reads one index subject newest first, a window of stream sequences at a
 * time. JetStream reads forwards only, so a window ends at the position and
 * starts as far before it as the ids wanted need, at the sequences per id seen
 * so far (the subject shares its stream with the type's others); each message
 * of the subject in the window is read, oldest first, and its ids are taken
 * newest first. A window that held none makes the next one twice as long.
 */
export class IndexReader {
  private readonly entries: IndexEntry[] = [];
  /** Where the next read ends; undefined before the first read. */
  private next: IndexPosition | undefined;
  private exhausted = false;
  /** Sequences of the last window. */
  private window = 0;
  /** The position after the last entry taken: where a next page starts. */
  private taken: IndexPosition | undefined;
  /** The stream's first sequence: no window reaches before it. Read once, by the first window. */
  private firstSeq: number | undefined;

  readonly workerType: string;
  readonly subject: string;
  /** Stream sequences per id of the subject, on average so far: it sizes the next window. */
  spacing: number;
  private readonly nc: NatsConnection;
  private readonly sinceUs: number;
  private readonly until: Date | undefined;
  constructor(nc: NatsConnection, workerType: string, subject: string, options: IndexReaderOptions = {}) {
    this.nc = nc;
    this.workerType = workerType;
    this.subject = subject;
    this.next = options.from;
    this.taken = options.from;
    this.spacing = options.spacing ?? 1;
    this.sinceUs = options.since ? options.since.getTime() * 1000 : 0;
    this.until = options.from ? undefined : options.until;
  }

  /** The newest entry not taken yet, reading up to `want` more ids if none is at hand; undefined at the end. */
  async peek(want: number): Promise<IndexEntry | undefined> {
    while (this.entries.length === 0 && !this.exhausted) await this.read(want);
    const head = this.entries[0];
    if (head && head.indexedAtUs < this.sinceUs) {
      // Entries are in time order: the rest are older still.
      this.entries.length = 0;
      this.exhausted = true;
      return undefined;
    }
    return head;
  }

  /** Takes the entry {@link peek} gave. */
  take(): IndexEntry {
    const entry = this.entries.shift();
    if (!entry) throw new Error("IndexReader.take without an entry");
    this.taken = entry.after;
    return entry;
  }

  /** Where a next page starts; undefined when every entry has been taken. */
  position(): IndexPosition | undefined {
    if (this.exhausted && this.entries.length === 0) return undefined;
    return this.taken;
  }

  private get(query: Parameters<typeof directGetBatch>[2]): Promise<BatchedMessage[]> {
    return directGetBatch(this.nc, topology.indexStream(this.workerType), query).catch((error: unknown) => {
      if (isNoSuchStream(error)) throw new TaskError(`unknown worker type "${this.workerType}"`, Code.NotFound);
      throw error;
    });
  }

  private async read(want: number): Promise<void> {
    if (this.next === undefined && this.until) {
      // The first message stored at or after `until` (of any subject): the listing ends before it.
      const [after] = await this.get({ start_time: this.until.toISOString(), batch: 1 });
      if (after) this.next = this.taken = { seq: after.seq - 1, skip: 0 };
    }
    if (this.next === undefined) {
      // The first page: the subject's newest message gives where its entries end.
      const [last] = await this.get({ multi_last: [this.subject] });
      this.taken = last && { seq: last.seq, skip: 0 };
      if (!last || last.seq === 1) this.exhausted = true;
      if (last) {
        this.buffer([last]);
        this.next = { seq: last.seq - 1, skip: 0 };
      }
      return;
    }
    this.firstSeq ??= (await this.get({ seq: 1, batch: 1 }))[0]?.seq ?? Number.POSITIVE_INFINITY;
    const end = this.next.seq;
    if (end < this.firstSeq) {
      this.exhausted = true;
      return;
    }
    // As many sequences as the ids wanted need at the spacing seen, but at most twice
    // the last window: an estimate from a few messages may be far off.
    const size = Math.min(Math.max(Math.ceil(want * this.spacing), 1), Math.max(minWindow, 2 * this.window));
    this.window = size;
    const first = Math.max(end - size + 1, this.firstSeq);
    const messages: BatchedMessage[] = [];
    for (let cursor = first; ; ) {
      const read = await this.get({ seq: cursor, batch: messagesPerRead, next_by_subj: this.subject });
      const inWindow = read.filter((message) => message.seq <= end);
      messages.push(...inWindow);
      const lastRead = read.at(-1);
      if (!lastRead || inWindow.length < read.length || read.length < messagesPerRead) break;
      cursor = lastRead.seq + 1;
    }
    if (first <= this.firstSeq) this.exhausted = true;
    const ids = this.buffer(messages);
    this.next = { seq: first - 1, skip: 0 };
    this.spacing = ids > 0 ? (end - first + 1) / ids : Math.max(this.spacing, (2 * size) / Math.max(want, 1));
  }

  /** Buffers the ids of some messages (oldest first), newest first; returns how many there were. */
  private buffer(messages: readonly BatchedMessage[]): number {
    let ids = 0;
    for (const message of messages.toReversed()) {
      const all = idsOf(message);
      ids += all.length;
      // Of the message the position is in, the ids after it are listed already.
      const listed = message.seq === this.next?.seq ? this.next.skip : 0;
      for (let i = all.length - 1 - listed; i >= 0; i--) {
        this.entries.push({
          taskId: all[i] as string,
          workerType: this.workerType,
          indexedAtUs: message.storedAtUs,
          // Past a message's first id, the position is the whole message before it.
          after: i === 0 ? { seq: message.seq - 1, skip: 0 } : { seq: message.seq, skip: all.length - i },
        });
      }
    }
    return ids;
  }
}

/** Sequences a window may span at once, whatever the windows before. */
const minWindow = 16;
/** Messages one direct get of a window asks for. */
const messagesPerRead = 256;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function idsOf(message: BatchedMessage): string[] {
  return message.data.length === 0 ? [] : decoder.decode(message.data).split("\n");
}

import { setTimeout as sleep } from "node:timers/promises";
import type { JetStreamManager } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { type WorkItem, WorkItemSchema } from "../gen/taskwire/v1/task_pb.ts";
import {
  encodedOutcome,
  isTerminal,
  type KeyLimitSettings,
  singletonPrefix,
  taskSubjectOf,
  topology,
} from "../sdk/core/index.ts";
import {
  directGetBatch,
  isQueuedAlready,
  publishWorkItem,
  readStatusRecords,
  type StatusBucket,
} from "../sdk/nats/index.ts";
import { decodeMessage } from "../sdk/wire/index.ts";
import { type Lease, Leases } from "./leases.ts";

/** The header of a keyed task's message carrying its key's concurrency lease: "<subject> <sequence>". */
export const keyLeaseHeader = "Taskwire-Key-Lease";

/** How many tasks of a type may wait in its queue before the dispatcher holds back more. */
export const fairQueueDepth = 256;
/** How long the dispatcher rests when nothing waits, or when it is not the one dispatching. */
const idleMs = 200;
/** How long it rests when tasks wait but the queue is full. */
const fullMs = 5;
/** What a round returns when tasks wait but the queue is full. */
const fullQueue = -1;

/**
 * Queues a type's tasks that have a fairness key, in turn by key: the tasks of
 * each key wait on their key's subject of `FAIR_<type>`; each round moves tasks
 * onto their task subjects, oldest first within a key and one key at a time
 * (starting from the next key each round), until the queue holds
 * {@link fairQueueDepth} tasks not yet delivered. So a task of a quiet key waits
 * for at most the tasks already in the queue and one task of each other key.
 *
 * Every worker of the type runs one; a lease (`LIMITS_<type>`, renewed each
 * round, lapsing with its holder) makes one of them the dispatcher at a time.
 * A move publishes the task (its id as `Nats-Msg-Id`: a repeat is a duplicate),
 * then deletes the held message: a crash in between moves it again, once.
 */
export class FairDispatcher {
  private stopped = false;
  private cursor = 0;
  private lease: Lease | undefined;
  private renewedAt = 0;
  private readonly jsm: JetStreamManager;
  private readonly bucket: StatusBucket;
  private readonly workerType: string;
  private readonly leases: Leases;
  private readonly holder: string;
  private readonly onError: (error: unknown) => void;
  private readonly keyLimits: KeyLimitSettings | undefined;
  private readonly ackWaitMs: number;
  /** Each key's limits as leases, by key hash. */
  private readonly keys = new Map<string, { run: Leases | undefined; rate: Leases | undefined }>();
  private readonly done: Promise<void>;
  constructor(
    jsm: JetStreamManager,
    bucket: StatusBucket,
    workerType: string,
    leases: Leases,
    holder: string,
    onError: (error: unknown) => void,
    keyLimits: KeyLimitSettings | undefined,
    ackWaitMs: number,
  ) {
    this.jsm = jsm;
    this.bucket = bucket;
    this.workerType = workerType;
    this.leases = leases;
    this.holder = holder;
    this.onError = onError;
    this.keyLimits = keyLimits?.maxConcurrency || keyLimits?.maxRate ? keyLimits : undefined;
    this.ackWaitMs = ackWaitMs;
    this.done = this.run();
  }

  /** Stops after the round in progress, giving up the dispatcher's lease. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.done;
    await this.lease?.release();
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      const moved = await this.round().catch((error: unknown) => {
        if (!this.stopped) this.onError(error);
        return 0;
      });
      if (moved === fullQueue) await sleep(fullMs);
      else if (moved === 0 && !this.stopped) await sleep(idleMs);
    }
  }

  /**
   * One round: how many tasks it moved (0 when it is not the dispatcher, or
   * nothing waits; {@link fullQueue} when tasks wait and the queue is full). The room (the queue's depth less the tasks not yet
   * delivered) is shared out one task per key at a time, from the next key on;
   * each key's share is read in one batch, their records in one more, and
   * every move is published at once.
   */
  private async round(): Promise<number> {
    if (!(await this.holdLease())) return 0;
    const fair = topology.fairStream(this.workerType);
    const held = await this.jsm.streams.info(fair, { subjects_filter: topology.fairSubject(this.workerType, "*") });
    const backlog = held.state.subjects ?? {};
    const keys = Object.keys(backlog).sort();
    if (keys.length === 0) return 0;
    const room = fairQueueDepth - (await this.undelivered());
    // Full: tasks wait, and the queue drains in milliseconds under load. Look again soon.
    if (room <= 0) return fullQueue;
    const shares = shareOut(
      keys.map((key) => backlog[key] ?? 0),
      room,
      this.cursor++ % keys.length,
    );
    const batches = await Promise.all(
      keys.map((key, i) =>
        (shares[i] ?? 0) > 0
          ? directGetBatch(this.bucket.requests.nc, fair, { seq: 1, batch: shares[i] as number, next_by_subj: key })
          : Promise.resolve([]),
      ),
    );
    // In the order of the share-out (one task of each key, then a second of each...): the queue is FIFO.
    const first = (this.cursor - 1) % keys.length;
    const messages: (typeof batches)[number] = [];
    for (let pass = 0, more = true; more; pass++) {
      more = false;
      for (let i = 0; i < keys.length; i++) {
        const message = batches[(first + i) % keys.length]?.[pass];
        if (message) {
          messages.push(message);
          more = true;
        }
      }
    }
    if (messages.length === 0) return 0;
    const workItems = messages.map((m) => decodeMessage(WorkItemSchema, m.data));
    // Cancelled (or finished by a twin) while it waited: nothing to queue.
    const records = await readStatusRecords(
      this.bucket.requests.nc,
      workItems.map((w) => w.taskId),
    );
    const live = messages.map((_, i) => {
      const record = records.get((workItems[i] as WorkItem).taskId);
      return !record || !isTerminal(encodedOutcome(record).state);
    });
    // The last sequence taken from each key (moved, or dropped as ended): its subject is purged below it.
    const taken = new Map<string, number>();
    const singletons = keys.some((key) => key.slice(key.lastIndexOf(".") + 1).startsWith(singletonPrefix));
    if (!this.keyLimits && !singletons) {
      // Published in that order: every publish of one turn leaves together, in call order.
      await Promise.all(
        messages.map((message, i) => {
          taken.set(message.subject, message.seq);
          return live[i] ? this.queue(workItems[i] as WorkItem, message.data) : undefined;
        }),
      );
    } else {
      // Each key's limits are leases, taken here for the task and handed to its worker in a header;
      // a key without one free waits for the next round.
      const blocked = new Set<string>();
      for (const [i, message] of messages.entries()) {
        if (blocked.has(message.subject)) continue;
        const workItem = workItems[i] as WorkItem;
        if (live[i]) {
          const lease = await this.takeKeyLeases(message.subject, workItem.taskId);
          if (lease === false) {
            blocked.add(message.subject);
            continue;
          }
          await this.queue(workItem, message.data, lease);
        }
        taken.set(message.subject, message.seq);
      }
    }
    // Each key's moved tasks are its oldest: one purge per key below the last one's sequence removes them.
    await Promise.all(
      [...taken].map(([subject, seq]) => this.jsm.streams.purge(fair, { filter: subject, seq: seq + 1 })),
    );
    return taken.size === 0 ? 0 : messages.length;
  }

  /**
   * A rate token and a concurrency lease of a key (those its limits have), for
   * a task; false when one is not free. The lease goes to the task's worker.
   */
  private async takeKeyLeases(subject: string, taskId: string): Promise<Lease | undefined | false> {
    const hash = subject.slice(subject.lastIndexOf(".") + 1);
    let limits = this.keys.get(hash);
    if (!limits) {
      const { maxRate } = this.keyLimits ?? {};
      // A singleton method's key runs one task at a time.
      const maxConcurrency = hash.startsWith(singletonPrefix) ? 1 : this.keyLimits?.maxConcurrency;
      const { requests } = this.bucket;
      limits = {
        run: maxConcurrency
          ? new Leases(requests, this.jsm, this.workerType, `key.${hash}`, maxConcurrency, this.ackWaitMs)
          : undefined,
        rate: maxRate ? Leases.forRate(requests, this.jsm, this.workerType, maxRate, `keyrate.${hash}`) : undefined,
      };
      // Many keys come and go: the cache of their leases starts again past a bound.
      if (this.keys.size >= 10_000) this.keys.clear();
      this.keys.set(hash, limits);
    }
    if (limits.rate && !(await limits.rate.tryAcquire(taskId))) return false;
    if (!limits.run) return undefined;
    return (await limits.run.tryAcquire(taskId)) ?? false;
  }

  /** Tasks of the type in its queue not yet delivered to a worker, all priorities. */
  private async undelivered(): Promise<number> {
    const infos = await Promise.all(
      topology.priorities.map((priority) =>
        this.jsm.consumers.info(topology.streamName(this.workerType), topology.consumerName(this.workerType, priority)),
      ),
    );
    return infos.reduce((sum, info) => sum + info.num_pending, 0);
  }

  /**
   * Publishes a held task on its task subject (its id as Nats-Msg-Id: a second
   * move is a duplicate), with its key's concurrency lease for its worker.
   */
  private async queue(workItem: WorkItem, data: Uint8Array, lease?: Lease): Promise<void> {
    const h = headers();
    h.set("Nats-Msg-Id", workItem.taskId);
    if (lease) {
      const { subject, seq } = lease.where();
      h.set(keyLeaseHeader, `${subject} ${seq}`);
    }
    try {
      await publishWorkItem(this.bucket.requests, taskSubjectOf(workItem), data, h, workItem);
    } catch (error) {
      if (!isQueuedAlready(error)) throw error;
    }
  }

  /** Takes or renews the dispatcher's lease; false while another worker holds it. */
  private async holdLease(): Promise<boolean> {
    if (this.lease) {
      // Its TTL is 5 s: a renewal a second is plenty.
      if (Date.now() - this.renewedAt < 1_000) return true;
      if (await this.lease.renew()) {
        this.renewedAt = Date.now();
        return true;
      }
      this.lease = undefined;
    }
    this.lease = await this.leases.tryAcquire(this.holder);
    this.renewedAt = Date.now();
    return this.lease !== undefined;
  }
}

/**
 * Shares `room` moves among keys with `backlog` tasks each, one per key at a
 * time from key `first` on, never more than a key holds: deficit-free round
 * robin. Pure, for its unit test.
 */
export function shareOut(backlog: readonly number[], room: number, first: number): number[] {
  const shares = backlog.map(() => 0);
  let left = room;
  for (let progress = true; left > 0 && progress; ) {
    progress = false;
    for (let i = 0; i < backlog.length && left > 0; i++) {
      const k = (first + i) % backlog.length;
      if ((shares[k] as number) < (backlog[k] as number)) {
        shares[k] = (shares[k] as number) + 1;
        left--;
        progress = true;
      }
    }
  }
  return shares;
}

import type { Msg, MsgCallback, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { TaskStatus } from "../../gen/taskwire/v1/task_pb.ts";
import type { ResultRoute } from "../core/index.ts";
import { encodedOutcome, isTerminal, newRoute, onAbort, topology } from "../core/index.ts";
import { newInbox } from "./open-connection.ts";

interface Pending {
  /** When the task was accepted (its PubAck), in ms since the epoch; undefined until then. */
  since?: number;
  /** The one `result()` waiting on the notification, if any. */
  waiter?: (status: TaskStatus | Uint8Array | undefined) => void;
  /** Past its grace: when its record is read next, the interval until the one after. */
  checkAt?: number;
  checkEveryMs?: number;
  /** Reads in a row that found no record, or that failed. */
  unrecorded?: number;
  failed?: number;
}

/** How the inbox reads tasks it heard nothing of (a few hundred ids a call at most). */
export interface TaskReads {
  /** The latest status records of tasks, encoded, by id (none: no record yet). */
  records(taskIds: readonly string[]): Promise<ReadonlyMap<string, Uint8Array>>;
  /** Of tasks without a record, those still queued or scheduled. */
  unstarted(taskIds: readonly string[]): Promise<ReadonlySet<string>>;
}

/** The longest interval between two reads of a waited-for task's record. */
const maxCheckEveryMs = 30_000;
/** Task ids per {@link TaskReads} call. */
const idsPerRead = 256;
/**
 * Reads in a row without a record after which a task is looked for in its
 * queue and schedule: a queued task has no record, but one whose record
 * expired or was deleted never will. Found there, it is read on; else (and
 * after as many failed reads in a row) it is handed back, and its waiter finds
 * out by reading the task the slow way (NOT_FOUND, UNAVAILABLE).
 */
const maxFruitlessReads = 8;

/** Options of {@link ResultInbox}. */
export interface ResultInboxOptions {
  /**
   * How long after its acceptance a waited-for task's notification is trusted alone;
   * then its record is read too, at intervals that double up to 30 s. @default 5_000
   */
  graceMs?: number;
  /** Tasks within their grace tracked at most; beyond that, the oldest is treated as past its grace. @default 100_000 */
  limit?: number;
  /** How long a notified outcome nobody asked for yet is kept at least (twice that at most). @default 60_000 */
  keepMs?: number;
}

/**
 * The fast path of `result()`: one core NATS message per task, no read and no
 * consumer. The task ids this client makes end in its {@link route}, and the
 * server republishes every stored write of a status record on a subject ending
 * in the id's route (`topology.statusEventSubject`), which this inbox follows:
 * the terminal status reaches it as soon as it is stored, whoever wrote it (a
 * worker, another client's cancel), and never one whose write failed. A keyed
 * id is derived from its key and carries no route: its WorkItem names this
 * inbox's {@link subject} (`notify_subject`) instead, and the worker publishes
 * the stored status there.
 *
 * A notification is best effort. It is lost if this connection is down at that
 * moment, or (keyed tasks) if the worker dies between the write and the
 * publish, or when someone else ends a keyed task (a cancel). So the status
 * bucket stays the truth: a waited-for task not notified within `graceMs` of
 * its acceptance, or tracked across a reconnect, has its record read too, in
 * batches with every other such task, at intervals doubling up to 30 s (a task
 * may wait long in a deep queue: it costs a read now and then, not a watch); a
 * terminal record ends the wait as its notification would. A task nobody waits
 * for is forgotten at the end of its grace, and a later `result()` reads the bucket.
 */
export class ResultInbox implements ResultRoute {
  /** The route of the task ids this client makes. */
  readonly route = newRoute();
  /** The subject the WorkItems of keyed tasks name. */
  readonly subject: string;
  /** Tracked tasks not notified yet, within their grace, in submit order. */
  private readonly pending = new Map<string, Pending>();
  /** Waited-for tasks past their grace, not notified yet. */
  private readonly overdue = new Map<string, Pending>();
  private checking = false;
  /** A reconnect came during a check: read every overdue task again once it ends. */
  private recheckRequested = false;
  private closed = false;
  /**
   * Tasks notified before anyone asked for their result, in arrival order: the
   * status, or its bytes (decoded when asked for). Two generations, the current
   * one and the one before, which is dropped when the next one begins: a
   * producer may hold tens of thousands, and an entry is then just the value.
   */
  private notified = new Map<string, TaskStatus | Uint8Array>();
  private notifiedBefore = new Map<string, TaskStatus | Uint8Array>();
  private generationStart = Date.now();
  /** Made at the first task tracked: a backend that never waits needs no permission for them. */
  private subscriptions: Subscription[] | undefined;
  private readonly nc: NatsConnection;
  private readonly sweeper: NodeJS.Timeout;
  private readonly graceMs: number;
  private readonly limit: number;
  private readonly keepMs: number;

  private readonly reads: TaskReads;
  constructor(nc: NatsConnection, reads: TaskReads, options: ResultInboxOptions = {}) {
    this.reads = reads;
    this.subject = newInbox(nc);
    this.graceMs = options.graceMs ?? 5_000;
    this.limit = options.limit ?? 100_000;
    this.keepMs = options.keepMs ?? 60_000;
    this.nc = nc;
    this.sweeper = setInterval(() => this.sweep(), Math.min(1_000, this.graceMs));
    this.sweeper.unref();
  }

  /** Follows this inbox's subjects: the status events of its route, and keyed tasks' notifications. */
  private subscribe(): void {
    const callback: MsgCallback<Msg> = (error, msg) => {
      // The subscription failed: no notification will come, and waiters follow the bucket.
      if (error) return this.handBackAll();
      let outcome: ReturnType<typeof encodedOutcome> | undefined;
      try {
        outcome = encodedOutcome(msg.data);
      } catch {
        // not a TaskStatus: whoever sent it, the waiter falls back to reading
      }
      // Writes before the end (RUNNING, progress, RETRYING) are events too: wait on.
      if (outcome && isTerminal(outcome.state)) this.arrived(outcome.taskId, msg.data);
    };
    this.subscriptions = [
      this.nc.subscribe(topology.statusEventsOf(this.route), { callback }),
      this.nc.subscribe(this.subject, { callback }),
    ];
  }

  /**
   * Call before publishing a task made for this inbox: its notification may
   * precede the PubAck. False when it is tracked already (a keyed task submitted
   * again): its waiter, if any, stays, and the caller must not untrack it.
   */
  track(taskId: string): boolean {
    if (!this.subscriptions) this.subscribe();
    if (this.pending.has(taskId) || this.overdue.has(taskId)) return false;
    // An outcome kept for this id is an earlier task's (a keyed one whose record
    // expired, and whose key came again): not this one's.
    this.notified.delete(taskId);
    this.notifiedBefore.delete(taskId);
    this.pending.set(taskId, { since: undefined, waiter: undefined });
    if (this.pending.size > this.limit) {
      // The oldest is treated as past its grace: read if waited for, else forgotten.
      const [oldest, entry] = this.pending.entries().next().value as [string, Pending];
      this.pastGrace(oldest, entry, Date.now());
    }
    return true;
  }

  /**
   * Call once a tracked task is accepted (its PubAck came): its grace begins
   * now. Begun at its publish, a PubAck slower than the grace (a busy server)
   * would leave the task forgotten before anyone could ask for its result.
   */
  accepted(taskId: string): void {
    const pending = this.pending.get(taskId);
    if (pending) pending.since = Date.now(); // else notified already, or pushed out by the limit
  }

  /** Forgets a task (its publish failed, or it was a duplicate of one submitted elsewhere). */
  untrack(taskId: string): void {
    this.handBack(taskId);
    this.notified.delete(taskId);
    this.notifiedBefore.delete(taskId);
  }

  /** Records a terminal status known here without a notification (a cancel made by this client). */
  deliver(status: TaskStatus): void {
    if (isTerminal(status.state)) this.arrived(status.taskId, status);
  }

  private arrived(taskId: string, status: TaskStatus | Uint8Array): void {
    const pending = this.remove(taskId);
    if (!pending) return; // not tracked here, or handed back already
    if (pending.waiter) pending.waiter(status);
    else {
      // Kept as it came: most bulk submitters never ask, and bytes are small.
      this.notified.set(taskId, status);
      if (this.notified.size + this.notifiedBefore.size > this.limit) {
        const oldest = this.notifiedBefore.size > 0 ? this.notifiedBefore : this.notified;
        oldest.delete(oldest.keys().next().value as string);
      }
    }
  }

  /**
   * A tracked task's terminal status, as it came (a TaskStatus, or the bytes
   * pushed, which the caller decodes as far as it needs), when its notification arrives.
   * Undefined at once when the task is not tracked here (or someone waits for
   * it already); resolves undefined when the notification is given up on, or
   * when `signal` aborts. Either way the caller then reads the bucket.
   */
  take(taskId: string, signal?: AbortSignal): Promise<TaskStatus | Uint8Array | undefined> | undefined {
    const notified = this.notified.get(taskId) ?? this.notifiedBefore.get(taskId);
    if (notified) {
      this.notified.delete(taskId);
      this.notifiedBefore.delete(taskId);
      return Promise.resolve(notified);
    }
    const pending = this.pending.get(taskId);
    if (!pending || pending.waiter || signal?.aborted) return undefined;
    return new Promise((resolve) => {
      if (!signal) {
        pending.waiter = resolve;
        return;
      }
      const stopListening = onAbort(signal, () => {
        pending.waiter = undefined;
        resolve(undefined);
      });
      pending.waiter = (outcome) => {
        stopListening();
        resolve(outcome);
      };
    });
  }

  /**
   * Notifications may have been missed (the connection was down): every
   * waited-for task has its record read at once, and the others are forgotten.
   */
  recheckAll(): void {
    const now = Date.now();
    for (const [taskId, pending] of this.pending) this.pastGrace(taskId, pending, now);
    // A read in flight may have been answered before the disconnect: read again after it.
    if (this.checking) this.recheckRequested = true;
    else this.readAllOverdue(now);
  }

  private readAllOverdue(now: number): void {
    for (const pending of this.overdue.values()) pending.checkAt = now;
    void this.check(now);
  }

  /** Stops listening; every waiter is handed back. */
  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    for (const subscription of this.subscriptions ?? []) subscription.unsubscribe();
    this.handBackAll();
    this.notified.clear();
    this.notifiedBefore.clear();
  }

  private handBackAll(): void {
    for (const taskId of [...this.pending.keys(), ...this.overdue.keys()]) this.handBack(taskId);
  }

  private handBack(taskId: string): void {
    this.remove(taskId)?.waiter?.(undefined);
  }

  /** Stops tracking a task, within its grace or past it. */
  private remove(taskId: string): Pending | undefined {
    const pending = this.pending.get(taskId) ?? this.overdue.get(taskId);
    this.pending.delete(taskId);
    this.overdue.delete(taskId);
    return pending;
  }

  private sweep(): void {
    const now = Date.now();
    if (now - this.generationStart >= this.keepMs) {
      this.notifiedBefore = this.notified;
      this.notified = new Map();
      this.generationStart = now;
    }
    // In submit order, which is that of the acceptances but for PubAcks that
    // overtake others (a task is then read a little after its grace): stop at the
    // first still within its grace. Those not accepted yet are passed over (each
    // publish ends in an acceptance or an untrack).
    for (const [taskId, pending] of this.pending) {
      if (pending.since === undefined) continue;
      if (pending.since > now - this.graceMs) break;
      this.pastGrace(taskId, pending, now);
    }
    void this.check(now);
  }

  private pastGrace(taskId: string, pending: Pending, now: number): void {
    this.pending.delete(taskId);
    if (!pending.waiter) return; // nobody waits: forgotten
    pending.checkAt = now;
    pending.checkEveryMs = this.graceMs;
    pending.unrecorded = 0;
    pending.failed = 0;
    this.overdue.set(taskId, pending);
  }

  /**
   * Reads the records of the overdue tasks whose turn it is, 256 a read, and
   * ends the waits of those that ended. A failed read puts its tasks and the
   * rest off by their interval, as a read without their end does.
   */
  private async check(now: number): Promise<void> {
    if (this.checking) return;
    const due: string[] = [];
    for (const [taskId, pending] of this.overdue) {
      if (!pending.waiter)
        this.overdue.delete(taskId); // its waiter gave up
      else if ((pending.checkAt ?? now) <= now) due.push(taskId);
    }
    if (due.length === 0) return;
    this.checking = true;
    try {
      for (let i = 0; i < due.length && !this.closed; i += idsPerRead) {
        // Those notified (or handed back) meanwhile are not read.
        const ids = due.slice(i, i + idsPerRead).filter((taskId) => this.overdue.has(taskId));
        if (ids.length > 0 && !(await this.readBatch(ids))) {
          // Not readable now (disconnected): the rest wait too.
          for (const taskId of due.slice(i + idsPerRead)) {
            const pending = this.overdue.get(taskId);
            if (pending) this.putOff(pending);
          }
          break;
        }
      }
    } finally {
      this.checking = false;
      if (this.recheckRequested && !this.closed) {
        this.recheckRequested = false;
        this.readAllOverdue(Date.now());
      }
    }
  }

  /** Reads some overdue tasks, and acts on what it found; false when the read failed. */
  private async readBatch(ids: string[]): Promise<boolean> {
    const records = await this.reads.records(ids).catch(() => undefined);
    if (!records) {
      for (const taskId of ids) this.failedRead(taskId);
      return false;
    }
    const unrecorded: string[] = [];
    for (const taskId of ids) {
      const pending = this.overdue.get(taskId);
      if (!pending) continue; // notified meanwhile
      pending.failed = 0;
      const record = records.get(taskId);
      if (record && endedOrUnreadable(record)) {
        this.arrived(taskId, record);
        continue;
      }
      pending.unrecorded = record ? 0 : (pending.unrecorded ?? 0) + 1;
      if (pending.unrecorded >= maxFruitlessReads) unrecorded.push(taskId);
      this.putOff(pending);
    }
    if (unrecorded.length > 0) {
      // Unknown now: asked again after the next read that finds no record.
      const unstarted = await this.reads.unstarted(unrecorded).catch(() => undefined);
      if (unstarted) {
        for (const taskId of unrecorded) {
          const pending = this.overdue.get(taskId);
          if (pending && unstarted.has(taskId)) pending.unrecorded = 0;
          else if (pending) this.handBack(taskId);
        }
      }
    }
    return true;
  }

  private failedRead(taskId: string): void {
    const pending = this.overdue.get(taskId);
    if (!pending) return;
    pending.failed = (pending.failed ?? 0) + 1;
    if (pending.failed >= maxFruitlessReads) this.handBack(taskId);
    else this.putOff(pending);
  }

  /** Reads an overdue task again after its interval, which then doubles. */
  private putOff(pending: Pending): void {
    const every = pending.checkEveryMs ?? this.graceMs;
    pending.checkAt = Date.now() + every;
    pending.checkEveryMs = Math.min(2 * every, maxCheckEveryMs);
  }
}

/** Whether a record ends a wait: a terminal status, or one that does not decode (the waiter then reads it and fails). */
function endedOrUnreadable(record: Uint8Array): boolean {
  try {
    return isTerminal(encodedOutcome(record).state);
  } catch {
    return true;
  }
}

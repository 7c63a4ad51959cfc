import { setTimeout as sleep } from "node:timers/promises";
import { JetStreamApiError, type JetStreamManager } from "@nats-io/jetstream";
import { headers } from "@nats-io/transport-node";
import { type LimitKind, topology } from "../sdk/core/index.ts";
import type { RequestPipeline } from "../sdk/nats/index.ts";
import { publishToStream } from "../sdk/nats/index.ts";

/** A lease held: renew it while the work goes on, release it when done. */
export interface Lease {
  /** Renews it; false when it was lost (it lapsed, and another holder took it). */
  renew(): Promise<boolean>;
  release(): Promise<void>;
  /** Where it is held now: its subject and its message's sequence, for another process to adopt it. */
  where(): { readonly subject: string; readonly seq: number };
}

/** A limit's leases: "run" (concurrency), "rate" (starts per second), "dispatch", or one fairness key's. */
export type LeaseKind = LimitKind;

/**
 * `count` leases shared by every worker of a type, as messages on numbered
 * subjects of `LIMITS_<type>`. Taking a lease is a publish that succeeds only
 * where the subject is empty (`Nats-Expected-Last-Subject-Sequence: 0`); every
 * lease carries a TTL (`Nats-TTL`), so the lease of a worker that died lapses
 * by itself. Concurrency leases are renewed and released; rate tokens are
 * neither, and simply lapse after their window.
 */
export class Leases {
  private next = Math.floor(Math.random() * 1_000_000);

  private readonly requests: RequestPipeline;
  private readonly jsm: JetStreamManager;
  private readonly workerType: string;
  private readonly kind: LeaseKind;
  private readonly count: number;
  private readonly ttlMs: number;
  constructor(
    requests: RequestPipeline,
    jsm: JetStreamManager,
    workerType: string,
    kind: LeaseKind,
    count: number,
    ttlMs: number,
  ) {
    this.requests = requests;
    this.jsm = jsm;
    this.workerType = workerType;
    this.kind = kind;
    this.count = count;
    this.ttlMs = ttlMs;
  }

  /** The `max_rate` limit as leases: at most rate × w starts in any window of w = max(1, ⌈1/rate⌉) seconds. */
  static forRate(
    requests: RequestPipeline,
    jsm: JetStreamManager,
    workerType: string,
    rate: number,
    kind: LeaseKind = "rate",
  ): Leases {
    const windowS = Math.max(1, Math.ceil(1 / rate));
    return new Leases(requests, jsm, workerType, kind, Math.max(1, Math.round(rate * windowS)), windowS * 1_000);
  }

  /**
   * A lease another process took and handed over (the dispatcher's, of a keyed
   * task): renewed and released here, as if taken here.
   */
  static adopt(
    requests: RequestPipeline,
    jsm: JetStreamManager,
    workerType: string,
    subject: string,
    seq: number,
    ttlMs: number,
    holder: string,
  ): Lease {
    return new Leases(requests, jsm, workerType, "run", 1, ttlMs).held(subject, seq, holder);
  }

  /**
   * Takes a free lease, trying each subject once per round and waiting a
   * little longer between rounds; calls `waiting` between rounds (to keep the
   * task alive meanwhile; it may throw to give up, or hold the next round back).
   */
  async acquire(holder: string, waiting: () => void | Promise<void>): Promise<Lease> {
    for (let round = 0; ; round++) {
      for (let i = 0; i < this.count; i++) {
        const n = this.next++ % this.count;
        const seq = await this.take(n, holder, 0);
        if (seq !== undefined) return this.lease(n, holder, seq);
      }
      await waiting();
      await sleep(Math.min(10 * 2 ** round, 250));
    }
  }

  /** Takes a free lease if one is free now, trying each subject once; undefined when none is. */
  async tryAcquire(holder: string): Promise<Lease | undefined> {
    for (let i = 0; i < this.count; i++) {
      const n = this.next++ % this.count;
      const seq = await this.take(n, holder, 0);
      if (seq !== undefined) return this.lease(n, holder, seq);
    }
    return undefined;
  }

  private lease(n: number, holder: string, taken: number): Lease {
    return this.held(topology.limitSubject(this.workerType, this.kind, n), taken, holder);
  }

  private held(subject: string, taken: number, holder = ""): Lease {
    let seq = taken;
    return {
      renew: async () => {
        // Lost (it lapsed, or another holder took it): an attempt goes on without it.
        const renewed = await this.takeSubject(subject, seq, holder);
        if (renewed === undefined) return false;
        seq = renewed;
        return true;
      },
      release: async () => {
        await this.jsm.streams.deleteMessage(topology.limitStream(this.workerType), seq, false).catch(() => false);
      },
      where: () => ({ subject, seq }),
    };
  }

  /** Publishes the lease over sequence `expected` (0: only if free); undefined if someone holds it. */
  private take(n: number, holder: string, expected: number): Promise<number | undefined> {
    return this.takeSubject(topology.limitSubject(this.workerType, this.kind, n), expected, holder);
  }

  private async takeSubject(subject: string, expected: number, holder = ""): Promise<number | undefined> {
    const h = headers();
    h.set("Nats-Expected-Last-Subject-Sequence", String(expected));
    h.set("Nats-TTL", `${Math.ceil(this.ttlMs / 1_000)}s`);
    try {
      const ack = await publishToStream(this.requests, subject, new TextEncoder().encode(holder), h);
      return ack.seq;
    } catch (error) {
      if (error instanceof JetStreamApiError && /wrong last sequence/i.test(error.message)) return undefined;
      throw error;
    }
  }
}

import { errors, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from "@nats-io/transport-node";
import { newInbox } from "./open-connection.ts";

interface Waiter {
  readonly resolve: (msg: Msg) => void;
  readonly reject: (error: Error) => void;
  readonly subject: string;
  readonly deadline: number;
}

/**
 * Request/reply for the hot path, at a quarter of the CPU of `nc.request()`:
 * one wildcard inbox subscription for every reply and one timer for every
 * timeout, instead of a request object, a timer and several Error objects per
 * request. Failures are nats.js' own errors (`TimeoutError`,
 * `NoRespondersError`), so callers handle them as before.
 */
export class RequestPipeline {
  private readonly prefix: string;
  private readonly waiting = new Map<string, Waiter>();
  /** Requests of this event-loop turn, published together at its end. */
  private readonly outbox: { token: string; subject: string; data: Uint8Array; headers: MsgHdrs | undefined }[] = [];
  private readonly subscription: Subscription;
  private readonly sweeper: NodeJS.Timeout;
  private next = 0;

  /** The connection the requests go over. */
  readonly nc: NatsConnection;
  private readonly timeoutMs: number;
  constructor(nc: NatsConnection, timeoutMs = 5_000) {
    this.nc = nc;
    this.timeoutMs = timeoutMs;
    this.prefix = newInbox(nc);
    this.subscription = nc.subscribe(`${this.prefix}.*`, {
      callback: (error, msg) => {
        if (error) return this.failAll(error);
        const token = msg.subject.slice(this.prefix.length + 1);
        const waiter = this.waiting.get(token);
        if (!waiter) return; // answered after its timeout
        this.waiting.delete(token);
        if (msg.data.length === 0 && msg.headers?.code === 503) {
          waiter.reject(new errors.NoRespondersError(waiter.subject));
        } else waiter.resolve(msg);
      },
    });
    this.sweeper = setInterval(() => this.expire(), Math.min(1_000, timeoutMs));
    this.sweeper.unref();
  }

  /**
   * Sends a request; resolves with the reply (status replies included). The
   * publish leaves at the end of this event-loop turn, with every other request
   * made in it: nats.js writes to the socket once per microtask round, and
   * requests made from separate callbacks (HTTP requests at a gateway, say)
   * would otherwise each cost a socket write.
   */
  request(subject: string, data: Uint8Array, headers?: MsgHdrs): Promise<Msg> {
    return new Promise((resolve, reject) => {
      const token = (this.next++).toString(36);
      this.waiting.set(token, { resolve, reject, subject, deadline: Date.now() + this.timeoutMs });
      this.outbox.push({ token, subject, data, headers });
      if (this.outbox.length === 1) setImmediate(this.send);
    });
  }

  private readonly send = () => {
    for (const { token, subject, data, headers } of this.outbox.splice(0)) {
      try {
        this.nc.publish(subject, data, { reply: `${this.prefix}.${token}`, headers });
      } catch (error) {
        const waiter = this.waiting.get(token);
        this.waiting.delete(token);
        waiter?.reject(error as Error);
      }
    }
  };

  /** Stops listening; requests still waiting fail. */
  close(): void {
    this.outbox.length = 0; // failed below: they must not leave afterwards
    clearInterval(this.sweeper);
    this.subscription.unsubscribe();
    this.failAll(new errors.ClosedConnectionError());
  }

  private expire(): void {
    const now = Date.now();
    // In request order, so in deadline order: stop at the first one still in time.
    for (const [token, waiter] of this.waiting) {
      if (waiter.deadline > now) return;
      this.waiting.delete(token);
      waiter.reject(new errors.TimeoutError());
    }
  }

  private failAll(error: Error): void {
    for (const waiter of this.waiting.values()) waiter.reject(error);
    this.waiting.clear();
  }
}

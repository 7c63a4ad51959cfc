import { randomBytes } from "node:crypto";

/** The payload of every task of every system: 128 ASCII characters, so 128 bytes. */
export const payloadText = randomBytes(96).toString("base64");

/** Waits until one task's result has been observed by the client. */
export type Observe = () => Promise<void>;

/** A system as its client sees it. */
export interface Target {
  /**
   * Submits `count` tasks in one call (one task unless the system submits in
   * batches) and resolves once every one is acknowledged, with one observer per task.
   */
  submit(count: number): Promise<Observe[]>;
  /** Closes the client's connections. */
  close(): Promise<void>;
}

/** Which client a client process builds, and where its system listens. */
export type TargetSpec =
  | { readonly kind: "raw-jetstream"; readonly nats: string }
  | { readonly kind: "protocol-floor"; readonly nats: string }
  | { readonly kind: "taskwire-direct"; readonly nats: string; readonly keyed: boolean }
  | { readonly kind: "taskwire-gateway"; readonly url: string; readonly protocol: "connect" | "grpc" }
  | { readonly kind: "bullmq"; readonly redisPort: number };

/**
 * Results announced by key (a stream sequence, a task id), each observed once:
 * one announced before its observer asks is kept until then.
 */
export class Announcements<K> {
  private readonly early = new Set<K>();
  private readonly waiting = new Map<K, () => void>();

  announce(key: K): void {
    const resolve = this.waiting.get(key);
    if (!resolve) {
      this.early.add(key); // announced before the client saw its acknowledgement
      return;
    }
    this.waiting.delete(key);
    resolve();
  }

  observer(key: K): Observe {
    return () =>
      this.early.delete(key) ? Promise.resolve() : new Promise<void>((resolve) => this.waiting.set(key, resolve));
  }
}

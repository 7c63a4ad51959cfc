import { ServingStatus } from "./health-service.ts";

/**
 * The serving status of each service a gateway serves, as the gRPC health
 * service reports it. The empty name stands for the whole server.
 *
 * The gateway marks its services SERVING when it starts and NOT_SERVING when it
 * closes; in between it follows its backend's availability (NOT_SERVING while the
 * NATS connection is down).
 */
export class HealthStatus {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #listeners = new Set<() => void>();

  /** Starts with the given services (and "", the server) at `initial`. */
  constructor(services: Iterable<string> = [], initial: ServingStatus = ServingStatus.SERVING) {
    this.#statuses.set("", initial);
    for (const service of services) this.#statuses.set(service, initial);
  }

  /** The status of a service, or undefined when it is not served. */
  get(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /** Sets the status of one service, adding it when it is new. */
  set(service: string, status: ServingStatus): void {
    if (this.#statuses.get(service) === status) return;
    this.#statuses.set(service, status);
    this.#notify();
  }

  /** Sets the status of every known service, the server included. */
  setAll(status: ServingStatus): void {
    for (const service of this.#statuses.keys()) this.#statuses.set(service, status);
    this.#notify();
  }

  /**
   * The status of a service now, then after every change, until `signal` aborts.
   * A service that is not served reads SERVICE_UNKNOWN, as the health protocol's
   * Watch requires.
   */
  async *watch(service: string, signal: AbortSignal): AsyncGenerator<ServingStatus> {
    let changed = true;
    let wake: (() => void) | undefined;
    const listener = () => {
      changed = true;
      wake?.();
    };
    const onAbort = () => wake?.();
    this.#listeners.add(listener);
    signal.addEventListener("abort", onAbort);
    try {
      let last: ServingStatus | undefined;
      while (!signal.aborted) {
        if (!changed) await new Promise<void>((resolve) => (wake = resolve));
        changed = false;
        if (signal.aborted) return;
        const status = this.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
        if (status !== last) yield status;
        last = status;
      }
    } finally {
      this.#listeners.delete(listener);
      signal.removeEventListener("abort", onAbort);
    }
  }

  #notify(): void {
    for (const listener of this.#listeners) listener();
  }
}

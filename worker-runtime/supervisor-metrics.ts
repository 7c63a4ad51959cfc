import type { ChildProcess } from "node:child_process";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { AggregatorRegistry, type Registry } from "prom-client";
import { answersMetrics, type Supervisor } from "./create-supervisor.ts";
import { type MetricsJson, requestMetrics } from "./metrics-ipc.ts";

/** How long a scrape waits for each worker process's metrics. */
const answerTimeoutMs = 2_000;

/** Where {@link serveSupervisorMetrics} listens. */
export interface MetricsServerOptions {
  /** The interface to listen on. @default "127.0.0.1" */
  host?: string;
  /** The port; 0 picks a free one (read it from `url`). @default 0 */
  port?: number;
}

/** A running metrics endpoint. */
export interface MetricsServer {
  /** Where Prometheus scrapes it, e.g. "http://127.0.0.1:9464/metrics". */
  readonly url: string;
  /** Stops listening and closes open connections. Returns the same promise every time. */
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` for every worker process of a supervisor: each scrape
 * asks every process for its registry over its IPC channel and sums them
 * (prom-client's `AggregatorRegistry.aggregate`), so one scrape per host sees
 * all of them. A process that does not answer within 2 s is counted with its
 * previous answer; one that exited keeps counting its last answer's counters
 * and histograms, so that the sums never go back when a process restarts.
 *
 * ```ts
 * const supervisor = createSupervisor({ nats, pools });
 * const metrics = await serveSupervisorMetrics(supervisor, { host: "0.0.0.0", port: 9464 });
 * // curl http://127.0.0.1:9464/metrics
 * ```
 */
export async function serveSupervisorMetrics(
  supervisor: Pick<Supervisor, "processes">,
  options: MetricsServerOptions = {},
): Promise<MetricsServer> {
  const host = options.host ?? "127.0.0.1";
  const pool = new PoolMetrics(supervisor.processes);
  const server = createServer((request, response) => {
    if (answeredOtherwise(request, response)) return;
    pool.scrape().then(
      async (registry) => {
        const text = await registry.metrics();
        response.writeHead(200, { "content-type": registry.contentType });
        response.end(request.method === "HEAD" ? undefined : text);
      },
      (error: Error) => {
        response.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        response.end(`cannot collect the worker processes' metrics: ${error.message}\n`);
      },
    );
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(new Error(`cannot serve worker metrics on ${host}:${options.port ?? 0}: ${error.code ?? error.message}`)),
    );
    server.listen({ host, port: options.port ?? 0 }, () => resolve((server.address() as AddressInfo).port));
  });
  let closed: Promise<void> | undefined;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}/metrics`,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closed;
    },
  };
}

/** Answers what is not `GET /metrics` (404, 405); false for a scrape. */
function answeredOtherwise(request: IncomingMessage, response: ServerResponse): boolean {
  const path = (request.url ?? "/").split("?")[0];
  const answer = (status: number, text: string, headers: Record<string, string> = {}) => {
    response.writeHead(status, { ...headers, "content-type": "text/plain; charset=utf-8" });
    response.end(`${text}\n`);
    return true;
  };
  if (path !== "/metrics") return answer(404, `nothing here: the metrics are at /metrics`);
  if (request.method !== "GET" && request.method !== "HEAD") {
    return answer(405, `${request.method} is not served: scrape /metrics with GET`, { allow: "GET, HEAD" });
  }
  return false;
}

/** The worker processes' metrics, summed, with what exited processes had counted. */
class PoolMetrics {
  private readonly processes: ReadonlyMap<string, ChildProcess>;
  /** Each process's last answer. */
  private readonly last = new Map<ChildProcess, MetricsJson>();
  /** The counters and histograms of processes that exited, summed. */
  private retired: MetricsJson = [];
  /** The scrape under way: concurrent scrapes share it. */
  private pending: Promise<Registry> | undefined;

  constructor(processes: ReadonlyMap<string, ChildProcess>) {
    this.processes = processes;
  }

  scrape(): Promise<Registry> {
    this.pending ??= this.collect().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async collect(): Promise<Registry> {
    // Workers in other languages keep no metrics of their own here.
    const live = new Set([...this.processes.values()].filter(answersMetrics));
    for (const [child, metrics] of this.last) {
      if (live.has(child)) continue;
      this.last.delete(child);
      // Its gauges ended with it; its counts stay in the sums.
      const cumulative = metrics.filter((m) => String(m.type) === "counter" || String(m.type) === "histogram");
      this.retired = await AggregatorRegistry.aggregate([this.retired, cumulative]).getMetricsAsJSON();
    }
    await Promise.all(
      [...live].map(async (child) => {
        // A process that does not answer (starting, busy, exiting) counts with its previous answer.
        const metrics = await requestMetrics(child, answerTimeoutMs).catch(() => undefined);
        if (metrics) this.last.set(child, metrics);
      }),
    );
    return AggregatorRegistry.aggregate([this.retired, ...this.last.values()]);
  }
}

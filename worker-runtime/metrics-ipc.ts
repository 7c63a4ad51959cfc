import type { ChildProcess } from "node:child_process";
import type { Registry } from "prom-client";

/** A registry's metrics as prom-client's `getMetricsAsJSON()` gives them, for `AggregatorRegistry.aggregate`. */
export type MetricsJson = Awaited<ReturnType<Registry["getMetricsAsJSON"]>>;

/** What the supervisor sends a worker process to ask for its metrics. */
interface MetricsRequest {
  readonly type: "taskwire:metrics-request";
  readonly id: number;
}

/** A worker process's answer: its metrics, or why it has none. */
interface MetricsAnswer {
  readonly type: "taskwire:metrics";
  readonly id: number;
  readonly metrics?: MetricsJson;
  readonly error?: string;
}

function isRequest(message: unknown): message is MetricsRequest {
  return (message as MetricsRequest | null)?.type === "taskwire:metrics-request";
}

function isAnswer(message: unknown, id: number): message is MetricsAnswer {
  return (message as MetricsAnswer | null)?.type === "taskwire:metrics" && (message as MetricsAnswer).id === id;
}

/**
 * In a worker process: answers the supervisor's requests for metrics, over the
 * IPC channel, with `registry`'s.
 */
export function answerMetricsRequests(registry: Registry): void {
  process.on("message", (message: unknown) => {
    if (!isRequest(message)) return;
    const reply = (answer: MetricsAnswer) =>
      // The supervisor may be gone meanwhile: then nobody waits for the answer.
      process.send?.(answer, undefined, undefined, () => undefined);
    registry.getMetricsAsJSON().then(
      (metrics) => reply({ type: "taskwire:metrics", id: message.id, metrics }),
      (error: Error) => reply({ type: "taskwire:metrics", id: message.id, error: error.message }),
    );
  });
}

let nextId = 0;

/**
 * In the supervisor: asks a worker process for its metrics over its IPC
 * channel. Rejects when the process exits, fails to collect them, or does not
 * answer within `timeoutMs`.
 */
export function requestMetrics(child: ChildProcess, timeoutMs: number): Promise<MetricsJson> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const fail = (reason: string) => {
      stop();
      reject(new Error(`worker process ${child.pid}: ${reason}`));
    };
    const onMessage = (message: unknown) => {
      if (!isAnswer(message, id)) return;
      stop();
      if (message.metrics) resolve(message.metrics);
      else reject(new Error(`worker process ${child.pid}: ${message.error ?? "no metrics"}`));
    };
    const onExit = () => fail("exited before it answered");
    const timer = setTimeout(() => fail(`no metrics within ${timeoutMs}ms`), timeoutMs);
    const stop = () => {
      clearTimeout(timer);
      child.off("message", onMessage);
      child.off("exit", onExit);
    };
    if (!child.connected) return fail("its IPC channel is closed");
    child.on("message", onMessage);
    child.once("exit", onExit);
    child.send({ type: "taskwire:metrics-request", id } satisfies MetricsRequest, (error) => {
      if (error) fail(`cannot ask it: ${error.message}`);
    });
  });
}

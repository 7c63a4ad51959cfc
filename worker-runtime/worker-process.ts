/**
 * The entry point of a worker process started by the supervisor. Reads its
 * job from the environment, runs the handler module's services, reports
 * "ready" over IPC, answers the supervisor's requests for its metrics, and
 * drains on SIGTERM.
 *
 * Environment: TASKWIRE_NATS (a URL) or TASKWIRE_NATS_SETTINGS (connection
 * settings as JSON, secrets as references), TASKWIRE_WORKER_MODULE, TASKWIRE_WORKER_ID,
 * optional TASKWIRE_CONCURRENCY, TASKWIRE_SHUTDOWN_GRACE_MS, TASKWIRE_ACK_WAIT_MS,
 * TASKWIRE_REPLICAS, TASKWIRE_RETENTION (RetentionSettings as JSON). A NATS that does not answer yet is waited for.
 */
import { collectDefaultMetrics } from "prom-client";
import { flushTraces, type RetentionSettings } from "../sdk/core/index.ts";
import { describeServers, type NatsConnectionSettings } from "../sdk/nats/index.ts";
import { createWorker } from "./create-worker.ts";
import { loadImplementations, unloadableExitCode } from "./load-implementations.ts";
import { answerMetricsRequests } from "./metrics-ipc.ts";
import { workerMetricsRegistry } from "./worker-metrics.ts";

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`worker process: ${name} is not set`);
  return value;
};
const optionalNumber = (name: string) => (process.env[name] ? Number(process.env[name]) : undefined);

const workerId = env("TASKWIRE_WORKER_ID");
// The supervisor serves every process's metrics, this one's process metrics with them.
collectDefaultMetrics({ register: workerMetricsRegistry });
answerMetricsRequests(workerMetricsRegistry);
const shutdownGraceMs = optionalNumber("TASKWIRE_SHUTDOWN_GRACE_MS");
// The supervisor is gone (killed, even by SIGKILL, which it cannot pass on): nobody
// will stop this process. Listened for from the start, for it may end while the
// handler module loads or NATS connects: then there is nothing to drain.
let parentGone: () => void = () => process.exit(0);
process.once("disconnect", () => {
  // Nor will anybody SIGKILL it a second after the grace period, as the supervisor does,
  // and a drain waits on a NATS that does not answer (a partition) for minutes: so it
  // ends itself then.
  const limitMs = (shutdownGraceMs ?? 30_000) + 1_000;
  setTimeout(() => {
    console.error(`worker ${workerId}: its supervisor is gone and draining took over ${limitMs}ms: exiting`);
    process.exit(1);
  }, limitMs).unref();
  parentGone();
});
const services = await loadImplementations(env("TASKWIRE_WORKER_MODULE")).catch((error: Error) => {
  // It would fail so at every start: the supervisor does not restart it.
  console.error(`worker ${workerId}: ${error.message}`);
  process.exit(unloadableExitCode);
});
const nats = process.env.TASKWIRE_NATS_SETTINGS
  ? (JSON.parse(process.env.TASKWIRE_NATS_SETTINGS) as NatsConnectionSettings)
  : env("TASKWIRE_NATS");
const worker = await createWorker({
  nats,
  services,
  workerId,
  // A NATS that does not answer yet is waited for: not a crash for the supervisor to count.
  onWaitingForNats: (reason) =>
    console.error(`worker ${workerId}: waiting for NATS at ${describeServers(nats)}: ${reason}`),
  concurrency: optionalNumber("TASKWIRE_CONCURRENCY"),
  shutdownGraceMs,
  topology: {
    ackWaitMs: optionalNumber("TASKWIRE_ACK_WAIT_MS"),
    replicas: optionalNumber("TASKWIRE_REPLICAS"),
    ...(process.env.TASKWIRE_RETENTION ? (JSON.parse(process.env.TASKWIRE_RETENTION) as RetentionSettings) : {}),
  },
}).catch((error: Error) => {
  // One line, not a stack: the supervisor restarts the process with a backoff.
  console.error(`worker ${workerId}: could not start: ${error.message}`);
  process.exit(1);
});
process.send?.({ type: "ready", workerId: worker.id, workerTypes: worker.workerTypes });
const stop = () => {
  worker
    .close()
    .then(
      () => 0,
      (error) => {
        console.error(`worker ${worker.id}: ${(error as Error).message}`);
        return 1;
      },
    )
    // The last attempts' spans, which a batching span processor may still hold, go first.
    .then((code) => flushTraces().then(() => process.exit(code)));
};
// `on`, not `once`: a second signal (the supervisor's SIGTERM after a terminal's
// SIGINT to the whole group) must not kill the drain. close() is idempotent.
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
// From now on, the supervisor's end drains it like a signal.
parentGone = stop;

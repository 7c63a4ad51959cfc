/**
 * A client process: builds the client of one system, measures it and reports.
 * Protocol: sends "ready", receives a {@link ClientJob}, sends a {@link ClientReport}.
 */
import { type ClientResult, type Measurement, measure } from "./measure.ts";
import type { Target, TargetSpec } from "./target.ts";

/** What the parent asks of a client process. */
export interface ClientJob {
  readonly type: "job";
  readonly target: TargetSpec;
  readonly measurement: Measurement;
}

/** What a client process answers. */
export type ClientReport =
  | { readonly type: "report"; readonly result: ClientResult }
  | { readonly type: "failed"; readonly message: string };

/** Only the chosen system's client library is loaded, so that it alone counts in this process's memory. */
async function createTarget(spec: TargetSpec): Promise<Target> {
  switch (spec.kind) {
    case "raw-jetstream":
      return (await import("./systems/raw-jetstream.ts")).createRawJetStreamTarget(spec.nats);
    case "protocol-floor":
      return (await import("./systems/protocol-floor.ts")).createProtocolFloorTarget(spec.nats);
    case "taskwire-direct":
      return (await import("./systems/taskwire.ts")).createTaskwireTarget({ nats: spec.nats }, spec.keyed);
    case "taskwire-gateway":
      return (await import("./systems/taskwire.ts")).createTaskwireTarget({
        gateway: spec.url,
        protocol: spec.protocol,
      });
    case "bullmq":
      return (await import("./systems/bullmq.ts")).createBullMqTarget(spec.redisPort);
  }
}

async function run(job: ClientJob): Promise<ClientReport> {
  try {
    const target = await createTarget(job.target);
    try {
      return { type: "report", result: await measure(target, job.measurement) };
    } finally {
      await target.close();
    }
  } catch (error) {
    return { type: "failed", message: error instanceof Error ? error.message : String(error) };
  }
}

// A listener for the whole life of the process keeps the IPC channel referenced:
// a measurement that stalls with nothing else pending then ends in the run's timeout.
process.on("message", (job: ClientJob) => {
  void run(job).then((report) => process.send?.(report));
});
process.once("SIGTERM", () => process.exit(0));
process.send?.({ type: "ready" });

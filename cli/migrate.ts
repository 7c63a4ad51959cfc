import { jetstreamManager } from "@nats-io/jetstream";
import { checkpointBucket } from "../sdk/client/index.ts";
import { loadDefinitions, topology } from "../sdk/core/index.ts";
import {
  describeDifference,
  jetStreamOptionsOf,
  openConnection,
  presenceTtlMs,
  provisionBucket,
  provisionStatusBucket,
  provisionTaskIndex,
  provisionThroughputStream,
  provisionWorkerType,
  type SettingDifference,
} from "../sdk/nats/index.ts";
import type { TaskwireConfig } from "./load-config.ts";

/**
 * `taskwire migrate [--dry-run]`: brings what is in place to the settings of
 * taskwire.yaml and of the gateway's task types (replicas, ack_wait, limits,
 * TTLs), creating what is missing. Processes never change these by themselves
 * (docs/operations.md). With `dryRun`, only says what it would change. Returns
 * one line per setting, or one saying that everything matches.
 */
export async function migrate(config: TaskwireConfig, dryRun: boolean): Promise<string[]> {
  const definitions = await loadDefinitions(config.gateway.services);
  const { nc } = await openConnection(config.nats.connection, "taskwire-migrate");
  const differences: SettingDifference[] = [];
  const context = { mode: dryRun ? "plan" : "apply", report: (d: SettingDifference) => differences.push(d) } as const;
  const options = { ackWaitMs: config.worker.ackWaitMs, replicas: config.nats.replicas, ...config.retention };
  try {
    const jsm = await jetstreamManager(nc, jetStreamOptionsOf(nc));
    // The status bucket first: what a process that says nothing of replicas follows.
    await provisionStatusBucket(nc, options, context);
    for (const definition of definitions) {
      await provisionWorkerType(jsm, definition, options, context);
      await provisionTaskIndex(jsm, definition, options, context);
    }
    await provisionBucket(
      nc,
      topology.workersBucket,
      { ttlMs: undefined, defaultTtlMs: presenceTtlMs },
      options,
      context,
    );
    await provisionBucket(nc, checkpointBucket, { ttlMs: undefined, defaultTtlMs: 0 }, options, context);
    await provisionThroughputStream(jsm, options, context);
  } finally {
    await nc.close();
  }
  if (differences.length === 0) {
    return [`taskwire migrate: everything matches ${config.path} and the task types' options`];
  }
  return differences.map(describeDifference);
}

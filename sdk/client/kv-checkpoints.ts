import { Code } from "@connectrpc/connect";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { TaskError } from "../core/index.ts";
import { provisionBucket, type StorageOptions } from "../nats/index.ts";
import type { CheckpointStore } from "./submit-many.ts";

/** The bucket of bulk-submit checkpoints: one key per name, the index to resume at. */
export const checkpointBucket = "taskwire_checkpoints";
const namePattern = /^[-/_=.a-zA-Z0-9]{1,200}$/;

/** Checkpoints of `submitMany` in a JetStream KV bucket, created on first use (with the deployment's replicas). */
export function kvCheckpoints(nc: NatsConnection, options: StorageOptions = {}): CheckpointStore {
  let bucket: Promise<KV> | undefined;
  const open = () => {
    bucket ??= provisionBucket(nc, checkpointBucket, { ttlMs: undefined, defaultTtlMs: 0 }, options);
    return bucket;
  };
  const check = (name: string) => {
    if (!namePattern.test(name)) {
      throw new TaskError(
        `checkpoint name "${name}" must be 1 to 200 letters, digits or - / _ = .`,
        Code.InvalidArgument,
      );
    }
    return name;
  };
  return {
    async load(name) {
      const entry = await (await open()).get(check(name));
      return entry && entry.length > 0 ? Number(entry.string()) : 0;
    },
    async save(name, next) {
      await (await open()).put(check(name), String(next));
    },
  };
}

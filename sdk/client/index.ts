/**
 * The public face: createClient over NATS or a gateway, task handles, submitMany.
 * The top layer: it uses nats/, gateway-client/, core/ and wire/.
 *
 * @module
 */

export {
  createClient,
  type DirectClientOptions,
  type GatewayClientOptions,
  type TaskwireClient,
  type TransportClientOptions,
} from "./create-client.ts";
export { checkpointBucket } from "./kv-checkpoints.ts";
export type { SubmitItem, SubmitManyOptions, SubmitManyProgress, SubmitManySummary } from "./submit-many.ts";
export { decodeResult } from "./task-handle.ts";

import { connect, type NatsConnection } from "@nats-io/transport-node";
import { fromNatsError } from "./nats-error.js";

/**
 * A URL is connected to (and `owned`: the caller closes it); an open
 * connection is used as is. Connection failures become UNAVAILABLE TaskErrors.
 *
 * A connection opened here never gives up reconnecting: a gateway or worker
 * outlives any NATS outage (nats.js stops after 10 attempts by default).
 */
export async function openConnection(
  nats: string | NatsConnection,
  name?: string,
): Promise<{ nc: NatsConnection; owned: boolean }> {
  if (typeof nats !== "string") return { nc: nats, owned: false };
  try {
    return { nc: await connect({ servers: nats, name, maxReconnectAttempts: -1 }), owned: true };
  } catch (error) {
    throw fromNatsError(error, `connecting to NATS at ${nats}`);
  }
}

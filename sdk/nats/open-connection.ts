import { Code } from "@connectrpc/connect";
import { type ConnectionOptions, connect, createInbox, type NatsConnection } from "@nats-io/transport-node";
import { TaskError } from "../core/index.ts";

/**
 * A URL is connected to (and `owned`: the caller closes it); an open
 * connection is used as is. A failure to connect is an UNAVAILABLE TaskError.
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
    // noAsyncTraces: nats.js otherwise builds an Error per request for its stack, a
    // fifth of a busy client's CPU.
    return { nc: await connect({ servers: nats, name, maxReconnectAttempts: -1, noAsyncTraces: true }), owned: true };
  } catch (error) {
    throw new TaskError(`cannot connect to NATS at ${nats}: ${(error as Error).message}`, Code.Unavailable, {
      cause: error,
    });
  }
}

/**
 * A new inbox subject under the connection's `inboxPrefix`, as nats.js' own
 * requests make them: an account allowed to subscribe only below its prefix
 * gets every reply. (`NatsConnection` does not declare the options it keeps.)
 */
export function newInbox(nc: NatsConnection): string {
  return createInbox((nc as { options?: ConnectionOptions }).options?.inboxPrefix);
}

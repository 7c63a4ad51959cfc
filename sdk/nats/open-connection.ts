import { Code } from "@connectrpc/connect";
import { type ConnectionOptions, connect, createInbox, type NatsConnection } from "@nats-io/transport-node";
import { TaskError } from "../core/index.ts";
import {
  describeServers,
  isNatsConnection,
  type NatsConnectionSettings,
  setJetStreamOptions,
  toConnectionOptions,
} from "./connection-settings.ts";

/**
 * A URL or {@link NatsConnectionSettings} is connected to (and `owned`: the
 * caller closes it); an open connection is used as is. A failure to connect is
 * an UNAVAILABLE TaskError naming the servers without their credentials, and
 * the cause (e.g. an authorization violation), never a secret.
 *
 * A connection opened here never gives up reconnecting: a gateway or worker
 * outlives any NATS outage (nats.js stops after 10 attempts by default).
 * Its JetStream domain or API prefix is recorded for {@link jetStreamOptionsOf}.
 */
export async function openConnection(
  nats: string | NatsConnectionSettings | NatsConnection,
  name?: string,
): Promise<{ nc: NatsConnection; owned: boolean }> {
  if (isNatsConnection(nats)) return { nc: nats, owned: false };
  const where = describeServers(nats);
  let resolved: Awaited<ReturnType<typeof toConnectionOptions>>;
  try {
    resolved = await toConnectionOptions(nats);
  } catch (error) {
    throw new TaskError(`cannot connect to NATS at ${where}: ${(error as Error).message}`, Code.InvalidArgument);
  }
  try {
    // noAsyncTraces: nats.js otherwise builds an Error per request for its stack, a
    // fifth of a busy client's CPU.
    const nc = await connect({
      name,
      ...resolved.options,
      maxReconnectAttempts: -1,
      noAsyncTraces: true,
    });
    setJetStreamOptions(nc, resolved.jetstream);
    return { nc, owned: true };
  } catch (error) {
    throw new TaskError(`cannot connect to NATS at ${where}: ${connectFailure(error)}`, Code.Unavailable, {
      cause: error,
    });
  }
}

/** nats.js' message, with the server's reason when it is wrapped (e.g. "Authorization Violation"). */
function connectFailure(error: unknown): string {
  const message = (error as Error).message;
  const cause = (error as Error).cause as Error | undefined;
  return cause?.message && !message.includes(cause.message) ? `${message}: ${cause.message}` : message;
}

/**
 * A new inbox subject under the connection's `inboxPrefix`, as nats.js' own
 * requests make them: an account allowed to subscribe only below its prefix
 * gets every reply. (`NatsConnection` does not declare the options it keeps.)
 */
export function newInbox(nc: NatsConnection): string {
  return createInbox((nc as { options?: ConnectionOptions }).options?.inboxPrefix);
}

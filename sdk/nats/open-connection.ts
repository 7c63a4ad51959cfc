import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { type ConnectionOptions, connect, createInbox, errors, type NatsConnection } from "@nats-io/transport-node";
import { TaskError } from "../core/index.ts";
import {
  describeServers,
  isNatsConnection,
  type NatsConnectionSettings,
  setJetStreamOptions,
  toConnectionOptions,
} from "./connection-settings.ts";

/** Options of {@link openConnection}. */
export interface OpenConnectionOptions {
  /**
   * Wait for servers that do not answer yet (refused, timed out, a name not
   * resolved): try again, every second at first and every 5 s at most, until one
   * answers, calling this with why on the first failed try and about once a
   * minute after. Any other failure (a refused login, a TLS error) is final.
   * Without it, the first failure is.
   */
  readonly onWaiting?: (reason: string) => void;
  /** Stops the waiting: the call rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

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
  options: OpenConnectionOptions = {},
): Promise<{ nc: NatsConnection; owned: boolean }> {
  if (isNatsConnection(nats)) return { nc: nats, owned: false };
  const where = describeServers(nats);
  let resolved: Awaited<ReturnType<typeof toConnectionOptions>>;
  try {
    resolved = await toConnectionOptions(nats);
  } catch (error) {
    throw new TaskError(`cannot connect to NATS at ${where}: ${(error as Error).message}`, Code.InvalidArgument);
  }
  for (let attempt = 1; ; attempt++) {
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
      const reason = connectFailure(error);
      if (!options.onWaiting || !unanswered(error)) {
        throw new TaskError(`cannot connect to NATS at ${where}: ${reason}`, Code.Unavailable, { cause: error });
      }
      // Once a minute at the longest delay: a log line, not a stream of them.
      if (attempt === 1 || attempt % 12 === 0) options.onWaiting(reason);
      await sleep(Math.min(1_000 * attempt, 5_000), undefined, { signal: options.signal });
    }
  }
}

/** A failure that a server starting, or coming back, ends: refused, timed out, a name not resolved yet. */
function unanswered(error: unknown): boolean {
  if (error instanceof errors.TimeoutError) return true;
  const code = ((error as Error).cause as { code?: string } | undefined)?.code;
  if (code && ["ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH"].includes(code)) return true;
  return /ENOTFOUND|EAI_AGAIN/.test((error as Error).message);
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

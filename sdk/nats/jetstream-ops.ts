import { JetStreamApiError } from "@nats-io/jetstream";
import type { Msg, MsgHdrs, NatsConnection } from "@nats-io/transport-node";
import { jsApiPrefix } from "./connection-settings.ts";
import { newInbox } from "./open-connection.ts";
import type { RequestPipeline } from "./request-pipeline.ts";

/** What JetStream answers to a stored publish. */
export interface PubAck {
  readonly stream: string;
  readonly seq: number;
  /** The message id was seen within the duplicate window: nothing was stored. */
  readonly duplicate: boolean;
  /** A counter's value after the increment (ADR-49), as the server writes it. */
  readonly value?: string;
}

/** A message read from a stream. */
export interface StoredMessage {
  readonly seq: number;
  readonly data: Uint8Array;
}

type ApiErrorBody = ConstructorParameters<typeof JetStreamApiError>[0];

/**
 * Publishes to a stream and resolves once JetStream stored it (`js.publish()`
 * over a {@link RequestPipeline}). Refusals are `JetStreamApiError`s.
 */
export function publishToStream(
  requests: RequestPipeline,
  subject: string,
  data: Uint8Array,
  headers?: MsgHdrs,
): Promise<PubAck> {
  // A chain, not an async function: its frame would live until the PubAck (see NatsTaskBackend.submit).
  return requests.request(subject, data, headers).then(pubAckOf);
}

function pubAckOf(msg: Msg): PubAck {
  const reply = msg.json<{ stream?: string; seq?: number; duplicate?: boolean; val?: string; error?: ApiErrorBody }>();
  if (reply.error) throw new JetStreamApiError(reply.error);
  const ack = { stream: reply.stream ?? "", seq: reply.seq ?? 0, duplicate: reply.duplicate === true };
  return reply.val === undefined ? ack : { ...ack, value: reply.val };
}

/**
 * A direct get (the stream needs `allow_direct`): the last message on a subject,
 * or the first one at or after sequence `from` (default 0) matching a subject
 * filter. Null when there is none.
 */
export async function directGet(
  requests: RequestPipeline,
  stream: string,
  query: { lastBySubject: string } | { nextBySubject: string; from?: number },
): Promise<StoredMessage | null> {
  const reply =
    "lastBySubject" in query
      ? await requests.request(`${jsApiPrefix(requests.nc)}.DIRECT.GET.${stream}.${query.lastBySubject}`, empty)
      : await requests.request(
          `${jsApiPrefix(requests.nc)}.DIRECT.GET.${stream}`,
          encoder.encode(JSON.stringify({ seq: query.from ?? 0, next_by_subj: query.nextBySubject })),
        );
  return storedMessage(reply, stream);
}

/** A message of a batched direct get: where it was stored, and when. */
export interface BatchedMessage extends StoredMessage {
  readonly subject: string;
  /** When the server stored it, in µs since the epoch. */
  readonly storedAtUs: number;
}

/**
 * A batched direct get (ADR-31, nats-server 2.11 or later): `{ seq, batch }`
 * reads up to `batch` messages from sequence `seq` on (only those on
 * `next_by_subj`, when given); `{ start_time, batch }` from the first message
 * stored at or after that time (also filtered by `next_by_subj`); `{ multi_last }` the last
 * message on each of some subjects that has one. One request, answered by a
 * message each and an end-of-batch status; rejects when that end has not come
 * within `timeoutMs` (a connection lost halfway through). A stream that does
 * not exist on the server: a `JetStreamApiError` of status 503.
 */
export function directGetBatch(
  nc: NatsConnection,
  stream: string,
  query:
    | { readonly seq: number; readonly batch: number; readonly next_by_subj?: string }
    | { readonly start_time: string; readonly batch: number; readonly next_by_subj?: string }
    | { readonly multi_last: readonly string[] },
  timeoutMs = 10_000,
): Promise<BatchedMessage[]> {
  return new Promise((resolve, reject) => {
    const found: BatchedMessage[] = [];
    let timer: NodeJS.Timeout | undefined;
    let ended = false;
    const end = (error?: Error) => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      subscription.unsubscribe();
      if (error) reject(error);
      else resolve(found);
    };
    const subscription = nc.subscribe(newInbox(nc), {
      callback: (error, reply) => {
        if (error) return end(error);
        const code = reply.headers?.code ?? 0;
        // 204: the end of the batch; 404: no message matches. (503: no such stream.)
        if (code === 204 || code === 404) return end();
        if (code !== 0) return end(apiError(reply, stream));
        found.push({
          ...stored(reply),
          subject: reply.headers?.get("Nats-Subject") ?? "",
          storedAtUs: microsecondsOf(reply.headers?.get("Nats-Time-Stamp") ?? ""),
        });
      },
    });
    timer = setTimeout(
      () => end(new Error(`direct get on ${stream}: no whole answer within ${timeoutMs} ms`)),
      timeoutMs,
    ).unref();
    try {
      nc.publish(`${jsApiPrefix(nc)}.DIRECT.GET.${stream}`, encoder.encode(JSON.stringify(query)), {
        reply: subscription.getSubject(),
      });
    } catch (error) {
      end(error as Error);
    }
  });
}

/**
 * True for a publish refused because its subject holds its one message already
 * (a task subject of `TASKS_<type>`): the task is queued, by another.
 */
export function isQueuedAlready(error: unknown): boolean {
  return error instanceof Error && /per subject/i.test(error.message);
}

/** True for the refusal of a direct get on a stream the server does not have (no responders). */
export function isNoSuchStream(error: unknown): boolean {
  return error instanceof JetStreamApiError && error.status === 503;
}

/** The last message on each of `subjects` that has one, by subject (see {@link directGetBatch}). */
export async function directGetLast(
  nc: NatsConnection,
  stream: string,
  subjects: readonly string[],
  timeoutMs = 10_000,
): Promise<Map<string, StoredMessage>> {
  const found = await directGetBatch(nc, stream, { multi_last: subjects }, timeoutMs);
  return new Map(found.map((message) => [message.subject, message]));
}

/** An RFC 3339 time with up to nanoseconds ("2026-12-05T11:44:29.123456789Z"), in µs since the epoch. */
function microsecondsOf(time: string): number {
  const fraction = /\.(\d+)/.exec(time)?.[1] ?? "";
  return Date.parse(time.replace(/\.\d+/, "")) * 1000 + Number(fraction.slice(0, 6).padEnd(6, "0"));
}

const empty = new Uint8Array(0);
const encoder = new TextEncoder();

function storedMessage(reply: Msg, stream: string): StoredMessage | null {
  const code = reply.headers?.code ?? 0;
  if (code === 404) return null;
  if (code !== 0) throw apiError(reply, stream);
  return stored(reply);
}

function stored(reply: Msg): StoredMessage {
  return { seq: Number(reply.headers?.get("Nats-Sequence")), data: reply.data };
}

function apiError(reply: Msg, stream: string): JetStreamApiError {
  const code = reply.headers?.code ?? 0;
  return new JetStreamApiError({
    code,
    err_code: 0,
    description: `direct get on ${stream}: ${reply.headers?.description || `status ${code}`}`,
  });
}

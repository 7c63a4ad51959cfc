import { headers, Match, type MsgHdrs } from "@nats-io/transport-node";
import { type Context, propagation, ROOT_CONTEXT, type TextMapGetter, type TextMapSetter } from "@opentelemetry/api";

/** The headers of a message about to be published: made on the first header set, where it had none. */
interface OutgoingHeaders {
  headers: MsgHdrs | undefined;
}

const setter: TextMapSetter<OutgoingHeaders> = {
  set(carrier, key, value) {
    carrier.headers ??= headers();
    carrier.headers.set(key, value);
  },
};

// Names compared without case: a publisher in another language may write "Traceparent".
const getter: TextMapGetter<MsgHdrs | undefined> = {
  keys: (carrier) => carrier?.keys() ?? [],
  get: (carrier, key) => carrier?.get(key, Match.IgnoreCase) || undefined,
};

/**
 * `into` with the trace context of `context` added by the registered
 * propagator (W3C: `traceparent`, `tracestate`), or new headers holding only
 * that where `into` is undefined. Without a propagator nothing is added, and
 * a message that had no headers still has none.
 */
export function injectTraceContext(context: Context, into: MsgHdrs | undefined): MsgHdrs | undefined {
  const carrier: OutgoingHeaders = { headers: into };
  propagation.inject(context, carrier, setter);
  return carrier.headers;
}

/**
 * The trace context a message's headers carry, over the root context: never
 * the receiver's own active one, which would make every message it takes a
 * child of whatever span happened to start its fetch loop.
 */
export function extractTraceContext(from: MsgHdrs | undefined): Context {
  return propagation.extract(ROOT_CONTEXT, from, getter);
}

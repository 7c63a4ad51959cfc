import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import {
  type Context,
  context,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type TextMapGetter,
  trace,
} from "@opentelemetry/api";
import { codeName, taskwireTracer } from "../sdk/core/index.ts";

/** A gateway call's SERVER span, and the context its implementation runs in. */
export interface RpcSpan {
  readonly span: Span;
  readonly context: Context;
}

/**
 * Codes that say the server failed, not the caller: a span's status is ERROR
 * for these only, as the RPC conventions ask of a server span.
 */
const serverFaults: ReadonlySet<Code> = new Set([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

/**
 * Starts the SERVER span of a gateway call, named after its rpc
 * (`taskwire.v1.TaskService/Submit`), with the attributes of the RPC
 * conventions (`rpc.system` "connect_rpc", `rpc.service`, `rpc.method`). Its
 * parent is the caller's trace context, read from the request's headers by
 * the registered propagator over the root context: the gateway's own context
 * (whatever was active when it started listening) is never a call's parent.
 */
export function startRpcSpan<C>(method: DescMethod, headers: C, getter: TextMapGetter<C>): RpcSpan {
  const parent = propagation.extract(ROOT_CONTEXT, headers, getter);
  const service = method.parent.typeName;
  const span = taskwireTracer().startSpan(`${service}/${method.name}`, { kind: SpanKind.SERVER }, parent);
  if (span.isRecording()) {
    span.setAttributes({ "rpc.system": "connect_rpc", "rpc.service": service, "rpc.method": method.name });
  }
  return { span, context: trace.isSpanContextValid(span.spanContext()) ? trace.setSpan(parent, span) : parent };
}

/**
 * Ends a call's span; `error`, where the call failed, sets
 * `rpc.connect_rpc.error_code` and, for a server fault, the ERROR status
 * with the error recorded.
 */
export function endRpcSpan(span: Span, error: unknown): void {
  if (error !== undefined && span.isRecording()) {
    const failure = ConnectError.from(error);
    span.setAttribute("rpc.connect_rpc.error_code", codeName(failure.code));
    if (serverFaults.has(failure.code)) {
      span.recordException(failure);
      span.setStatus({ code: SpanStatusCode.ERROR, message: failure.rawMessage });
    }
  }
  span.end();
}

const webHeadersGetter: TextMapGetter<Headers> = {
  keys: (headers) => [...headers.keys()],
  get: (headers, key) => headers.get(key) ?? undefined,
};

/**
 * Makes a span of every call that connect-node's handler serves (the gateway's
 * fast path makes its own): the outermost interceptor, so that a refusal by
 * authentication is a span too. A server stream's span lasts until its last
 * message, which the implementation yields within the span's context.
 */
export const tracingInterceptor: Interceptor = (next) => async (request) => {
  const call = startRpcSpan(request.method, request.header, webHeadersGetter);
  let response: Awaited<ReturnType<typeof next>>;
  try {
    response = await context.with(call.context, () => next(request));
  } catch (error) {
    endRpcSpan(call.span, error);
    throw error;
  }
  if (!response.stream) {
    endRpcSpan(call.span, undefined);
    return response;
  }
  return { ...response, message: tracedMessages(response.message, call) };
};

/** A stream's messages, each made within the call's context; the span ends with the stream. */
async function* tracedMessages<T>(stream: AsyncIterable<T>, call: RpcSpan): AsyncGenerator<T, void> {
  const messages = stream[Symbol.asyncIterator]();
  let failure: unknown;
  let done = false;
  try {
    for (;;) {
      const next = await context.with(call.context, () => messages.next());
      if (next.done) {
        done = true;
        return;
      }
      yield next.value;
    }
  } catch (error) {
    failure = error;
    done = true;
    throw error;
  } finally {
    endRpcSpan(call.span, failure);
    // Left early (the client hung up): the implementation's stream ends too.
    if (!done) await messages.return?.();
  }
}

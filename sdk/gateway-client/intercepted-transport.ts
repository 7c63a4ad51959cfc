import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import {
  createContextValues,
  type Interceptor,
  type StreamRequest,
  type StreamResponse,
  type Transport,
  type UnaryRequest,
  type UnaryResponse,
} from "@connectrpc/connect";

type AnyRequest = UnaryRequest<DescMessage, DescMessage> | StreamRequest<DescMessage, DescMessage>;
type AnyResponse = UnaryResponse<DescMessage, DescMessage> | StreamResponse<DescMessage, DescMessage>;
type Next = (request: AnyRequest) => Promise<AnyResponse>;

/**
 * `transport` with `interceptors` around every call, the first outermost, as
 * connect's own transports run them: each sees the request (its headers,
 * message, signal, context values) and the response, and may change or refuse
 * either. Without interceptors, `transport` itself.
 */
export function withInterceptors<T extends Transport>(transport: T, interceptors: Interceptor[], baseUrl: string): T {
  if (interceptors.length === 0) return transport;
  const base = baseUrl.replace(/\/$/, "");
  const send = (timeoutMs: number | undefined): Next => {
    const next: Next = (request) =>
      request.stream
        ? transport.stream(
            request.method as never,
            request.signal,
            timeoutMs,
            request.header,
            request.message,
            request.contextValues,
          )
        : transport.unary(
            request.method as never,
            request.signal,
            timeoutMs,
            request.header,
            request.message,
            request.contextValues,
          );
    return interceptors.reduceRight((inner, interceptor) => interceptor(inner as never) as Next, next);
  };
  const common = (method: { parent: { typeName: string }; name: string }, signal?: AbortSignal) => ({
    requestMethod: "POST",
    url: `${base}/${method.parent.typeName}/${method.name}`,
    signal: signal ?? new AbortController().signal,
  });
  return {
    ...transport,
    unary(method, signal, timeoutMs, header, input, contextValues) {
      return send(timeoutMs)({
        stream: false,
        service: method.parent,
        method,
        ...common(method, signal),
        header: new Headers(header),
        contextValues: contextValues ?? createContextValues(),
        message: create(method.input, input),
      } as AnyRequest) as never;
    },
    stream(method, signal, timeoutMs, header, input, contextValues) {
      return send(timeoutMs)({
        stream: true,
        service: method.parent,
        method,
        ...common(method, signal),
        header: new Headers(header),
        contextValues: contextValues ?? createContextValues(),
        message: created(method.input, input),
      } as AnyRequest) as never;
    },
  };
}

async function* created<I extends DescMessage>(
  schema: I,
  input: AsyncIterable<MessageInitShape<I>>,
): AsyncIterable<MessageShape<I>> {
  for await (const message of input) yield create(schema, message);
}

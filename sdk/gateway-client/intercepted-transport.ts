import { create, type DescMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import {
  type ContextValues,
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
    const next: Next = (request) => {
      const args = [
        request.method as never,
        request.signal,
        timeoutMs,
        request.header,
        request.message as never,
        request.contextValues,
      ] as const;
      return request.stream ? transport.stream(...args) : transport.unary(...args);
    };
    return interceptors.reduceRight((inner, interceptor) => interceptor(inner as never) as Next, next);
  };
  /** A call's request as interceptors see it. */
  const request = (
    stream: boolean,
    method: Parameters<Transport["unary"]>[0] | Parameters<Transport["stream"]>[0],
    signal: AbortSignal | undefined,
    header: ConstructorParameters<typeof Headers>[0],
    contextValues: ContextValues | undefined,
    message: unknown,
  ) =>
    ({
      stream,
      service: method.parent,
      method,
      requestMethod: "POST",
      url: `${base}/${method.parent.typeName}/${method.name}`,
      signal: signal ?? new AbortController().signal,
      header: new Headers(header),
      contextValues: contextValues ?? createContextValues(),
      message,
    }) as AnyRequest;
  return {
    ...transport,
    unary(method, signal, timeoutMs, header, input, contextValues) {
      const message = create(method.input, input);
      return send(timeoutMs)(request(false, method, signal, header, contextValues, message)) as never;
    },
    stream(method, signal, timeoutMs, header, input, contextValues) {
      const messages = created(method.input, input);
      return send(timeoutMs)(request(true, method, signal, header, contextValues, messages)) as never;
    },
  };
}

async function* created<I extends DescMessage>(
  schema: I,
  input: AsyncIterable<MessageInitShape<I>>,
): AsyncIterable<MessageShape<I>> {
  for await (const message of input) yield create(schema, message);
}

import * as http2 from "node:http2";
import type {
  DescMessage,
  DescMethodStreaming,
  DescMethodUnary,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import {
  appendHeaders,
  Code,
  ConnectError,
  type StreamResponse,
  type Transport,
  type UnaryResponse,
} from "@connectrpc/connect";
import { context, propagation } from "@opentelemetry/api";
import { onAbort } from "../core/index.ts";
import {
  decodeBody,
  EnvelopeSplitter,
  encodeBody,
  endStreamFlag,
  endStreamFromJson,
  envelope,
  errorFromJsonBytes,
  trailerDemux,
  validateConnectResponse,
  validateGrpcResponse,
  validateTrailer,
  webHeaders,
} from "../wire/index.ts";
import { GatewaySession, type GatewaySessionOptions } from "./gateway-session.ts";

/** A Connect transport that can be closed: its HTTP/2 session ends. */
export interface ClosableTransport extends Transport {
  close(): void;
}

/**
 * The protocols the SDK speaks to a gateway.
 *
 * @inline
 */
export type GatewayProtocol = "connect" | "grpc";

/** Options of {@link createGatewayTransport}. */
export interface GatewayTransportOptions extends GatewaySessionOptions {
  /** "connect" (binary Connect) or "grpc". @default "connect" */
  protocol?: GatewayProtocol;
  /** Headers sent with every call, such as an authorization token; a call's own headers win. */
  headers?: ConstructorParameters<typeof Headers>[0];
}

/** A response as it came: its status, headers, HTTP trailers, and body. */
interface ResponseParts {
  status: number;
  header: Headers;
  /** HTTP trailers (gRPC; Connect's unary trailers are headers, its streams' in the last envelope). */
  trailer: Headers;
  body: Buffer;
}

/** What a protocol adds to a call over HTTP/2: its headers, its body, how its answer is read. */
interface WireProtocol {
  /** The request headers but the user's: method, path, content type and deadline. */
  headers(path: string, streaming: boolean, timeoutMs: number | undefined): http2.OutgoingHttpHeaders;
  unaryBody(message: Uint8Array): Uint8Array;
  /** A unary call's output bytes with its header and trailer; throws the call's ConnectError. */
  unaryAnswer(response: ResponseParts): { bytes: Uint8Array; header: Headers; trailer: Headers };
  /** Checks a stream's status and headers; throws the call's ConnectError. */
  streamHead(status: number, header: Headers): void;
  /** Checks a stream's end, `trailer` filled; throws the call's ConnectError. */
  streamEnd(header: Headers, trailer: Headers, endStream: Headers | undefined): void;
}

/** What the SDK's calls send as their `user-agent`, where the caller sends none. */
export const userAgent = "taskwire-js";

/** Binary Connect: a unary message as the body, an error as JSON with an HTTP status; streams enveloped, their end in JSON. */
const connectProtocol: WireProtocol = {
  headers(path, streaming, timeoutMs) {
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": path,
      "content-type": streaming ? "application/connect+proto" : "application/proto",
      "connect-protocol-version": "1",
    };
    if (timeoutMs !== undefined) headers["connect-timeout-ms"] = String(timeoutMs);
    return headers;
  },
  unaryBody: (message) => message,
  unaryAnswer({ status, header: responseHeader, body }) {
    const [header, trailer] = trailerDemux(responseHeader);
    const { isUnaryError, unaryError } = validateConnectResponse("unary", true, status, header);
    if (isUnaryError) throw errorFromJsonBytes(body, appendHeaders(header, trailer), unaryError);
    return { bytes: body, header, trailer };
  },
  streamHead(status, header) {
    validateConnectResponse("server_streaming", true, status, header);
  },
  streamEnd(_header, _trailer, endStream) {
    if (!endStream) throw new ConnectError("protocol error: missing EndStreamResponse", Code.InvalidArgument);
  },
};

/**
 * gRPC: every message in a five-byte envelope (flags, then its length); the
 * status in the trailers, or in the headers of a trailers-only answer. Read
 * with connect's own `validateResponse` and `validateTrailer`.
 */
const grpcProtocol: WireProtocol = {
  headers(path, _streaming, timeoutMs) {
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc+proto",
      te: "trailers",
    };
    if (timeoutMs !== undefined) headers["grpc-timeout"] = `${timeoutMs}m`;
    return headers;
  },
  unaryBody: (message) => envelope(0, message),
  unaryAnswer({ status, header, trailer, body }) {
    const { headerError } = validateGrpcResponse(status, header);
    validateTrailer(trailer, header);
    const envelopes = new EnvelopeSplitter();
    const [only, extra] = envelopes.push(body);
    if (extra) {
      throw new ConnectError("protocol error: received extra output message for unary method", Code.Unimplemented);
    }
    if (envelopes.pending) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
    if (!only) {
      if (headerError) throw headerError;
      throw new ConnectError(
        "protocol error: missing output message for unary method",
        trailer.has("grpc-status") ? Code.Unimplemented : Code.Unknown,
      );
    }
    if (headerError) {
      throw new ConnectError(
        "protocol error: received output message for unary method with error status",
        Code.Unknown,
      );
    }
    return { bytes: only.data, header, trailer };
  },
  streamHead(status, header) {
    const { headerError } = validateGrpcResponse(status, header);
    if (headerError) throw headerError;
  },
  streamEnd(header, trailer) {
    validateTrailer(trailer, header);
  },
};

/** Node's errors that mean the gateway cannot be reached. */
const unreachable = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT"]);
/** Node's errors that mean the call's connection or stream broke under it. */
const broken = new Set(["ECONNRESET", "ERR_STREAM_DESTROYED", "ERR_HTTP2_INVALID_STREAM"]);

/** Messages a stream holds for a reader that lags, beyond which its HTTP/2 stream is paused. */
const streamHighWater = 256;

/**
 * The SDK's gateway transport: unary and server-streaming calls in binary
 * Protobuf, in the Connect or the gRPC protocol, over one HTTP/2 session,
 * written and read straight on Node's HTTP/2 streams with the compiled codec
 * of `wire-codec.ts`. connect-node's client spends 300-650 µs of CPU per unary
 * call on the development machine (async iterables, linked abort controllers,
 * web Headers), against 62 µs for Node's HTTP/2 client itself
 * (docs/decisions/gateway-client-transport.md). Errors are
 * decoded with connect's own functions, so a call fails with the same
 * ConnectError, details included. The session holds the process open only
 * while calls are in flight. Client and bidi streams, which no Taskwire service
 * has, are refused.
 */
export function createGatewayTransport(baseUrl: string, options: GatewayTransportOptions = {}): ClosableTransport {
  const protocolName = options.protocol ?? "connect";
  const protocol = protocolName === "grpc" ? grpcProtocol : connectProtocol;
  const origin = new URL(baseUrl);
  const prefix = origin.pathname.replace(/\/$/, "");
  const defaultHeaders = options.headers === undefined ? undefined : new Headers(options.headers);
  // A session that fails or is told to go away takes no more calls; the next one opens
  // another (one told to go away may still finish its calls while the next one starts).
  let current: GatewaySession | undefined;
  const open = (): GatewaySession => {
    if (current?.usable) return current;
    const opened = new GatewaySession(origin, options);
    const forget = () => {
      if (current === opened) current = undefined;
    };
    opened.session.once("close", forget);
    opened.session.once("goaway", forget);
    opened.session.on("error", forget); // each call in flight sees the error on its own stream
    current = opened;
    return opened;
  };

  /**
   * Sends a call's request; its Exchange, or undefined after `onFail` has the
   * error (the signal aborted already, the body could not be encoded, no session).
   */
  const start = (
    method: DescMethodUnary | DescMethodStreaming,
    signal: AbortSignal | undefined,
    timeoutMs: number | undefined,
    header: ConstructorParameters<typeof Headers>[0],
    body: () => Uint8Array,
    onFail: (error: ConnectError) => void,
  ): Exchange | undefined => {
    if (signal?.aborted) {
      onFail(ConnectError.from(signal.reason, Code.Canceled));
      return undefined;
    }
    // As connect-node: a timeout of zero or less is none.
    const deadlineMs = timeoutMs !== undefined && timeoutMs > 0 ? Math.ceil(timeoutMs) : undefined;
    const path = `${prefix}/${method.parent.typeName}/${method.name}`;
    // The client's default headers, the caller's trace context (traceparent, by the
    // registered propagator: the gateway's span of the call is its child), the call's,
    // and then the protocol's, which win (as in connect's transports).
    const headers: http2.OutgoingHttpHeaders = {};
    defaultHeaders?.forEach((value, name) => {
      headers[name] = value;
    });
    propagation.inject(context.active(), headers);
    if (header !== undefined) {
      new Headers(header).forEach((value, name) => {
        headers[name] = value;
      });
    }
    // As connect-node names itself (connect-es/<version>), unless the caller names itself.
    headers["user-agent"] ??= userAgent;
    Object.assign(headers, protocol.headers(path, method.methodKind !== "unary", deadlineMs));
    let bytes: Uint8Array;
    try {
      bytes = body();
    } catch (error) {
      onFail(ConnectError.from(error, Code.Internal));
      return undefined;
    }
    let session: GatewaySession;
    let stream: http2.ClientHttp2Stream;
    try {
      session = open();
      stream = session.session.request(headers);
    } catch (error) {
      onFail(fromNodeError(error));
      return undefined;
    }
    session.begin();
    const exchange = new Exchange(stream, signal, deadlineMs, onFail, () => session.end());
    stream.end(bytes);
    return exchange;
  };

  return {
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0],
      input: MessageInitShape<I>,
    ): Promise<UnaryResponse<I, O>> {
      return new Promise((resolve, reject) => {
        const call = start(
          method,
          signal,
          timeoutMs,
          header,
          () => protocol.unaryBody(encodeBody(method.input, input)),
          reject,
        );
        if (!call) return;
        const chunks: Buffer[] = [];
        call.stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        call.stream.on("end", () => {
          let answer: ReturnType<WireProtocol["unaryAnswer"]>;
          let message: MessageShape<O>;
          try {
            answer = protocol.unaryAnswer({
              status: call.status,
              header: call.header,
              trailer: call.trailer,
              body: Buffer.concat(chunks),
            });
            message = decodeBody(method.output, answer.bytes, Code.Internal);
          } catch (error) {
            return call.fail(ConnectError.from(error));
          }
          call.finish(() =>
            resolve({
              stream: false,
              service: method.parent,
              method,
              header: answer.header,
              message,
              trailer: answer.trailer,
            }),
          );
        });
      });
    },

    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0],
      input: AsyncIterable<MessageInitShape<I>>,
    ): Promise<StreamResponse<I, O>> {
      if (method.methodKind !== "server_streaming") {
        throw new ConnectError(
          `${method.parent.typeName}.${method.name}: the SDK's gateway transport has no client or bidi streams`,
          Code.Unimplemented,
        );
      }
      let request: MessageInitShape<I> | undefined;
      for await (const message of input) {
        request = message;
        break;
      }
      if (request === undefined) {
        throw new ConnectError("protocol error: missing input message for server streaming method", Code.Internal);
      }
      const only = request;
      return new Promise((resolve, reject) => {
        let messages: MessageStream<MessageShape<O>> | undefined;
        const call = start(
          method,
          signal,
          timeoutMs,
          header,
          () => envelope(0, encodeBody(method.input, only)),
          // Before the headers came the call itself fails; after, its stream of messages.
          (error) => (messages ? messages.fail(error) : reject(error)),
        );
        if (!call) return;
        const trailer = new Headers();
        let endStream: Headers | undefined;
        const envelopes = new EnvelopeSplitter();
        call.stream.once("response", () => {
          try {
            protocol.streamHead(call.status, call.header);
          } catch (error) {
            return call.fail(ConnectError.from(error));
          }
          messages = new MessageStream(
            () => call.stream.pause(),
            () => call.stream.resume(),
            () => call.fail(new ConnectError("the stream's reader stopped", Code.Canceled)),
          );
          resolve({ stream: true, service: method.parent, method, header: call.header, message: messages, trailer });
        });
        call.stream.on("data", (chunk: Buffer) => {
          try {
            for (const { flags, data } of envelopes.push(chunk)) {
              if (endStream)
                throw new ConnectError("protocol error: received extra EndStreamResponse", Code.InvalidArgument);
              if (protocolName === "connect" && flags & endStreamFlag) {
                const end = endStreamFromJson(data);
                endStream = end.metadata;
                for (const [name, value] of end.metadata) trailer.append(name, value);
                if (end.error) {
                  // As connect's: the error's metadata has the response headers too.
                  for (const [name, value] of call.header) end.error.metadata.append(name, value);
                  throw end.error;
                }
              } else messages?.push(decodeBody(method.output, data, Code.Internal));
            }
          } catch (error) {
            call.fail(ConnectError.from(error));
          }
        });
        call.stream.on("end", () => {
          try {
            if (envelopes.pending) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
            for (const [name, value] of call.trailer) trailer.append(name, value);
            protocol.streamEnd(call.header, call.trailer, endStream);
          } catch (error) {
            return call.fail(ConnectError.from(error));
          }
          call.finish(() => messages?.end());
        });
      });
    },

    close() {
      current?.session.close();
      current = undefined;
    },
  };
}

/**
 * One call's HTTP/2 stream, its deadline and its abort: it ends once, with
 * `finish`, or with `fail` (its signal aborted, its deadline passed, the
 * stream broke or was reset), which cancels the stream and hands `onFail` the error.
 */
class Exchange {
  status = 0;
  header = new Headers();
  trailer = new Headers();
  private settled = false;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly stopListening: (() => unknown) | undefined;

  readonly stream: http2.ClientHttp2Stream;
  private readonly onFail: (error: ConnectError) => void;
  private readonly onEnd: () => void;
  constructor(
    stream: http2.ClientHttp2Stream,
    signal: AbortSignal | undefined,
    deadlineMs: number | undefined,
    onFail: (error: ConnectError) => void,
    onEnd: () => void,
  ) {
    this.stream = stream;
    this.onFail = onFail;
    this.onEnd = onEnd;
    // A caller may pass one signal to many calls: they share its one listener.
    this.stopListening = signal && onAbort(signal, () => this.fail(ConnectError.from(signal.reason, Code.Canceled)));
    if (deadlineMs !== undefined) {
      this.timer = setTimeout(
        () => this.fail(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
        deadlineMs,
      );
    }
    stream.on("response", (incoming) => {
      this.status = Number(incoming[":status"]);
      this.header = webHeaders(incoming);
    });
    stream.on("trailers", (incoming) => {
      this.trailer = webHeaders(incoming);
    });
    stream.on("error", (error) => this.fail(fromNodeError(error)));
    // Reset, or cut off with its session, without an error event: it cannot end now.
    stream.on("close", () => {
      if (!this.settled) this.fail(closedEarly(stream.rstCode));
    });
  }

  /** Ends the call, if it has not ended: `outcome` runs only then. */
  finish(outcome: () => void): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.stopListening?.();
    this.onEnd();
    outcome();
  }

  fail(error: ConnectError): void {
    this.finish(() => {
      if (!this.stream.closed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
      this.onFail(error);
    });
  }
}

/**
 * A server stream's messages, read by one async iterator: the HTTP/2 stream is
 * paused while more than {@link streamHighWater} wait for the reader, and
 * cancelled when the reader stops early.
 */
class MessageStream<T> implements AsyncIterable<T> {
  private readonly queue: T[] = [];
  private head = 0;
  private ended = false;
  private error: ConnectError | undefined;
  private paused = false;
  private wake: (() => void) | undefined;

  private readonly pause: () => void;
  private readonly resume: () => void;
  private readonly stop: () => void;
  constructor(pause: () => void, resume: () => void, stop: () => void) {
    this.pause = pause;
    this.resume = resume;
    this.stop = stop;
  }

  push(message: T): void {
    this.queue.push(message);
    if (!this.paused && this.queue.length - this.head > streamHighWater) {
      this.paused = true;
      this.pause();
    }
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  fail(error: ConnectError): void {
    this.error ??= error;
    this.ended = true;
    this.wake?.();
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: async (): Promise<IteratorResult<T>> => {
        for (;;) {
          if (this.head < this.queue.length) {
            const value = this.queue[this.head] as T;
            this.queue[this.head++] = undefined as T;
            if (this.head === this.queue.length) {
              this.queue.length = 0;
              this.head = 0;
            }
            if (this.paused && this.queue.length - this.head <= streamHighWater / 4) {
              this.paused = false;
              this.resume();
            }
            return { value, done: false };
          }
          if (this.error) throw this.error;
          if (this.ended) return { value: undefined, done: true };
          await new Promise<void>((resolve) => {
            this.wake = resolve;
          });
          this.wake = undefined;
        }
      },
      return: async (): Promise<IteratorResult<T>> => {
        if (!this.ended) {
          this.ended = true;
          this.stop();
        }
        return { value: undefined, done: true };
      },
    };
  }
}

/**
 * A failed call's ConnectError, coded as connect-node codes it: UNAVAILABLE
 * when the gateway could not be reached (Node gives a stream on a session that
 * failed to connect "pending stream has been canceled", caused by the socket's
 * error), ABORTED when the connection broke, INTERNAL otherwise; with the
 * deepest cause's message.
 */
function fromNodeError(error: unknown): ConnectError {
  let cause = error as NodeJS.ErrnoException;
  let code = Code.Internal;
  for (;;) {
    if (cause.code && unreachable.has(cause.code)) code = Code.Unavailable;
    else if (cause.code && broken.has(cause.code) && code === Code.Internal) code = Code.Aborted;
    if (!(cause.cause instanceof Error)) break;
    cause = cause.cause as NodeJS.ErrnoException;
  }
  return error instanceof ConnectError ? error : new ConnectError(cause.message, code, undefined, undefined, error);
}

/** A call's stream reset, or closed with its session, before it could end: coded by its HTTP/2 error code. */
function closedEarly(rstCode: number): ConnectError {
  return new ConnectError(`the gateway closed the call (HTTP/2 code ${rstCode})`, resetCodes[rstCode] ?? Code.Internal);
}

/** The codes of {@link closedEarly}, by HTTP/2 error code. */
const resetCodes: Record<number, Code> = {
  [http2.constants.NGHTTP2_REFUSED_STREAM]: Code.Unavailable,
  [http2.constants.NGHTTP2_CANCEL]: Code.Canceled,
  [http2.constants.NGHTTP2_ENHANCE_YOUR_CALM]: Code.ResourceExhausted,
  [http2.constants.NGHTTP2_INADEQUATE_SECURITY]: Code.PermissionDenied,
  [http2.constants.NGHTTP2_HTTP_1_1_REQUIRED]: Code.PermissionDenied,
  [http2.constants.NGHTTP2_NO_ERROR]: Code.Unavailable,
};

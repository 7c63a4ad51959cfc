import * as http2 from "node:http2";
import * as net from "node:net";
import {
  create,
  type DescMessage,
  type DescMethodUnary,
  isMessage,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport, type UnaryResponse } from "@connectrpc/connect";
import { codeFromHttpStatus, errorFromJsonBytes, trailerDemux } from "@connectrpc/connect/protocol-connect";
import { validateResponse, validateTrailer } from "@connectrpc/connect/protocol-grpc";
import { webHeaders } from "./web-headers.js";
import { decodeMessage, encodeMessage } from "./wire-codec.js";

/** A Connect transport that can be closed: its HTTP/2 session ends. */
export interface ClosableTransport extends Transport {
  close(): void;
}

/** The protocols the SDK speaks to a gateway. */
export type GatewayProtocol = "connect" | "grpc";

/** What a protocol adds to a unary call over HTTP/2: its headers, its body, how its answer is read. */
interface UnaryProtocol {
  /** The request headers but the user's: method, path and deadline. */
  headers(path: string, timeoutMs: number | undefined): http2.OutgoingHttpHeaders;
  body(message: Uint8Array): Uint8Array;
  /** The output message's bytes with the call's header and trailer; throws the call's ConnectError. */
  answer(response: ResponseParts): { bytes: Uint8Array; header: Headers; trailer: Headers };
}

interface ResponseParts {
  status: number;
  header: Headers;
  /** HTTP trailers (gRPC; Connect's unary trailers are headers). */
  trailer: Headers;
  body: Buffer;
}

/** Binary Connect: the message as the body; an error is JSON with an HTTP status. */
const connectProtocol: UnaryProtocol = {
  headers(path, timeoutMs) {
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": path,
      "content-type": "application/proto",
      "connect-protocol-version": "1",
    };
    if (timeoutMs !== undefined) headers["connect-timeout-ms"] = String(timeoutMs);
    return headers;
  },
  body: (message) => message,
  answer({ status, header: responseHeader, body }) {
    const [header, trailer] = trailerDemux(responseHeader);
    if (status !== 200) {
      const fallback = new ConnectError(`HTTP ${status}`, codeFromHttpStatus(status), header);
      throw header.get("content-type")?.startsWith("application/json")
        ? errorFromJsonBytes(body, header, fallback)
        : fallback;
    }
    return { bytes: body, header, trailer };
  },
};

/**
 * gRPC: the message in a five-byte envelope (flags, then its length); the
 * status in the trailers, or in the headers of a trailers-only answer. Read
 * with connect's own `validateResponse` and `validateTrailer`.
 */
const grpcProtocol: UnaryProtocol = {
  headers(path, timeoutMs) {
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc+proto",
      te: "trailers",
    };
    if (timeoutMs !== undefined) headers["grpc-timeout"] = `${timeoutMs}m`;
    return headers;
  },
  body(message) {
    const enveloped = new Uint8Array(5 + message.byteLength);
    new DataView(enveloped.buffer).setUint32(1, message.byteLength);
    enveloped.set(message, 5);
    return enveloped;
  },
  answer({ status, header, trailer, body }) {
    const { headerError } = validateResponse(status, header);
    validateTrailer(trailer, header);
    if (body.byteLength === 0) {
      if (headerError) throw headerError;
      throw new ConnectError("protocol error: missing output message for unary method", Code.Unimplemented);
    }
    if (headerError) {
      throw new ConnectError(
        "protocol error: received output message for unary method with error status",
        Code.Unknown,
      );
    }
    const length = body.byteLength >= 5 ? body.readUInt32BE(1) : -1;
    if (length !== body.byteLength - 5) {
      throw new ConnectError(
        `protocol error: the answer is not one enveloped message (${body.byteLength} bytes)`,
        Code.Internal,
      );
    }
    if ((body[0] ?? 0) & 1) {
      throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
    }
    return { bytes: body.subarray(5), header, trailer };
  },
};

/** Node's errors that mean the gateway cannot be reached (or went away). */
const unreachable = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EPIPE"]);

/**
 * The SDK's gateway transport: unary calls go as binary Protobuf, in the
 * Connect or the gRPC protocol, over one HTTP/2 session, written and read
 * straight on Node's HTTP/2 streams; streaming calls go to `streams`
 * (connect-node's transport). connect-node's client spends 300-650 µs of CPU
 * per unary call on the development machine (async iterables, linked abort
 * controllers, web Headers), against 62 µs for Node's HTTP/2 client itself
 * (docs/architecture.md, "So does the SDK's gateway client"). Errors are
 * decoded with connect's own functions, so a call fails with the same
 * ConnectError, details included, on either path. The session holds the
 * process open only while calls are in flight.
 */
export function createUnaryTransport(
  baseUrl: string,
  protocolName: GatewayProtocol,
  streams: Transport,
): ClosableTransport {
  const protocol = protocolName === "grpc" ? grpcProtocol : connectProtocol;
  const origin = new URL(baseUrl);
  const prefix = origin.pathname.replace(/\/$/, "");
  let session: http2.ClientHttp2Session | undefined;
  let inFlight = 0;

  const open = (): http2.ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session;
    // Without Nagle's algorithm: a call's HEADERS and DATA frames are separate writes,
    // and the second would wait for the first one's ACK.
    const opened = http2.connect(origin, {
      createConnection:
        origin.protocol === "http:"
          ? () =>
              net.connect({
                host: origin.hostname.replace(/^\[|\]$/g, ""),
                port: Number(origin.port || 80),
                noDelay: true,
              })
          : undefined,
    });
    // A session that fails or is told to go away takes no more calls; the next one opens another.
    const forget = () => {
      if (session === opened) session = undefined;
    };
    opened.once("close", forget);
    opened.once("goaway", forget);
    opened.on("error", forget); // each call in flight sees the error on its own stream
    opened.unref();
    session = opened;
    return opened;
  };
  const started = (s: http2.ClientHttp2Session) => {
    if (inFlight++ === 0) s.ref();
  };
  const ended = (s: http2.ClientHttp2Session) => {
    if (--inFlight === 0 && !s.destroyed) s.unref();
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
        if (signal?.aborted) return reject(ConnectError.from(signal.reason, Code.Canceled));
        // As connect-node: a timeout of zero or less is none.
        const deadlineMs = timeoutMs !== undefined && timeoutMs > 0 ? Math.ceil(timeoutMs) : undefined;
        const headers = protocol.headers(`${prefix}/${method.parent.typeName}/${method.name}`, deadlineMs);
        if (header !== undefined) {
          new Headers(header).forEach((value, name) => {
            headers[name] = value;
          });
        }
        let body: Uint8Array;
        try {
          body = protocol.body(
            encodeMessage(method.input, isMessage(input, method.input) ? input : create(method.input, input)),
          );
        } catch (error) {
          return reject(ConnectError.from(error, Code.Internal));
        }
        let s: http2.ClientHttp2Session;
        let stream: http2.ClientHttp2Stream;
        try {
          s = open();
          stream = s.request(headers);
        } catch (error) {
          return reject(fromNodeError(error));
        }
        started(s);
        let status = 0;
        let responseHeader = new Headers();
        let responseTrailer = new Headers();
        const chunks: Buffer[] = [];
        let timer: NodeJS.Timeout | undefined;
        let settled = false;
        const finish = (outcome: () => void) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          ended(s);
          outcome();
        };
        const fail = (error: ConnectError) =>
          finish(() => {
            if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
            reject(error);
          });
        const onAbort = () => fail(ConnectError.from(signal?.reason, Code.Canceled));
        signal?.addEventListener("abort", onAbort, { once: true });
        if (deadlineMs !== undefined) {
          timer = setTimeout(
            () => fail(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
            deadlineMs,
          );
        }
        stream.on("response", (incoming) => {
          status = Number(incoming[":status"]);
          responseHeader = webHeaders(incoming);
        });
        stream.on("trailers", (incoming) => {
          responseTrailer = webHeaders(incoming);
        });
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("error", (error) => fail(fromNodeError(error)));
        // Reset, or cut off with its session, without an error event: it cannot end now.
        stream.on("close", () => {
          if (!settled)
            fail(new ConnectError(`the gateway closed the call (HTTP/2 code ${stream.rstCode})`, Code.Unavailable));
        });
        stream.on("end", () => {
          let message: MessageShape<O>;
          let answer: ReturnType<UnaryProtocol["answer"]>;
          try {
            answer = protocol.answer({
              status,
              header: responseHeader,
              trailer: responseTrailer,
              body: Buffer.concat(chunks),
            });
          } catch (error) {
            return fail(ConnectError.from(error));
          }
          try {
            message = decodeMessage(method.output, answer.bytes);
          } catch (error) {
            return fail(new ConnectError(`parse binary: ${(error as Error).message}`, Code.Internal));
          }
          finish(() =>
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
        stream.end(body);
      });
    },
    stream: (method, signal, timeoutMs, header, input, contextValues) =>
      streams.stream(method, signal, timeoutMs, header, input, contextValues),
    close() {
      session?.close();
      session = undefined;
    },
  };
}

/**
 * A failed call's ConnectError: UNAVAILABLE when the gateway could not be
 * reached or the connection broke (Node gives a stream on a session that
 * failed to connect "pending stream has been canceled", caused by the socket's
 * error), with the deepest cause's message.
 */
function fromNodeError(error: unknown): ConnectError {
  let cause = error as NodeJS.ErrnoException;
  let broken = false;
  for (;;) {
    if (cause.code && (unreachable.has(cause.code) || cause.code.startsWith("ERR_HTTP2_"))) broken = true;
    if (!(cause.cause instanceof Error)) break;
    cause = cause.cause as NodeJS.ErrnoException;
  }
  return broken
    ? new ConnectError(cause.message, Code.Unavailable, undefined, undefined, error)
    : ConnectError.from(error);
}

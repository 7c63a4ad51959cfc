import * as http2 from "node:http2";
import * as net from "node:net";
import {
  create,
  type DescMessage,
  type DescMethodUnary,
  fromBinary,
  isMessage,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import { Code, ConnectError, type Transport, type UnaryResponse } from "@connectrpc/connect";
import { codeFromHttpStatus, errorFromJsonBytes, trailerDemux } from "@connectrpc/connect/protocol-connect";
import { webHeaders } from "./web-headers.js";

/** A Connect transport that can be closed: its HTTP/2 session ends. */
export interface ClosableTransport extends Transport {
  close(): void;
}

/** Node's errors that mean the gateway cannot be reached (or went away). */
const unreachable = new Set(["ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT", "EPIPE"]);

/**
 * The SDK's gateway transport for the Connect protocol: unary calls go as
 * binary Protobuf over one HTTP/2 session, written and read straight on Node's
 * HTTP/2 streams; streaming calls go to `streams` (connect-node's transport).
 * connect-node's client spends 300-650 µs of CPU per unary call on the
 * development machine (async iterables, linked abort controllers, web Headers),
 * against 62 µs for Node's HTTP/2 client itself (docs/architecture.md, "So
 * does the SDK's gateway client"). Errors are decoded with connect's own
 * `errorFromJsonBytes`, so a call fails with the same ConnectError, details
 * included, on either path. The session holds the process open only while
 * calls are in flight.
 */
export function createConnectUnaryTransport(baseUrl: string, streams: Transport): ClosableTransport {
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
        const headers: http2.OutgoingHttpHeaders = {
          ":method": "POST",
          ":path": `${prefix}/${method.parent.typeName}/${method.name}`,
          "content-type": "application/proto",
          "connect-protocol-version": "1",
        };
        if (timeoutMs !== undefined) headers["connect-timeout-ms"] = String(Math.max(0, Math.floor(timeoutMs)));
        if (header !== undefined) {
          new Headers(header).forEach((value, name) => {
            headers[name] = value;
          });
        }
        let body: Uint8Array;
        try {
          body = toBinary(method.input, isMessage(input, method.input) ? input : create(method.input, input));
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
        let responseHeaders = new Headers();
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
        if (timeoutMs !== undefined) {
          timer = setTimeout(
            () => fail(new ConnectError("the operation timed out", Code.DeadlineExceeded)),
            Math.max(0, timeoutMs),
          );
        }
        stream.on("response", (incoming) => {
          status = Number(incoming[":status"]);
          responseHeaders = webHeaders(incoming);
        });
        stream.on("data", (chunk: Buffer) => chunks.push(chunk));
        stream.on("error", (error) => fail(fromNodeError(error)));
        // Reset, or cut off with its session, without an error event: it cannot end now.
        stream.on("close", () => {
          if (!settled)
            fail(new ConnectError(`the gateway closed the call (HTTP/2 code ${stream.rstCode})`, Code.Unavailable));
        });
        stream.on("end", () => {
          const bytes = Buffer.concat(chunks);
          const [responseHeader, trailer] = trailerDemux(responseHeaders);
          if (status !== 200) {
            const fallback = new ConnectError(`HTTP ${status}`, codeFromHttpStatus(status), responseHeader);
            const error = responseHeader.get("content-type")?.startsWith("application/json")
              ? errorFromJsonBytes(bytes, responseHeader, fallback)
              : fallback;
            return fail(error);
          }
          let message: MessageShape<O>;
          try {
            message = fromBinary(method.output, bytes);
          } catch (error) {
            return fail(new ConnectError(`parse binary: ${(error as Error).message}`, Code.Internal));
          }
          finish(() =>
            resolve({ stream: false, service: method.parent, method, header: responseHeader, message, trailer }),
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

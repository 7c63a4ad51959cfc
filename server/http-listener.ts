import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import type { connectNodeAdapter } from "@connectrpc/connect-node";

/** What every HTTP/2 connection opens with (RFC 9113, section 3.4). */
const http2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** How long a new connection may take to send enough bytes to tell its protocol. */
const sniffTimeoutMs = 10_000;

/** How many milliseconds {@link resetOnceSent} waits for a response to leave. */
const resetPollLimit = 1000;

/** A request handler for both HTTP versions, as connectNodeAdapter makes it. */
type NodeHandlerFn = ReturnType<typeof connectNodeAdapter>;

type ListenerState = "idle" | "listening" | "closing" | "closed";

/**
 * One TCP port that speaks HTTP/1.1 and cleartext HTTP/2 with prior knowledge
 * (h2c, as `grpcurl -plaintext` and `curl --http2-prior-knowledge` use), both
 * answered by the same request handler.
 *
 * Node's HTTP/2 server has no fallback to HTTP/1.1 without TLS (ALPN), so a plain
 * `net.Server` reads the first bytes of each connection and hands the socket to an
 * HTTP/2 server when they are the HTTP/2 preface, to an HTTP/1 server otherwise.
 */
export class HttpListener {
  #state: ListenerState = "idle";
  readonly #net: net.Server;
  readonly #http1: http.Server;
  readonly #http2: http2.Http2Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  /** HTTP/1 connections and how many requests each has in flight. */
  readonly #http1Requests = new Map<net.Socket, number>();
  #closed: Promise<void> | undefined;

  constructor(handler: NodeHandlerFn) {
    this.#http1 = http.createServer((request, response) => this.#serveHttp1(handler, request, response));
    // Longer than clients keep idle sockets (Node's agent: 5 s, as the server's
    // default): otherwise a client may reuse a socket the server is closing.
    this.#http1.keepAliveTimeout = 65_000;
    this.#http1.headersTimeout = 66_000;
    this.#http2 = http2.createServer({}, (request, response) => {
      response.stream.once("finish", () => resetOnceSent(response.stream, resetPollLimit));
      escapeGrpcMessageAsSpecified(response);
      handler(request, response);
    });
    this.#http2.on("session", (session: http2.ServerHttp2Session) => {
      this.#sessions.add(session);
      session.once("close", () => this.#sessions.delete(session));
    });
    this.#net = net.createServer((socket) => this.#accept(socket));
  }

  /** Starts listening; resolves to the port, which is random when `port` is 0. */
  listen(host: string, port: number): Promise<number> {
    if (this.#state !== "idle") throw new Error(`cannot listen: the listener is ${this.#state}`);
    this.#state = "listening";
    return new Promise((resolve, reject) => {
      this.#net.once("error", (error) => {
        this.#state = "closed";
        reject(error);
      });
      // A deep accept queue: a burst of new HTTP/1.1 connections (one per
      // concurrent request) overflowing Node's default of 511 is refused.
      this.#net.listen({ host, port, backlog: 4096 }, () => {
        this.#net.removeAllListeners("error");
        resolve((this.#net.address() as net.AddressInfo).port);
      });
    });
  }

  /**
   * Stops accepting connections, asks HTTP/2 clients to go away (GOAWAY) and
   * closes idle HTTP/1 connections; requests in flight may finish. Whatever is
   * still open after `graceMs` is destroyed. Resolves once every connection is
   * gone. Returns the same promise on every call.
   */
  close(graceMs: number): Promise<void> {
    this.#closed ??= this.#close(graceMs);
    return this.#closed;
  }

  async #close(graceMs: number): Promise<void> {
    const wasListening = this.#state === "listening";
    this.#state = "closing";
    const allGone = wasListening ? new Promise<void>((resolve) => this.#net.close(() => resolve())) : Promise.resolve();
    for (const session of this.#sessions) {
      try {
        session.close();
      } catch {
        // Already closing or destroyed: nothing left to ask.
      }
    }
    for (const [socket, requests] of this.#http1Requests) if (requests === 0) socket.end();
    const timer = setTimeout(() => {
      for (const socket of this.#sockets) socket.destroy();
    }, graceMs);
    try {
      await allGone;
    } finally {
      clearTimeout(timer);
      this.#state = "closed";
    }
  }

  // Node's own idle tracking (closeIdleConnections) only covers servers that listen
  // themselves, so the listener counts requests per HTTP/1 connection instead.
  #serveHttp1(handler: NodeHandlerFn, request: http.IncomingMessage, response: http.ServerResponse): void {
    const socket = request.socket;
    this.#http1Requests.set(socket, (this.#http1Requests.get(socket) ?? 0) + 1);
    // Once closing, no connection is kept alive for another request.
    if (this.#state !== "listening") response.setHeader("connection", "close");
    response.once("close", () => {
      const requests = this.#http1Requests.get(socket);
      if (requests === undefined) return; // the connection is already gone
      this.#http1Requests.set(socket, requests - 1);
      if (requests === 1 && this.#state !== "listening") socket.end();
    });
    handler(request, response);
  }

  #accept(socket: net.Socket): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    if (this.#state !== "listening") {
      socket.destroy();
      return;
    }
    let head: Buffer = Buffer.alloc(0);
    const onError = () => socket.destroy();
    const onTimeout = () => socket.destroy();
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const n = Math.min(head.length, http2Preface.length);
      const looksLikeHttp2 = head.subarray(0, n).equals(http2Preface.subarray(0, n));
      if (looksLikeHttp2 && n < http2Preface.length) return;
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("timeout", onTimeout);
      socket.setTimeout(0);
      socket.pause();
      socket.unshift(head);
      // Both servers take over a socket that already has data buffered: HTTP/2
      // sessions read what is buffered first, the HTTP/1 parser reads on resume.
      if (looksLikeHttp2) {
        this.#http2.emit("connection", socket);
      } else {
        this.#http1Requests.set(socket, 0);
        socket.once("close", () => this.#http1Requests.delete(socket));
        this.#http1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.setTimeout(sniffTimeoutMs, onTimeout);
  }
}

/**
 * Ends an HTTP/2 stream whose response is complete while the client is still
 * sending its request, as when an oversized request is refused midway.
 *
 * Node resets such a stream by itself only when the handler never read the body;
 * otherwise the client waits for flow-control credit that never comes and the
 * stream stays open. RFC 9113, section 8.1 allows a RST_STREAM with NO_ERROR once
 * the response is complete. It must follow the response's END_STREAM onto the wire
 * (nghttp2 drops frames still queued for a reset stream), and Node has no event for
 * that, so this polls the stream's state every millisecond for a short while.
 */
function resetOnceSent(stream: http2.ServerHttp2Stream, triesLeft: number): void {
  if (stream.closed || stream.destroyed || stream.state.remoteClose !== 0) return;
  if (stream.state.localClose === 1) {
    stream.close(http2.constants.NGHTTP2_NO_ERROR);
  } else if (triesLeft > 0) {
    setTimeout(resetOnceSent, 1, stream, triesLeft - 1).unref();
  }
}

/**
 * Connect escapes the gRPC trailer `grpc-message` with `encodeURIComponent`,
 * which the spec allows readers to decode, but @grpc/grpc-js decodes it with
 * `decodeURI`, which leaves "/", ",", ":" and the like escaped ("hasher%2FDigest").
 * Re-escape it as the gRPC spec says: only "%" and bytes outside 0x20-0x7E.
 */
function escapeGrpcMessageAsSpecified(response: http2.Http2ServerResponse): void {
  const addTrailers = response.addTrailers.bind(response);
  response.addTrailers = (trailers) => {
    const message = trailers["grpc-message"];
    if (typeof message === "string") trailers["grpc-message"] = escapeGrpcMessage(decodeURIComponent(message));
    addTrailers(trailers);
  };
}

/** Percent-encodes "%" and every UTF-8 byte outside 0x20-0x7E, as grpc-message wants. */
export function escapeGrpcMessage(text: string): string {
  let escaped = "";
  for (const byte of Buffer.from(text, "utf8")) {
    escaped +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return escaped;
}

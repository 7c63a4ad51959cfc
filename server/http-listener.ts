import { readFileSync } from "node:fs";
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { hostAllowed, type ResolvedGatewayLimits } from "./gateway-limits.ts";

/** What every HTTP/2 connection opens with (RFC 9113, section 3.4). */
const http2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** How long a new connection may take to send enough bytes to tell its protocol. */
const sniffTimeoutMs = 10_000;

/** How many milliseconds {@link resetOnceSent} waits for a response to leave. */
const resetPollLimit = 1000;

/** A request handler for both HTTP versions, as connectNodeAdapter makes it. */
type NodeHandlerFn = ReturnType<typeof connectNodeAdapter>;

type ListenerState = "idle" | "listening" | "closing" | "closed";

/** The gateway's TLS files, PEM: its certificate chain and key, and a CA for client certificates. */
export interface GatewayTlsFiles {
  /** The certificate chain's file. */
  readonly cert: string;
  /** The private key's file. */
  readonly key: string;
  /** Client certificates signed by this CA are verified (mTLS); others are not asked to present one. */
  readonly clientCa?: string;
}

/** The files' contents as tls options; a file that cannot be read, or used, names itself. */
function readTlsFiles(files: GatewayTlsFiles): tls.SecureContextOptions {
  const read = (path: string, what: string) => {
    try {
      return readFileSync(path);
    } catch (error) {
      throw new Error(
        `cannot read the gateway's TLS ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
  };
  const options: tls.SecureContextOptions = {
    cert: read(files.cert, "certificate"),
    key: read(files.key, "key"),
    ...(files.clientCa ? { ca: read(files.clientCa, "client CA") } : {}),
  };
  try {
    tls.createSecureContext(options);
  } catch (error) {
    throw new Error(
      `the gateway's TLS files ${files.cert} and ${files.key} cannot be used: ${(error as Error).message}`,
    );
  }
  return options;
}

/** What {@link HttpListener} bounds and checks. */
export interface ListenerOptions {
  /** Serve TLS (HTTP/2 by ALPN, and HTTP/1.1) with these files; cleartext without. */
  readonly tls?: GatewayTlsFiles;
  readonly limits: ResolvedGatewayLimits;
  /** The Host names (any port) requests may carry; undefined accepts any. */
  readonly allowedHosts: ReadonlySet<string> | undefined;
}

/** Seconds a client refused for load is asked to wait before it tries again. */
const retryAfterSeconds = 1;

/**
 * One TCP port that speaks HTTP/1.1 and HTTP/2, both answered by the same request
 * handler: cleartext HTTP/2 with prior knowledge (h2c, as `grpcurl -plaintext` and
 * `curl --http2-prior-knowledge` use), or TLS with ALPN choosing the protocol.
 *
 * Node's HTTP/2 server has no fallback to HTTP/1.1 without TLS (ALPN), so a plain
 * `net.Server` reads the first bytes of each connection and hands the socket to an
 * HTTP/2 server when they are the HTTP/2 preface, to an HTTP/1 server otherwise.
 * With TLS a `tls.Server` ends the handshake and hands the socket on by its ALPN
 * protocol, so both versions keep the same servers, limits and tracking.
 */
export class HttpListener {
  #state: ListenerState = "idle";
  readonly #net: net.Server | tls.Server;
  readonly #http1: http.Server;
  readonly #http2: http2.Http2Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  /** HTTP/1 connections and how many requests each has in flight. */
  readonly #http1Requests = new Map<net.Socket, number>();
  /** Connections accepted past `maxConnections`: refused once their protocol is known. */
  readonly #overLimit = new WeakSet<net.Socket>();
  /** HTTP/2 sessions of such connections: each request is refused, then the session closed. */
  readonly #sessionsOverLimit = new WeakSet<http2.ServerHttp2Session>();
  /** Set while the HTTP/2 server takes a connection past the limit. */
  #sessionOverLimit = false;
  readonly #options: ListenerOptions;
  /** Requests in flight on every connection. */
  #inFlight = 0;
  #closed: Promise<void> | undefined;

  constructor(handler: NodeHandlerFn, options: ListenerOptions) {
    this.#options = options;
    const { limits } = options;
    const guarded = (request: http.IncomingMessage | http2.Http2ServerRequest, response: Response) => {
      if (this.#refused(request, response)) return;
      this.#inFlight++;
      response.once("close", () => this.#inFlight--);
      handler(request as http.IncomingMessage, response as http.ServerResponse);
    };
    this.#http1 = http.createServer(
      {
        // Node checks both on every connection each interval: a tenth of the shorter.
        headersTimeout: limits.headersTimeoutMs,
        requestTimeout: limits.requestTimeoutMs,
        connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(limits.headersTimeoutMs / 10))),
      },
      (request, response) => this.#serveHttp1(guarded, request, response),
    );
    // Clients keep idle sockets shorter than this (Node's agent: 5 s): otherwise a
    // client may reuse a socket the server is closing.
    this.#http1.keepAliveTimeout = limits.idleTimeoutMs;
    this.#http2 = http2.createServer(
      { settings: { maxConcurrentStreams: limits.maxStreamsPerConnection } },
      (request, response) => {
        response.stream.once("finish", () => resetOnceSent(response.stream, resetPollLimit));
        escapeGrpcMessageAsSpecified(response);
        guarded(request, response);
      },
    );
    this.#http2.on("session", (session: http2.ServerHttp2Session) => this.#track(session));
    this.#net = options.tls
      ? tls.createServer(
          {
            ...readTlsFiles(options.tls),
            ALPNProtocols: ["h2", "http/1.1"],
            handshakeTimeout: sniffTimeoutMs,
            // Client certificates are asked for and checked against clientCa; a client
            // without one may still authenticate otherwise (a bearer token).
            requestCert: options.tls.clientCa !== undefined,
            rejectUnauthorized: false,
          },
          (socket) => this.#accept(socket),
        )
      : net.createServer((socket) => this.#accept(socket));
  }

  /** Whether the listener speaks TLS (https://). */
  get secure(): boolean {
    return this.#net instanceof tls.Server;
  }

  /**
   * Reads the TLS files again and uses them for new connections; connections
   * already open keep theirs. A file that cannot be read or used is an error,
   * and the certificate in use stays.
   */
  reloadTls(): void {
    const files = this.#options.tls;
    if (!files || !(this.#net instanceof tls.Server)) throw new Error("the gateway does not serve TLS");
    this.#net.setSecureContext(readTlsFiles(files));
  }

  /**
   * Answers a request the gateway will not serve: a Host it does not answer to
   * (403, as DNS rebinding would send), or one past `maxStreams` (503 with
   * retry-after). Clients read 403 as PERMISSION_DENIED, 503 as UNAVAILABLE.
   */
  #refused(request: http.IncomingMessage | http2.Http2ServerRequest, response: Response): boolean {
    const { allowedHosts, limits } = this.#options;
    if ("stream" in request && this.#sessionsOverLimit.has(request.stream.session as http2.ServerHttp2Session)) {
      refuse(request, response, 503, this.#connectionsFull());
      request.stream.session?.close();
      return true;
    }
    const authority = "authority" in request ? request.authority : request.headers.host;
    if (allowedHosts && !hostAllowed(authority, allowedHosts)) {
      refuse(
        request,
        response,
        403,
        `this gateway does not answer to host "${authority ?? ""}": add it to the gateway's allowedHosts`,
      );
      return true;
    }
    if (this.#inFlight >= limits.maxStreams) {
      refuse(
        request,
        response,
        503,
        `the gateway has ${limits.maxStreams} requests in flight (limits.maxStreams): retry later`,
      );
      return true;
    }
    return false;
  }

  /** Why a connection past `maxConnections` is refused. */
  #connectionsFull(): string {
    return `the gateway has ${this.#options.limits.maxConnections} connections open (limits.maxConnections): retry later`;
  }

  /**
   * Follows an HTTP/2 session: closed (GOAWAY) after `idleTimeoutMs` without a
   * stream, each stream reset if its request has not all arrived within
   * `requestTimeoutMs`.
   */
  #track(session: http2.ServerHttp2Session): void {
    this.#sessions.add(session);
    if (this.#sessionOverLimit) this.#sessionsOverLimit.add(session);
    const { idleTimeoutMs, requestTimeoutMs } = this.#options.limits;
    let streams = 0;
    let idle: NodeJS.Timeout | undefined;
    const arm = () => {
      idle = setTimeout(() => session.close(), idleTimeoutMs);
      idle.unref();
    };
    arm();
    session.on("stream", (stream) => {
      streams++;
      clearTimeout(idle);
      const late = setTimeout(() => {
        // The client has not finished sending its request.
        if (stream.state?.remoteClose === 0) stream.close(http2.constants.NGHTTP2_CANCEL);
      }, requestTimeoutMs);
      late.unref();
      stream.once("close", () => {
        clearTimeout(late);
        if (--streams === 0 && !session.closed) arm();
      });
    });
    session.once("close", () => {
      clearTimeout(idle);
      this.#sessions.delete(session);
    });
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
        // The HTTP/1 server is handed sockets and never listens itself; "listening"
        // starts its header and request timeout checks, as listen() would.
        this.#http1.emit("listening");
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
    // Stops its timeout checks (it reports, harmlessly, that it never listened).
    this.#http1.close(() => {});
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
  #serveHttp1(
    handler: (request: http.IncomingMessage, response: http.ServerResponse) => void,
    request: http.IncomingMessage,
    response: http.ServerResponse,
  ): void {
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
    if (this.#sockets.size > this.#options.limits.maxConnections) this.#overLimit.add(socket);
    // Over TLS, ALPN has said which protocol the client speaks ("h2", else HTTP/1.1).
    if (socket instanceof tls.TLSSocket) {
      this.#route(socket, socket.alpnProtocol === "h2");
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
      this.#route(socket, looksLikeHttp2);
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.setTimeout(sniffTimeoutMs, onTimeout);
  }

  /**
   * Hands a connection to the server of its protocol. Both take over a socket that
   * already has data buffered: HTTP/2 sessions read what is buffered first, the
   * HTTP/1 parser reads on resume.
   */
  #route(socket: net.Socket, isHttp2: boolean): void {
    if (isHttp2) {
      // The session is made, and #track called, as the server takes the socket.
      this.#sessionOverLimit = this.#overLimit.has(socket);
      this.#http2.emit("connection", socket);
      this.#sessionOverLimit = false;
    } else if (this.#overLimit.has(socket)) {
      const message = this.#connectionsFull();
      socket.end(
        `HTTP/1.1 503 Service Unavailable\r\nretry-after: ${retryAfterSeconds}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(message)}\r\nconnection: close\r\n\r\n${message}`,
      );
    } else {
      this.#http1Requests.set(socket, 0);
      socket.once("close", () => this.#http1Requests.delete(socket));
      this.#http1.emit("connection", socket);
      socket.resume();
    }
  }
}

/** A response of either HTTP version. */
type Response = http.ServerResponse | http2.Http2ServerResponse;

/**
 * Answers a refused request in its own protocol: gRPC and gRPC-Web get a
 * trailers-only answer (PERMISSION_DENIED or UNAVAILABLE), Connect and others
 * a 403 or 503 with Connect's JSON error. 503 asks the client to retry after a second.
 */
function refuse(
  request: http.IncomingMessage | http2.Http2ServerRequest,
  response: Response,
  status: 403 | 503,
  message: string,
): void {
  const headers: http.OutgoingHttpHeaders = status === 503 ? { "retry-after": String(retryAfterSeconds) } : {};
  const type = String(request.headers["content-type"] ?? "");
  const reply = response as http.ServerResponse;
  if (type.startsWith("application/grpc")) {
    reply.writeHead(200, {
      ...headers,
      "content-type": type,
      "grpc-status": status === 403 ? "7" : "14",
      "grpc-message": escapeGrpcMessage(message),
    });
    reply.end();
  } else {
    reply.writeHead(status, { ...headers, "content-type": "application/json" });
    reply.end(JSON.stringify({ code: status === 403 ? "permission_denied" : "unavailable", message }));
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

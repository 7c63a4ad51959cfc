import type {
  DescMessage,
  DescMethod,
  DescMethodServerStreaming,
  DescMethodUnary,
  DescService,
  JsonWriteOptions,
  MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ContextValues,
  createContextValues,
  type HandlerContext,
  type Interceptor,
} from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, type connectNodeAdapter } from "@connectrpc/connect-node";
import { context as activeContext, defaultTextMapGetter } from "@opentelemetry/api";
import {
  type Compression,
  codeToHttpStatus,
  decodeBody,
  EnvelopeSplitter,
  encodeBody,
  endStreamFlag,
  endStreamToJson,
  envelope,
  errorToJsonBytes,
  invokeUnaryImplementation,
  parseConnectTimeout,
  parseGrpcTimeout,
  setTrailerStatus,
  trailerFlag,
  trailerMux,
  trailerSerialize,
  transformInvokeImplementation,
  webHeaders,
} from "../sdk/wire/index.ts";
import { endRpcSpan, startRpcSpan } from "./rpc-spans.ts";

// connect-node's request and response types (Node's http and http2 ones), as its handler takes them.
type Request = Parameters<ReturnType<typeof connectNodeAdapter>>[0];
type Response = Parameters<ReturnType<typeof connectNodeAdapter>>[1];
type Impl = (request: MessageShape<DescMessage>, context: HandlerContext) => unknown;

interface Route {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly impl: Impl;
  readonly streaming: boolean;
}

/** What the fast path shares with connect-node's handler (see createGateway). */
export interface FastPathOptions {
  readonly maxMessageBytes: number;
  readonly shutdownSignal: AbortSignal;
  readonly jsonOptions?: Partial<JsonWriteOptions>;
  /** The gateway's interceptors, run around each implementation as connect's handlers run them. */
  readonly interceptors: Interceptor[];
  /** A call's first context values, as connect-node's `contextValues` option makes them. */
  readonly contextValues?: (request: Request) => ContextValues;
}

/** The wire format of a call the fast path takes. */
type Protocol = "connect" | "grpc" | "grpc-web";

/** A call the fast path serves. */
interface Exchange {
  readonly route: Route;
  readonly protocol: Protocol;
  readonly request: Request;
  readonly response: Response;
  readonly context: HandlerContext;
  /** How the request's message is compressed, when it is (connect-node's own gzip and brotli). */
  readonly compression: Compression | undefined;
  /** Whether the answer can still be written: the client is there, and it has not ended. */
  readonly open: () => boolean;
}

// Each call's signal is aborted when the call ends; with a reason given, no
// DOMException is made per call.
const callEnded = new ConnectError("the call ended", Code.Canceled);
// connect-node's longest accepted timeout header, as its handlers parse it.
const maxTimeoutMs = 2 ** 31 - 1;
// A Connect stream's end (error, trailers), written in JSON in its last envelope.
const utf8 = new TextEncoder();

/**
 * Serves unary and server-streaming calls in binary Protobuf, over the Connect
 * protocol and gRPC-Web (HTTP/1.1 and 2) and gRPC (HTTP/2), straight from Node's request and
 * response: the body is read and decoded, the method's implementation called
 * with a Connect HandlerContext, and its answer (or each message it yields)
 * written. connect-node's handlers turn each call into a universal request and
 * response of async iterables and abort controllers, which cost the gateway
 * about 190 µs of CPU per unary call here, four times Node's HTTP/2 itself
 * (docs/decisions/gateway-fast-path.md).
 *
 * Only what this path does as connect-node does is taken: POST, the binary
 * content types, requests in identity, gzip or brotli (decompressed by
 * connect-node's own functions), methods registered without per-service
 * options. Everything else (JSON, GET, other compressions, client and bidi
 * streams, unknown paths, malformed headers) is left to connect-node, whose
 * error encoding (`errorToJsonBytes`, `endStreamToJson`, `setTrailerStatus`,
 * `trailerSerialize`) this path also uses. Two differences, both within the
 * protocols: answers are not compressed, and a body that does not decode is
 * INVALID_ARGUMENT naming the field (connect-node: INTERNAL, "parse binary").
 */
export class FastPath {
  private readonly routes = new Map<string, Route>();
  /** The calls in flight, by the controller that ends each on hang-up or shutdown. */
  private readonly calls = new Set<AbortController>();

  private readonly options: FastPathOptions;
  constructor(options: FastPathOptions) {
    this.options = options;
    // One listener for every call: Node's EventTarget walks its listeners on each
    // add and remove, which cost 8 µs a call with a thousand calls listening.
    const { shutdownSignal } = options;
    shutdownSignal.addEventListener(
      "abort",
      () => {
        for (const call of this.calls) call.abort(shutdownSignal.reason);
      },
      { once: true },
    );
  }

  /**
   * A router that registers on `router` and also records, for {@link serve},
   * the unary and server-streaming methods registered without options. As in
   * connect-node, the last registration of a method wins: a later one with
   * options takes it off this path.
   */
  recording(router: ConnectRouter): ConnectRouter {
    const recording: ConnectRouter = Object.create(router);
    const record = (method: DescMethod, impl: unknown, options: object | undefined) => {
      const path = `/${method.parent.typeName}/${method.name}`;
      const streaming = method.methodKind === "server_streaming";
      if (options === undefined && (method.methodKind === "unary" || streaming) && typeof impl === "function") {
        this.routes.set(path, { service: method.parent, method, impl: impl as Impl, streaming });
      } else this.routes.delete(path);
    };
    recording.service = (service, implementation, options) => {
      router.service(service, implementation, options);
      for (const method of service.methods) {
        const impl = (implementation as Record<string, unknown>)[method.localName];
        // Methods it does not implement are answered by connect-node (UNIMPLEMENTED).
        record(method, typeof impl === "function" ? impl.bind(implementation) : undefined, options);
      }
      return recording;
    };
    recording.rpc = (method, impl, options) => {
      router.rpc(method, impl, options);
      record(method, impl, options);
      return recording;
    };
    return recording;
  }

  /** Serves the call and returns true when this path takes it; false leaves it untouched. */
  serve(request: Request, response: Response): boolean {
    if (request.method !== "POST") return false;
    const route = this.routes.get(request.url ?? "");
    if (!route) return false;
    const headers = request.headers;
    const type = headers["content-type"];
    let protocol: Protocol;
    let encoding: string | string[] | undefined;
    if (type === (route.streaming ? "application/connect+proto" : "application/proto")) {
      protocol = "connect";
      encoding = headers[route.streaming ? "connect-content-encoding" : "content-encoding"];
      const version = headers["connect-protocol-version"];
      if (version !== undefined && version !== "1") return false;
    } else if ((type === "application/grpc" || type === "application/grpc+proto") && request.httpVersionMajor === 2) {
      protocol = "grpc";
      encoding = headers["grpc-encoding"];
    } else if (type === "application/grpc-web" || type === "application/grpc-web+proto") {
      protocol = "grpc-web";
      encoding = headers["grpc-encoding"];
    } else return false;
    const compression = compressionOf(encoding);
    if (compression === false) return false;
    const timeout =
      protocol === "connect"
        ? parseConnectTimeout(stringHeader(headers["connect-timeout-ms"]), maxTimeoutMs)
        : parseGrpcTimeout(stringHeader(headers["grpc-timeout"]), maxTimeoutMs);
    if (timeout.error) return false;
    this.run(route, protocol, compression, timeout.timeoutMs, request, response).catch(() => {
      // Only a write can fail here, to a client that is gone: free its stream.
      if ("stream" in response) response.stream.destroy();
      else response.destroy();
    });
    return true;
  }

  private async run(
    route: Route,
    protocol: Protocol,
    compression: Compression | undefined,
    timeoutMs: number | undefined,
    request: Request,
    response: Response,
  ): Promise<void> {
    // The call's one signal: aborted on shutdown, at its deadline, when the client
    // hangs up (the response closes before it ends only then: a request closes
    // once its body is read, on HTTP/1.1), and when the call ends.
    const call = new AbortController();
    const { shutdownSignal } = this.options;
    if (shutdownSignal.aborted) call.abort(shutdownSignal.reason);
    else this.calls.add(call);
    let hungUp = false;
    const onClose = () => {
      if (response.writableEnded) return;
      hungUp = true;
      call.abort(new ConnectError("the client hung up", Code.Canceled));
    };
    response.once("close", onClose);
    const open = () => !hungUp && !response.writableEnded;
    let timer: NodeJS.Timeout | undefined;
    if (timeoutMs !== undefined) {
      const expire = () => call.abort(new ConnectError("the operation timed out", Code.DeadlineExceeded));
      if (timeoutMs <= 0) expire();
      else timer = setTimeout(expire, timeoutMs);
    }
    const exchange = {
      route,
      protocol,
      request,
      response,
      context: handlerContext(
        route,
        protocol,
        request,
        timeoutMs,
        call.signal,
        this.options.contextValues?.(request) ?? createContextValues(),
      ),
      compression,
      open,
    };
    // The call's span, around its interceptors: authentication's refusals are calls too.
    const traced = startRpcSpan(route.method, request.headers, defaultTextMapGetter);
    let outcome: unknown;
    try {
      outcome = await activeContext.with(traced.context, () =>
        route.streaming ? this.stream(exchange) : this.unary(exchange),
      );
    } catch (thrown) {
      outcome = thrown;
      throw thrown;
    } finally {
      endRpcSpan(traced.span, outcome);
      clearTimeout(timer);
      this.calls.delete(call);
      call.abort(callEnded);
      response.off("close", onClose);
    }
  }

  /** Answers a unary call; resolves its error, if it failed. */
  private async unary({
    route,
    protocol,
    request,
    response,
    context,
    compression,
    open,
  }: Exchange): Promise<ConnectError | undefined> {
    let body: Uint8Array;
    let error: ConnectError | undefined;
    try {
      const enveloped = protocol !== "connect";
      const received = await readBody(request, this.options.maxMessageBytes, enveloped, context.signal);
      const input = decodeBody(
        route.method.input,
        await this.message(enveloped ? unwrapEnvelope(received, route, protocol) : received, compression),
      );
      const { interceptors } = this.options;
      const output =
        interceptors.length === 0
          ? await route.impl(input, context)
          : await invokeUnaryImplementation(
              { kind: "unary", method: route.method as DescMethodUnary, impl: route.impl as never },
              context,
              input,
              interceptors,
            );
      body = this.encodeOutput(route.method.output, output);
    } catch (thrown) {
      error = connectErrorOf(thrown);
      body = new Uint8Array(0);
    }
    if (!open()) return error;
    if (protocol === "connect") writeConnect(response, context, body, error, this.options.jsonOptions);
    else {
      writeGrpcHead(response, context, protocol);
      if (!error) response.write(envelope(0, body));
      endGrpc(response, context, protocol, error);
    }
    return error;
  }

  /**
   * A request's message, decompressed as connect-node does it: a Connect unary
   * body is compressed whole when the call names a compression; an envelope
   * when its flag says so.
   */
  private message(
    received: Uint8Array | { readonly flags: number; readonly data: Uint8Array },
    compression: Compression | undefined,
  ): Uint8Array | Promise<Uint8Array> {
    const [bytes, compressed] =
      received instanceof Uint8Array ? [received, compression !== undefined] : [received.data, received.flags & 1];
    if (!compressed) return bytes;
    // As connect answers it, and the conformance suite expects: INTERNAL.
    if (!compression)
      throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
    return compression.decompress(bytes, this.options.maxMessageBytes);
  }

  /**
   * A server stream: each message the implementation yields, in an envelope,
   * the headers with the first one (so the implementation may set them until
   * then), and its end: trailers (gRPC), or an end-stream envelope (Connect).
   * A client slower than the stream holds it back (the write waits to drain).
   * Resolves the error it ended with, if any.
   */
  private async stream({
    route,
    protocol,
    request,
    response,
    context,
    compression,
    open,
  }: Exchange): Promise<ConnectError | undefined> {
    let started = false;
    const start = () => {
      if (started) return;
      started = true;
      if (protocol !== "connect") writeGrpcHead(response, context, protocol);
      else {
        context.responseHeader.set("content-type", "application/connect+proto");
        response.writeHead(200, nodeHeaders(context.responseHeader));
      }
    };
    let error: ConnectError | undefined;
    try {
      const received = unwrapEnvelope(
        await readBody(request, this.options.maxMessageBytes, true, context.signal),
        route,
        protocol,
      );
      const input = decodeBody(route.method.input, await this.message(received, compression));
      const { interceptors } = this.options;
      const outputs =
        interceptors.length === 0
          ? (route.impl(input, context) as AsyncIterable<unknown>)
          : transformInvokeImplementation(
              {
                kind: "server_streaming",
                method: route.method as DescMethodServerStreaming,
                impl: route.impl as never,
              },
              context,
              interceptors,
            )(once(input));
      for await (const output of outputs) {
        const body = this.encodeOutput(route.method.output, output);
        if (!open()) break;
        // Past its deadline, or the gateway closing: what the stream yields now is not sent.
        context.signal.throwIfAborted();
        start();
        if (!response.write(envelope(0, body))) await drained(response, context.signal);
      }
    } catch (thrown) {
      error = connectErrorOf(thrown);
    }
    if (!open()) return error;
    start();
    if (protocol !== "connect") endGrpc(response, context, protocol, error);
    else {
      const end = endStreamToJson(context.responseTrailer, error, this.options.jsonOptions);
      response.end(envelope(endStreamFlag, utf8.encode(JSON.stringify(end))));
    }
    return error;
  }

  /** An implementation's answer, encoded within the message size limit. */
  private encodeOutput(schema: DescMessage, output: unknown): Uint8Array {
    const body = encodeBody(schema, output as MessageShape<DescMessage>);
    if (body.byteLength > this.options.maxMessageBytes) {
      throw new ConnectError(
        `message size ${body.byteLength} is larger than configured writeMaxBytes ${this.options.maxMessageBytes}`,
        Code.ResourceExhausted,
      );
    }
    return body;
  }
}

/**
 * A call's HandlerContext, as connect's `createHandlerContext` makes it, but on
 * the call's one signal: connect's links three (deadline, request, shutdown),
 * two AbortControllers and four listeners more per call. Its request headers
 * are made when first read: most handlers never read them.
 */
function handlerContext(
  route: Route,
  protocol: Protocol,
  request: Request,
  timeoutMs: number | undefined,
  signal: AbortSignal,
  values: ContextValues,
): HandlerContext {
  // Whole milliseconds, as connect's context keeps it (a Date): a gRPC timeout in
  // microseconds ("199916u") is a fraction of a millisecond.
  const deadline = timeoutMs === undefined ? undefined : Math.trunc(Date.now() + timeoutMs);
  let requestHeader: Headers | undefined;
  return {
    service: route.service,
    method: route.method,
    protocolName: protocol,
    requestMethod: "POST",
    url: `http://${request.headers.host ?? request.headers[":authority"] ?? "localhost"}${request.url}`,
    signal,
    timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
    get requestHeader() {
      requestHeader ??= webHeaders(request.headers);
      return requestHeader;
    },
    responseHeader: new Headers(),
    responseTrailer: new Headers(),
    values,
  };
}

/** A stream's one request, as connect's streaming implementations take their input. */
async function* once<T>(message: T): AsyncIterable<T> {
  yield message;
}

function connectErrorOf(thrown: unknown): ConnectError {
  return thrown instanceof ConnectError
    ? thrown
    : new ConnectError("internal error", Code.Internal, undefined, undefined, thrown);
}

/** Resolves once the response can take more, or closes, or the call's signal aborts. */
function drained(response: Response, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      response.off("drain", done);
      response.off("close", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    response.once("drain", done);
    response.once("close", done); // the client hung up, or the connection was destroyed
    signal.addEventListener("abort", done, { once: true });
  });
}

function stringHeader(value: string | string[] | undefined): string | null {
  return typeof value === "string" ? value : null;
}

/**
 * The request's body, read within the message size limit as connect reads it:
 * a Connect unary body is the message (its content-length checked first), an
 * enveloped one (gRPC, Connect streams) is checked by its first envelope's
 * length. Ends early when the call's signal aborts (hang-up, deadline, shutdown).
 */
function readBody(request: Request, maxBytes: number, enveloped: boolean, signal: AbortSignal): Promise<Buffer> {
  // Room for the envelope heads: the message's, and a Connect stream's end-stream envelope.
  const limit = enveloped ? maxBytes + 64 : maxBytes;
  const declared = enveloped ? undefined : Number(request.headers["content-length"] ?? Number.NaN);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const settle = (error: unknown, body?: Buffer) => {
      request.off("data", onData);
      request.off("end", onEnd);
      request.off("error", settle);
      signal.removeEventListener("abort", onAbort);
      if (body) resolve(body);
      else reject(error);
    };
    const onAbort = () => settle(signal.reason);
    const onData = (chunk: Buffer) => {
      const before = length;
      length += chunk.byteLength;
      chunks.push(chunk);
      if (enveloped && before < 5 && length >= 5) {
        const head = chunks.length === 1 ? chunk : Buffer.concat(chunks, 5);
        const size = head.readUInt32BE(1);
        if (size > maxBytes) return settle(tooLarge(maxBytes, size));
      }
      if (length > limit) settle(tooLarge(maxBytes));
    };
    const onEnd = () => settle(undefined, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length));
    if (signal.aborted) return onAbort();
    if (declared !== undefined && declared > maxBytes) return settle(tooLarge(maxBytes, declared));
    request.on("data", onData);
    request.once("end", onEnd);
    request.once("error", settle);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

function tooLarge(maxBytes: number, size?: number): ConnectError {
  return new ConnectError(
    `message size ${size === undefined ? "" : `${size} `}is larger than configured readMaxBytes ${maxBytes}`,
    Code.ResourceExhausted,
  );
}

/**
 * The one message of an enveloped request, as connect reads it: a Connect
 * stream's end-stream envelope is passed over; none, two, a compressed one
 * (refused by the splitter) or a cut one are refused.
 */
function unwrapEnvelope(
  body: Buffer,
  route: Route,
  protocol: Protocol,
): { readonly flags: number; readonly data: Uint8Array } {
  const kind = route.streaming ? "server-streaming" : "unary";
  const envelopes = new EnvelopeSplitter({ acceptCompressed: true });
  const received = envelopes.push(body);
  if (envelopes.pending) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
  let message: { readonly flags: number; readonly data: Uint8Array } | undefined;
  for (const envelope of received) {
    if (protocol === "connect" && (envelope.flags & endStreamFlag) === endStreamFlag) continue;
    if (message !== undefined) {
      throw new ConnectError(`protocol error: received extra input message for ${kind} method`, Code.Unimplemented);
    }
    message = envelope;
  }
  if (message === undefined) {
    throw new ConnectError(`protocol error: missing input message for ${kind} method`, Code.Unimplemented);
  }
  return message;
}

function writeConnect(
  response: Response,
  context: HandlerContext,
  body: Uint8Array,
  error: ConnectError | undefined,
  jsonOptions: Partial<JsonWriteOptions> | undefined,
): void {
  let status = 200;
  context.responseHeader.set("content-type", "application/proto");
  if (error) {
    status = codeToHttpStatus(error.code);
    context.responseHeader.set("content-type", "application/json");
    error.metadata.forEach((value, name) => {
      context.responseHeader.set(name, value);
    });
    body = errorToJsonBytes(error, jsonOptions);
  }
  const header = trailerMux(context.responseHeader, context.responseTrailer);
  header.set("content-length", String(body.byteLength));
  response.writeHead(status, nodeHeaders(header));
  response.end(body);
}

function writeGrpcHead(response: Response, context: HandlerContext, protocol: "grpc" | "grpc-web"): void {
  context.responseHeader.set(
    "content-type",
    protocol === "grpc" ? "application/grpc+proto" : "application/grpc-web+proto",
  );
  response.writeHead(200, nodeHeaders(context.responseHeader));
}

/** A gRPC call's end: its status in HTTP/2 trailers, or (gRPC-Web) in a last envelope, flagged as trailers. */
function endGrpc(
  response: Response,
  context: HandlerContext,
  protocol: "grpc" | "grpc-web",
  error: ConnectError | undefined,
): void {
  const trailer = setTrailerStatus(context.responseTrailer, error);
  if (protocol === "grpc-web") return void response.end(envelope(trailerFlag, trailerSerialize(trailer)));
  response.addTrailers(nodeHeaders(trailer));
  response.end();
}

/** The compression a request names: none, one of connect-node's, or false for one this path leaves to it. */
function compressionOf(encoding: string | string[] | undefined): Compression | undefined | false {
  if (encoding === undefined || encoding === "identity") return undefined;
  if (encoding === compressionGzip.name) return compressionGzip;
  if (encoding === compressionBrotli.name) return compressionBrotli;
  return false;
}

/** Web Headers as Node's outgoing headers; a repeated one (set-cookie) as a list. */
function nodeHeaders(headers: Headers): Record<string, string | string[]> {
  const node: Record<string, string | string[]> = {};
  for (const name of headers.keys()) {
    const values = name === "set-cookie" ? headers.getSetCookie() : [headers.get(name) as string];
    node[name] = values.length === 1 ? (values[0] as string) : values;
  }
  return node;
}

/**
 * Every private export of connect-es that Taskwire uses, in one place.
 *
 * `@connectrpc/connect/protocol`, `.../protocol-connect` and `.../protocol-grpc`
 * are connect-es' protocol internals: their index says they do not follow semantic versioning, so
 * a minor release may change them. The gateway's fast path (server/fast-path.ts)
 * and the SDK's gateway transport (sdk/gateway-client/gateway-transport.ts) speak
 * the Connect and gRPC protocols on Node's HTTP/2 streams themselves, for speed,
 * (the fast path gRPC-Web too), and use these functions so that what they write and read is exactly what
 * connect-node writes and reads: the same status codes, error bodies, trailers
 * and timeouts. An upgrade of connect-es has this one file to check; the
 * behaviour relied on is tested byte for byte against connect-node
 * (server/fast-path.test.ts, sdk/gateway-client/gateway-transport.test.ts) and
 * by the Connect conformance suite.
 *
 * @module
 */

/** A compression (gzip, brotli) as connect-node's handlers take it. */
export type { Compression } from "@connectrpc/connect/protocol";
export {
  /**
   * Calls a unary method's implementation through the handler interceptors, as
   * connect's handlers do: interceptors see and may change the request and the
   * response, and their response headers and trailers go to the context.
   */
  invokeUnaryImplementation,
  /** The same for a streaming method: the implementation's output, through the interceptors. */
  transformInvokeImplementation,
} from "@connectrpc/connect/protocol";
export {
  /** HTTP status of a Connect error code (unary errors). */
  codeToHttpStatus,
  /** The flag of a Connect stream's last envelope, the EndStreamResponse. */
  endStreamFlag,
  /** Reads an EndStreamResponse (its error and metadata). */
  endStreamFromJson,
  /** Writes an EndStreamResponse. */
  endStreamToJson,
  /** Reads a unary Connect error body. */
  errorFromJsonBytes,
  /** Writes a unary Connect error body. */
  errorToJsonBytes,
  /** The `connect-timeout-ms` header, checked as connect-node checks it. */
  parseTimeout as parseConnectTimeout,
  /** Splits `trailer-` headers of a unary Connect answer from its headers. */
  trailerDemux,
  /** Joins trailers into a unary Connect answer's headers, as `trailer-` headers. */
  trailerMux,
  /** Checks a Connect answer's status and content type; tells a unary error. */
  validateResponse as validateConnectResponse,
} from "@connectrpc/connect/protocol-connect";
export {
  /** The `grpc-timeout` header, checked as connect-node checks it. */
  parseTimeout as parseGrpcTimeout,
  /** Writes `grpc-status`, `grpc-message` and `grpc-status-details-bin`. */
  setTrailerStatus,
  /** Checks a gRPC answer's status and headers (a trailers-only error included). */
  validateResponse as validateGrpcResponse,
  /** Reads the status from a gRPC answer's trailers. */
  validateTrailer,
} from "@connectrpc/connect/protocol-grpc";
export {
  /** The flag of a gRPC-Web answer's last envelope: its trailers. */
  trailerFlag,
  /** Writes gRPC-Web trailers as that envelope's body. */
  trailerSerialize,
} from "@connectrpc/connect/protocol-grpc-web";

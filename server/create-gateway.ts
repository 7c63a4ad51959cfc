import { setMaxListeners } from "node:events";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { GatewayService } from "../gen/taskwire/v1/gateway_service_pb.ts";
import { QueueService } from "../gen/taskwire/v1/queue_service_pb.ts";
import { ScheduleService } from "../gen/taskwire/v1/schedule_service_pb.ts";
import { TaskService } from "../gen/taskwire/v1/task_service_pb.ts";
import { WorkerService } from "../gen/taskwire/v1/worker_service_pb.ts";
import { authInterceptor } from "./access-rules.ts";
import { loadConsole, serveConsole } from "./console-route.ts";
import { FastPath } from "./fast-path.ts";
import { Authenticator, peerKey, verifiedPeerOf } from "./gateway-auth.ts";
import { checkJsonDepth } from "./gateway-limits.ts";
import { GatewayMetrics } from "./gateway-metrics.ts";
import { type GatewayOptions, resolveGatewayOptions } from "./gateway-options.ts";
import { gatewayServiceRoutes } from "./gateway-service-routes.ts";
import { healthRoutes } from "./health-routes.ts";
import { ServingStatus } from "./health-service.ts";
import { HealthStatus } from "./health-status.ts";
import { HttpListener } from "./http-listener.ts";
import { refuseUnspokenContentType } from "./media-types.ts";
import { serveMetrics } from "./metrics-route.ts";
import { queueServiceRoutes } from "./queue-service-routes.ts";
import { reflectionRoutes } from "./reflection-routes.ts";
import { tracingInterceptor } from "./rpc-spans.ts";
import { scheduleServiceRoutes } from "./schedule-service-routes.ts";
import { taskServiceRoutes } from "./task-service-routes.ts";
import { typedTaskRoutes } from "./typed-task-routes.ts";
import { workerServiceRoutes } from "./worker-service-routes.ts";

/**
 * The decoder of JSON bodies: UTF-8 that fails on invalid bytes (connect's own
 * replaces them), and text nested deeper than `maxDepth` refused before it is
 * parsed. connect passes its JSON options on to its JSON serialization, which
 * takes a `textDecoder`, though their type does not name it.
 */
function jsonTextDecoder(maxDepth: number): object {
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  return {
    textDecoder: {
      decode(bytes: Uint8Array): string {
        const text = utf8.decode(bytes);
        checkJsonDepth(text, maxDepth);
        return text;
      },
    },
  };
}

/** A running gateway. */
export interface Gateway {
  /** The base URL for clients, e.g. "http://127.0.0.1:8080". */
  readonly url: string;
  /** The port the gateway listens on. */
  readonly port: number;
  /** The web console's address (`url` + "/"), or undefined when the gateway serves none. */
  readonly consoleUrl: string | undefined;
  /** The status the gRPC health service reports: NOT_SERVING while the backend is unavailable and once close() starts. */
  readonly health: HealthStatus;
  /**
   * Reads the TLS files again; new connections use them, open ones keep theirs.
   * Throws, keeping the certificate in use, when a file cannot be read or used,
   * or when the gateway serves no TLS.
   */
  reloadTls(): void;
  /**
   * Stops accepting connections, reports NOT_SERVING, ends open streams with
   * UNAVAILABLE, lets unary requests in flight finish within `shutdownGraceMs`,
   * then closes every HTTP/2 session and HTTP/1 connection. Returns the same
   * promise on every call. The backend is the caller's to close.
   */
  close(): Promise<void>;
}

/**
 * Starts the Connect gateway: TaskService, QueueService (given `queues`), a typed
 * route per task service of `services`, the gRPC health service and server
 * reflection (plus any extra `routes`) on one port, over Connect, gRPC and
 * gRPC-Web, on HTTP/1.1 and HTTP/2 alike (cleartext, or TLS with `tls`);
 * Prometheus metrics on `GET /metrics` (with `auth`, for callers with `read:*`);
 * and the web console at `/` (see `console`).
 *
 * ```ts
 * const gateway = await createGateway({ backend, port: 8080 });
 * // curl -H 'content-type: application/json' -d '{"taskId":"..."}' \
 * //   http://127.0.0.1:8080/taskwire.v1.TaskService/GetTask
 * await gateway.close();
 * ```
 */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const opts = resolveGatewayOptions(options);
  const health =
    opts.health ??
    new HealthStatus([
      TaskService.typeName,
      GatewayService.typeName,
      ...(opts.queues ? [QueueService.typeName, WorkerService.typeName] : []),
      ...(opts.schedules ? [ScheduleService.typeName] : []),
      ...opts.services.map((definition) => definition.service.typeName),
    ]);
  const shutdown = new AbortController();
  // Every request in flight listens to it: no listener limit.
  setMaxListeners(0, shutdown.signal);
  const jsonOptions = opts.typeRegistry ? { registry: opts.typeRegistry } : undefined;
  // Authentication and authorization run first, outside the caller's interceptors.
  const authenticator = opts.auth ? new Authenticator(opts.auth) : undefined;
  const interceptors = authenticator
    ? [authInterceptor(authenticator, opts.services, opts.auditLog), ...opts.interceptors]
    : opts.interceptors;
  const metrics = new GatewayMetrics(opts.services, opts.queues);
  const metricsRoute = serveMetrics(metrics, authenticator && { authenticator, log: opts.auditLog });
  const backend = metrics.countingSubmits(opts.backend);
  // A verified client certificate's name, for authentication by certificate (mTLS).
  const contextValues = opts.auth?.clientCerts?.length
    ? (request: { readonly socket: unknown }) => createContextValues().set(peerKey, verifiedPeerOf(request))
    : undefined;
  // Unary and server-streaming calls in binary Protobuf skip connect-node's machinery (see FastPath).
  const fastPath = new FastPath({
    ...(contextValues ? { contextValues } : {}),
    maxMessageBytes: opts.maxMessageBytes,
    shutdownSignal: shutdown.signal,
    jsonOptions,
    interceptors,
  });
  /** Every call's path, e.g. "/taskwire.v1.TaskService/GetTask". */
  const paths = new Set<string>();
  const connectHandler = connectNodeAdapter({
    ...(contextValues ? { contextValues } : {}),
    routes: (connectRouter) => {
      const router = fastPath.recording(connectRouter);
      taskServiceRoutes(backend)(router);
      gatewayServiceRoutes(opts.services)(router);
      if (opts.queues) {
        queueServiceRoutes(opts.queues, opts.auditLog)(router);
        workerServiceRoutes(opts.queues)(router);
      }
      if (opts.schedules) scheduleServiceRoutes(opts.schedules, opts.auditLog)(router);
      healthRoutes(health)(router);
      typedTaskRoutes(backend, opts.services)(router);
      opts.routes?.(router);
      if (opts.reflection) reflectionRoutes()(router);
      for (const handler of connectRouter.handlers) paths.add(handler.requestPath);
    },
    // As the Protobuf JSON mapping asks of a parser: an unknown field (a misspelt
    // "notBefor") or enum name is an error, not a field silently left unset; and
    // bytes that are not UTF-8 are refused, not read as U+FFFD.
    jsonOptions: { ...jsonOptions, ignoreUnknownFields: false, ...jsonTextDecoder(opts.limits.maxJsonDepth) },
    // A span per call, outermost. The fast path makes its own: as an interceptor there, it
    // would cost every binary call connect's interceptor machinery (docs/decisions/traces.md).
    interceptors: [tracingInterceptor, ...interceptors],
    readMaxBytes: opts.maxMessageBytes,
    writeMaxBytes: opts.maxMessageBytes,
    shutdownSignal: shutdown.signal,
    grpc: true,
    grpcWeb: true,
    connect: true,
  });
  const consoleRoute = opts.console ? serveConsole(await loadConsole(opts.console), paths) : undefined;
  const listener = new HttpListener(
    (request, response) => {
      if (
        fastPath.serve(request, response) ||
        metricsRoute(request, response) ||
        consoleRoute?.(request, response) ||
        refuseUnspokenContentType(request, response, paths)
      )
        return;
      connectHandler(request, response);
    },
    { limits: opts.limits, allowedHosts: opts.allowedHosts, ...(opts.tls ? { tls: opts.tls } : {}) },
  );
  const port = await listener.listen(opts.host, opts.port);
  const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
  // Healthy while the backend reaches its broker.
  const unfollow = opts.backend.onAvailabilityChange?.((available) => {
    health.setAll(available ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);
    metrics.setConnected(available);
  });
  let closed: Promise<void> | undefined;
  const url = `${listener.secure ? "https" : "http"}://${host}:${port}`;
  return {
    url,
    port,
    consoleUrl: consoleRoute && `${url}/`,
    health,
    reloadTls() {
      listener.reloadTls();
    },
    close() {
      closed ??= (async () => {
        unfollow?.();
        health.setAll(ServingStatus.NOT_SERVING);
        shutdown.abort(new ConnectError("the gateway is shutting down", Code.Unavailable));
        await listener.close(opts.shutdownGraceMs);
      })();
      return closed;
    },
  };
}

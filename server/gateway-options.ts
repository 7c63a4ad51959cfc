import { createRegistry, type Registry } from "@bufbuild/protobuf";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import type { QueueBackend, ScheduleBackend, TaskBackend, TaskServiceDefinition } from "../sdk/core/index.ts";
import { registryOf } from "../sdk/core/index.ts";
import { consoleDirectoryOf } from "./console-route.ts";
import { type AuditLog, type GatewayAuthOptions, stderrAuditLog } from "./gateway-auth.ts";
import {
  type GatewayLimits,
  loopbackHosts,
  type ResolvedGatewayLimits,
  resolveGatewayLimits,
} from "./gateway-limits.ts";
import type { HealthStatus } from "./health-status.ts";
import type { GatewayTlsFiles } from "./http-listener.ts";

/** Options of {@link createGateway}. */
export interface GatewayOptions {
  /** Where tasks go and their status comes from, usually `createNatsTaskBackend(...)`. */
  backend: TaskBackend;
  /** Serves QueueService too when given, usually `createNatsQueueBackend(...)`. */
  queues?: QueueBackend;
  /** Serves ScheduleService too when given, usually `startScheduling(...).store`. */
  schedules?: ScheduleBackend;
  /**
   * Task services to serve under their own names (typed routes: a call submits
   * the task and returns its result), e.g. `[hashService]`. Their payload and
   * result messages join the JSON type registry.
   */
  services?: readonly TaskServiceDefinition[];
  /**
   * Serve gRPC server reflection (v1 and v1alpha) describing every service on the
   * port, for grpcurl and similar tools.
   * @default true
   */
  reflection?: boolean;
  /**
   * The interface to listen on. Use "0.0.0.0" or "::" to accept connections from
   * other hosts.
   * @default "127.0.0.1"
   */
  host?: string;
  /**
   * The port to listen on; 0 picks a free one (read it from `Gateway.port`).
   * @default 0
   */
  port?: number;
  /**
   * The largest request or response message, in bytes. A bigger request fails with
   * RESOURCE_EXHAUSTED before it reaches the backend.
   * @default 4 MiB (4_194_304), gRPC's usual limit
   */
  maxMessageBytes?: number;
  /**
   * How long close() lets requests in flight finish before it drops their
   * connections. Streams (WatchTask, health Watch) end at once.
   * @default 5000
   */
  shutdownGraceMs?: number;
  /**
   * The serving status reported by `grpc.health.v1.Health`. By default the gateway
   * creates one with the server and TaskService SERVING.
   */
  health?: HealthStatus;
  /** More services to serve on the same port, such as generated task services. */
  routes?: (router: ConnectRouter) => void;
  /**
   * Connect interceptors run around every call's implementation, the first
   * outermost, on every protocol and route (the binary fast path included): each
   * may read or change the request and the response, or refuse the call.
   */
  interceptors?: Interceptor[];
  /**
   * Who may call, and what each caller may do (docs/security.md). Without it the
   * gateway is open to anyone, which it allows on a loopback `host` only: to
   * listen elsewhere without credentials, grant `auth: { anonymous: [...] }`.
   */
  auth?: GatewayAuthOptions;
  /**
   * Serve TLS with these PEM files: HTTP/2 (ALPN "h2") and HTTP/1.1 on the port,
   * `url` https://. With `clientCa`, clients may present certificates it signed.
   * `Gateway.reloadTls()` reads the files again (the CLI does on SIGHUP).
   */
  tls?: GatewayTlsFiles;
  /**
   * What one client can hold: timeouts, connections, streams, JSON depth
   * ({@link GatewayLimits} gives each default).
   */
  limits?: GatewayLimits;
  /**
   * The host names (any port) requests may name in Host or `:authority`; a request
   * naming another is refused (403: PERMISSION_DENIED), as a page using DNS
   * rebinding would send. Write IPv6 addresses in brackets, e.g. "[::1]".
   * @default localhost, 127.0.0.1 and [::1] when `host` is a loopback address; any otherwise
   */
  allowedHosts?: string[];
  /**
   * Where refused calls and queue operations are logged, one entry each.
   * @default one JSON object per line on stderr
   */
  auditLog?: AuditLog;
  /**
   * More message types JSON clients may pack in an `Any` (task payloads and
   * results), e.g. `registryOf(definitions)` from the SDK, besides those of
   * `services`. A JSON request with an `Any` of a type in neither is refused.
   */
  typeRegistry?: Registry;
  /**
   * The web console, served at `/` on the gateway's port: the directory of its
   * built files, or false to serve none. Its pages call the gateway's services,
   * with the caller's credentials and permissions.
   * @default the package's own build (dist/console), when it exists
   */
  console?: string | false;
}

/** {@link GatewayOptions} with every default applied. */
export interface ResolvedGatewayOptions {
  backend: TaskBackend;
  queues: QueueBackend | undefined;
  schedules: ScheduleBackend | undefined;
  services: readonly TaskServiceDefinition[];
  reflection: boolean;
  host: string;
  port: number;
  maxMessageBytes: number;
  shutdownGraceMs: number;
  health: HealthStatus | undefined;
  routes: ((router: ConnectRouter) => void) | undefined;
  interceptors: Interceptor[];
  typeRegistry: Registry | undefined;
  auth: GatewayAuthOptions | undefined;
  auditLog: AuditLog;
  limits: ResolvedGatewayLimits;
  allowedHosts: ReadonlySet<string> | undefined;
  tls: GatewayTlsFiles | undefined;
  /** The console's directory, or undefined when none is served. */
  console: string | undefined;
}

/** Applies the defaults of {@link GatewayOptions} and checks the numbers. */
export function resolveGatewayOptions(options: GatewayOptions): ResolvedGatewayOptions {
  const host = options.host ?? "127.0.0.1";
  const resolved: ResolvedGatewayOptions = {
    backend: options.backend,
    queues: options.queues,
    schedules: options.schedules,
    services: options.services ?? [],
    reflection: options.reflection ?? true,
    host,
    port: options.port ?? 0,
    maxMessageBytes: options.maxMessageBytes ?? 4 * 1024 * 1024,
    shutdownGraceMs: options.shutdownGraceMs ?? 5000,
    health: options.health,
    routes: options.routes,
    interceptors: options.interceptors ?? [],
    auth: options.auth,
    auditLog: options.auditLog ?? stderrAuditLog,
    limits: resolveGatewayLimits(options.limits),
    tls: options.tls,
    console: consoleDirectoryOf(options.console),
    allowedHosts: options.allowedHosts
      ? new Set(options.allowedHosts.map((name) => name.toLowerCase()))
      : isLoopback(host)
        ? new Set(loopbackHosts)
        : undefined,
    typeRegistry:
      options.services?.length && options.typeRegistry
        ? createRegistry(options.typeRegistry, registryOf(options.services))
        : options.services?.length
          ? registryOf(options.services)
          : options.typeRegistry,
  };
  if (!Number.isInteger(resolved.port) || resolved.port < 0 || resolved.port > 65_535) {
    throw new RangeError(`port must be an integer from 0 to 65535, got ${resolved.port}`);
  }
  // Connect's own ceiling: a message's length travels in a 32-bit field.
  if (
    !Number.isInteger(resolved.maxMessageBytes) ||
    resolved.maxMessageBytes < 1 ||
    resolved.maxMessageBytes > 0xffffffff
  ) {
    throw new RangeError(`maxMessageBytes must be an integer from 1 to 4294967295, got ${resolved.maxMessageBytes}`);
  }
  if (!resolved.auth && !isLoopback(resolved.host)) {
    throw new Error(
      `refusing to serve ${resolved.host} without authentication: configure auth (API keys or JWT), or let callers without credentials in explicitly with auth: { anonymous: ["admin"] }`,
    );
  }
  if (!(resolved.shutdownGraceMs >= 0)) {
    throw new RangeError(`shutdownGraceMs must be zero or more, got ${resolved.shutdownGraceMs}`);
  }
  return resolved;
}

/** Whether `host` is this machine only: localhost, 127.0.0.0/8 or ::1. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * The Taskwire gateway: TaskService and the gRPC health service over Connect,
 * gRPC and gRPC-Web, on HTTP/1.1 and HTTP/2 (cleartext or TLS), on one port.
 *
 * ```ts
 * import { connect } from "@nats-io/transport-node";
 * import { createNatsTaskBackend } from "taskwire";
 * import { createGateway } from "taskwire/server";
 *
 * const nc = await connect({ servers: "127.0.0.1:4222" });
 * const backend = createNatsTaskBackend({ nc, registry, limits, topology });
 * const gateway = await createGateway({ backend, port: 8080 });
 * // grpcurl -plaintext 127.0.0.1:8080 grpc.health.v1.Health/Check
 * // curl -H 'content-type: application/json' -d '{"taskId":"..."}' \
 * //   http://127.0.0.1:8080/taskwire.v1.TaskService/GetTask
 * process.once("SIGTERM", () => gateway.close().then(() => nc.close()));
 * ```
 *
 * @module taskwire/server
 */

export type { Gateway } from "./create-gateway.ts";
export { createGateway } from "./create-gateway.ts";
export type {
  ApiKeyOptions,
  AuditEntry,
  AuditLog,
  ClientCertOptions,
  GatewayAuthOptions,
  JwtOptions,
} from "./gateway-auth.ts";
export { apiKeyHash, principalOf } from "./gateway-auth.ts";
export type { GatewayLimits } from "./gateway-limits.ts";
export type { GatewayOptions } from "./gateway-options.ts";
export { healthRoutes } from "./health-routes.ts";
export type { HealthCheckRequest, HealthCheckResponse } from "./health-service.ts";
export {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  HealthService,
  ServingStatus,
  ServingStatusSchema,
} from "./health-service.ts";
export { HealthStatus } from "./health-status.ts";
export type { GatewayTlsFiles } from "./http-listener.ts";
export type { Action, Permission, PermissionSet, Principal } from "./permissions.ts";
export { parsePermissions } from "./permissions.ts";
export { reflectionRoutes } from "./reflection-routes.ts";
export { taskServiceRoutes } from "./task-service-routes.ts";
export { idempotencyKeyHeader, taskIdHeader, typedTaskRoutes } from "./typed-task-routes.ts";

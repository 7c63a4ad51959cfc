/**
 * The Connect and gRPC transport to a gateway, and the task and queue backends
 * that use it. Uses core/ and wire/, never nats/.
 *
 * @module
 */

export { createConnectQueueBackend } from "./connect-queue-backend.ts";
export { createConnectScheduleBackend } from "./connect-schedule-backend.ts";
export { createConnectTaskBackend } from "./connect-task-backend.ts";
export type { GatewaySessionOptions, GatewayTlsOptions } from "./gateway-session.ts";
export { createGatewayTransport, type GatewayProtocol, type GatewayTransportOptions } from "./gateway-transport.ts";
export { withInterceptors } from "./intercepted-transport.ts";

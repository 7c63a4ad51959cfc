import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { HealthService } from "./health-service.ts";
import type { HealthStatus } from "./health-status.ts";

/**
 * Serves the gRPC health protocol, `grpc.health.v1.Health`, from a
 * {@link HealthStatus}. Check answers NOT_FOUND for a service that is not served
 * (as the protocol specifies); Watch streams the status until the caller hangs up
 * or the gateway shuts down.
 */
export function healthRoutes(health: HealthStatus): (router: ConnectRouter) => void {
  return (router) => {
    router.service(HealthService, {
      check({ service }) {
        const status = health.get(service);
        if (status === undefined) throw new ConnectError(`unknown service "${service}"`, Code.NotFound);
        return { status };
      },
      async *watch({ service }, context) {
        for await (const status of health.watch(service, context.signal)) yield { status };
        context.signal.throwIfAborted(); // UNAVAILABLE when the gateway shuts down
      },
    });
  };
}

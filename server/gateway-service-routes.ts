import type { DescFile } from "@bufbuild/protobuf";
import type { ConnectRouter } from "@connectrpc/connect";
import { GatewayService } from "../gen/taskwire/v1/gateway_service_pb.ts";
import type { TaskServiceDefinition } from "../sdk/core/index.ts";
import { principalOf } from "./gateway-auth.ts";
import { allows, type PermissionSet } from "./permissions.ts";
import { describedFile } from "./reflection-routes.ts";

/**
 * Serves `taskwire.v1.GatewayService`: the caller as authenticated, with its
 * permissions; and the task services of `services` it may read or submit to,
 * with their files' descriptors (comments included) and every file they import.
 */
export function gatewayServiceRoutes(services: readonly TaskServiceDefinition[]): (router: ConnectRouter) => void {
  return (router) => {
    router.service(GatewayService, {
      whoAmI: (_, context) => {
        const principal = principalOf(context);
        return { name: principal.name, via: principal.via, permissions: permissionsOf(principal.permissions) };
      },
      listTaskTypes: (_, context) => {
        const { permissions } = principalOf(context);
        const shown = services.filter(
          (d) => allows(permissions, "read", d.workerType) || allows(permissions, "submit", d.workerType),
        );
        const files: DescFile[] = [];
        // Each file after those it imports, as a registry built from the set reads them.
        const visit = (file: DescFile) => {
          if (files.includes(file)) return;
          for (const dependency of file.dependencies) visit(dependency);
          files.push(file);
        };
        for (const definition of shown) visit(definition.service.file);
        return {
          types: shown.map((d) => ({
            workerType: d.workerType,
            service: d.service.typeName,
            methods: d.service.methods.map((m) => ({
              name: m.name,
              requestType: m.input.typeName,
              responseType: m.output.typeName,
            })),
          })),
          files: { file: files.map(describedFile) },
        };
      },
    });
  };
}

/** A permission set as configured: "<action>:<worker type>", sorted. */
function permissionsOf(permissions: PermissionSet): string[] {
  return [...permissions].flatMap(([action, types]) => [...types].map((type) => `${action}:${type}`)).sort();
}

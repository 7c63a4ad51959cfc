import type * as http from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { type AuditLog, type Authenticator, requirePermission, verifiedPeerOf } from "./gateway-auth.ts";
import type { GatewayMetrics } from "./gateway-metrics.ts";
import type { Principal } from "./permissions.ts";

type Request = Parameters<ReturnType<typeof connectNodeAdapter>>[0];
type Response = Parameters<ReturnType<typeof connectNodeAdapter>>[1];

/** Where the gateway serves its metrics. */
export const metricsPath = "/metrics";

/** The gateway's authentication, for the metrics route: who calls, and where refusals are logged. */
export interface MetricsAccess {
  readonly authenticator: Authenticator;
  readonly log: AuditLog;
}

/**
 * Serves `GET /metrics` (Prometheus' text format) and returns true for a
 * request to that path; false leaves the request to the other routes. With
 * `access`, the caller must be allowed to read every worker type (`read:*`, or
 * admin), as Prometheus shows with `authorization: Bearer <key>`: a refusal is
 * a 401 or 403 whose plain text names what was missing, logged as one audit entry.
 */
export function serveMetrics(
  metrics: GatewayMetrics,
  access: MetricsAccess | undefined,
): (request: Request, response: Response) => boolean {
  return (request, response) => {
    const url = request.url ?? "";
    if (url !== metricsPath && !url.startsWith(`${metricsPath}?`)) return false;
    const reply = response as http.ServerResponse;
    const answer = (status: number, text: string, headers: http.OutgoingHttpHeaders = {}) => {
      reply.writeHead(status, { ...headers, "content-type": "text/plain; charset=utf-8" });
      reply.end(`${text}\n`);
    };
    if (request.method !== "GET" && request.method !== "HEAD") {
      answer(405, `${request.method} is not served on ${metricsPath}: scrape it with GET`, { allow: "GET, HEAD" });
      return true;
    }
    refusal(request, access)
      .then(async (refused) => {
        if (refused) {
          const unauthenticated = refused.code === Code.Unauthenticated;
          answer(
            unauthenticated ? 401 : 403,
            refused.rawMessage,
            unauthenticated ? { "www-authenticate": 'Bearer realm="taskwire"' } : {},
          );
          return;
        }
        const text = await metrics.text();
        reply.writeHead(200, { "content-type": metrics.contentType });
        reply.end(request.method === "HEAD" ? undefined : text);
      })
      .catch((error: Error) => answer(500, `cannot serve the metrics: ${error.message}`));
    return true;
  };
}

/** Why the caller may not read the metrics, logged; undefined when it may. */
async function refusal(request: Request, access: MetricsAccess | undefined): Promise<ConnectError | undefined> {
  if (!access) return undefined;
  let principal: Principal | undefined;
  try {
    principal = await access.authenticator.authenticate(headersOf(request), verifiedPeerOf(request));
    // The metrics tell every worker type's queue.
    requirePermission(principal, "read", ["*"]);
    return undefined;
  } catch (error) {
    const refused = ConnectError.from(error);
    if (refused.code !== Code.Unauthenticated && refused.code !== Code.PermissionDenied) throw error;
    access.log({
      time: new Date().toISOString(),
      principal: principal?.name ?? "anonymous",
      via: principal?.via ?? "anonymous",
      method: metricsPath,
      action: "read",
      workerTypes: ["*"],
      outcome: "refused",
      code: Code[refused.code],
      reason: refused.rawMessage,
    });
    return refused;
  }
}

/** The request's headers as the authenticator reads them (HTTP/2's pseudo-headers left out). */
function headersOf(request: Request): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (name.startsWith(":") || value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  return headers;
}

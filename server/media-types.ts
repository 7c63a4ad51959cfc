import type { connectNodeAdapter } from "@connectrpc/connect-node";

type Request = Parameters<ReturnType<typeof connectNodeAdapter>>[0];
type Response = Parameters<ReturnType<typeof connectNodeAdapter>>[1];

/**
 * The content types of the protocols the gateway speaks: Connect (unary and
 * streaming), gRPC and gRPC-Web, in binary Protobuf or JSON.
 */
const spoken =
  /^application\/(?:json|proto|connect\+(?:json|proto)|grpc(?:\+(?:proto|json))?|grpc-web(?:-text)?(?:\+(?:proto|json))?)\s*(?:;|$)/i;

/** Whether a POST with this content-type header may be one of the gateway's calls. */
export function isSpokenContentType(contentType: string | undefined): boolean {
  return contentType !== undefined && spoken.test(contentType);
}

/**
 * Answers a POST to one of `paths` whose content type no protocol of the
 * gateway uses (curl's `-d` alone sends application/x-www-form-urlencoded)
 * with 415 and a body that says which types are accepted and how to send one;
 * returns whether it did. connect-node's own 415 has an empty body.
 */
export function refuseUnspokenContentType(request: Request, response: Response, paths: ReadonlySet<string>): boolean {
  const contentType = request.headers["content-type"];
  if (request.method !== "POST" || isSpokenContentType(contentType)) return false;
  const path = (request.url ?? "").split("?")[0] ?? "";
  if (!paths.has(path)) return false;
  const body = `${contentType ? `content-type "${contentType}" is not` : "a request without a content-type is not"} one this gateway speaks. Send one of:
  application/json, application/proto   (Connect)
  application/grpc, application/grpc+proto   (gRPC)
  application/grpc-web, application/grpc-web+proto   (gRPC-Web)
for example: curl -H 'content-type: application/json' -d '{...}' <gateway>${path}
`;
  response.writeHead(415, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
  response.end(body);
  return true;
}

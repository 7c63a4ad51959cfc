/**
 * The Connect conformance suite's server under test: the Taskwire gateway's HTTP layer
 * (its listener, fast path and connect-node handlers, as createGateway wires them)
 * serving the suite's ConformanceService. connectconformance starts it, writes one
 * size-delimited ServerCompatRequest to its stdin, and reads the address from its
 * stdout as a size-delimited ServerCompatResponse; SIGTERM stops it.
 *
 *   connectconformance --mode server --conf test/conformance/server.yaml -- \
 *     node --conditions=taskwire-source test/conformance/server.ts
 */
import { readFileSync } from "node:fs";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { createGateway } from "../../server/index.ts";
import { FakeTaskBackend } from "../../server/test-support/fake-task-backend.ts";
import { conformanceRoutes, conformanceTypes } from "./conformance-service.ts";
import { HTTPVersion } from "./gen/connectrpc/conformance/v1/config_pb.ts";
import {
  ServerCompatRequestSchema,
  ServerCompatResponseSchema,
} from "./gen/connectrpc/conformance/v1/server_compat_pb.ts";
import { sizeDelimited } from "./size-delimited.ts";

const input = readFileSync(process.stdin.fd);
const request = fromBinary(ServerCompatRequestSchema, input.subarray(4, 4 + input.readUInt32BE(0)));
// The gateway listens in cleartext, HTTP/1.1 and HTTP/2 on one port (server.yaml says so).
if (request.useTls || request.httpVersion === HTTPVersion.HTTP_VERSION_3) {
  throw new Error(`the gateway serves no ${request.useTls ? "TLS" : "HTTP/3"}`);
}
const gateway = await createGateway({
  backend: new FakeTaskBackend(),
  reflection: false,
  routes: conformanceRoutes,
  typeRegistry: conformanceTypes,
});
process.stdout.write(
  sizeDelimited(
    toBinary(ServerCompatResponseSchema, create(ServerCompatResponseSchema, { host: "127.0.0.1", port: gateway.port })),
  ),
);
process.once("SIGTERM", () => {
  void gateway.close().then(() => process.exit(0));
});

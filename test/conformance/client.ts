/**
 * The Connect conformance suite's client under test: the SDK's gateway transport
 * (sdk/gateway-client), which speaks binary Connect and gRPC over HTTP/2, in cleartext
 * or TLS. connectconformance starts it, writes size-delimited ClientCompatRequests to
 * its stdin, and reads a ClientCompatResponse for each from its stdout, in any order.
 *
 *   connectconformance --mode client --conf test/conformance/client.yaml \
 *     --known-failing @test/conformance/known-failing-client.txt -- \
 *     node --conditions=taskwire-source test/conformance/client.ts
 */
import { create, type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { type Any, anyPack, anyUnpack } from "@bufbuild/protobuf/wkt";
import { type CallOptions, ConnectError, createClient } from "@connectrpc/connect";
import { createGatewayTransport } from "../../sdk/gateway-client/index.ts";
import {
  type ClientCompatRequest,
  ClientCompatRequestSchema,
  type ClientCompatResponse,
  ClientCompatResponseSchema,
  ClientErrorResultSchema,
  type ClientResponseResult,
  ClientResponseResultSchema,
} from "./gen/connectrpc/conformance/v1/client_compat_pb.ts";
import {
  Codec,
  Compression,
  type Code as ConformanceCode,
  HTTPVersion,
  Protocol,
} from "./gen/connectrpc/conformance/v1/config_pb.ts";
import {
  type ConformancePayload,
  ConformancePayloadSchema,
  ConformanceService,
  ErrorSchema,
  IdempotentUnaryRequestSchema,
  ServerStreamRequestSchema,
  UnaryRequestSchema,
  UnimplementedRequestSchema,
} from "./gen/connectrpc/conformance/v1/service_pb.ts";
import { appendHeaders, headerList } from "./headers.ts";
import { sizeDelimited, sizeDelimitedMessages } from "./size-delimited.ts";

process.once("SIGTERM", () => process.exit(0));
const calls: Promise<void>[] = [];
for await (const bytes of sizeDelimitedMessages(process.stdin)) {
  const request = fromBinary(ClientCompatRequestSchema, bytes);
  calls.push(
    call(request).then(
      (value) => reply(request, { case: "response", value }),
      (error: unknown) =>
        reply(request, { case: "error", value: create(ClientErrorResultSchema, { message: String(error) }) }),
    ),
  );
}
await Promise.all(calls);

/** Writes a request's answer: the result of its call, or why the call could not be made. */
function reply(request: ClientCompatRequest, result: ClientCompatResponse["result"]): void {
  const response = create(ClientCompatResponseSchema, { testName: request.testName, result });
  process.stdout.write(sizeDelimited(toBinary(ClientCompatResponseSchema, response)));
}

/** Makes the call a request describes, and says what came back. */
async function call(request: ClientCompatRequest): Promise<ClientResponseResult> {
  refuseUnsupported(request);
  const tls = request.serverTlsCert.length > 0;
  const transport = createGatewayTransport(`${tls ? "https" : "http"}://${request.host}:${request.port}`, {
    protocol: request.protocol === Protocol.GRPC ? "grpc" : "connect",
    tls: tls
      ? {
          ca: Buffer.from(request.serverTlsCert),
          cert: request.clientTlsCreds && Buffer.from(request.clientTlsCreds.cert),
          key: request.clientTlsCreds && Buffer.from(request.clientTlsCreds.key),
        }
      : undefined,
  });
  const client = createClient(ConformanceService, transport);
  const result = create(ClientResponseResultSchema);
  const abort = new AbortController();
  const headers = new Headers();
  appendHeaders(headers, request.requestHeaders);
  const options: CallOptions = {
    headers,
    signal: abort.signal,
    timeoutMs: request.timeoutMs,
    onHeader: (header) => {
      result.responseHeaders = headerList(header);
    },
    onTrailer: (trailer) => {
      result.responseTrailers = headerList(trailer);
    },
  };
  const cancel = request.cancel?.cancelTiming;
  try {
    await sleep(request.requestDelayMs);
    if (request.method === "ServerStream") {
      const responses = client.serverStream(only(request, ServerStreamRequestSchema), options);
      if (cancel?.case === "afterCloseSendMs") setTimeout(() => abort.abort(), cancel.value);
      if (cancel?.case === "afterNumResponses" && cancel.value === 0) abort.abort();
      for await (const response of responses) {
        result.payloads.push(response.payload ?? create(ConformancePayloadSchema));
        if (cancel?.case === "afterNumResponses" && result.payloads.length === cancel.value) abort.abort();
      }
    } else {
      if (cancel?.case === "afterCloseSendMs") setTimeout(() => abort.abort(), cancel.value);
      const response =
        request.method === "Unary"
          ? await client.unary(only(request, UnaryRequestSchema), options)
          : request.method === "IdempotentUnary"
            ? await client.idempotentUnary(only(request, IdempotentUnaryRequestSchema), options)
            : request.method === "Unimplemented"
              ? await client.unimplemented(only(request, UnimplementedRequestSchema), options)
              : unsupported(`method ${request.method}`);
      // An empty answer is one payload, empty (its field unset).
      const { payload } = response as { payload?: ConformancePayload };
      if (request.method !== "Unimplemented") result.payloads.push(payload ?? create(ConformancePayloadSchema));
    }
  } catch (thrown) {
    // A failed call's metadata holds its headers and trailers together (connect's errors).
    const error = ConnectError.from(thrown);
    result.error = create(ErrorSchema, {
      code: error.code as number as ConformanceCode,
      message: error.rawMessage,
      details: error.details.map(
        (detail): Any =>
          "desc" in detail
            ? anyPack(detail.desc, create(detail.desc, detail.value))
            : { $typeName: "google.protobuf.Any", typeUrl: `type.googleapis.com/${detail.type}`, value: detail.value },
      ),
    });
    if (result.responseHeaders.length === 0) result.responseHeaders = headerList(error.metadata);
    result.responseTrailers = headerList(error.metadata);
  } finally {
    transport.close();
  }
  return result;
}

/** What the SDK's transport does not speak is refused; client.yaml asks for none of it. */
function refuseUnsupported(request: ClientCompatRequest): void {
  if (request.httpVersion !== HTTPVersion.HTTP_VERSION_2) unsupported("HTTP versions but 2");
  if (request.protocol !== Protocol.CONNECT && request.protocol !== Protocol.GRPC) unsupported("gRPC-Web");
  if (request.codec !== Codec.PROTO) unsupported("JSON");
  if (request.compression !== Compression.IDENTITY && request.compression !== Compression.UNSPECIFIED) {
    unsupported("compression");
  }
  if (request.useGetHttpMethod) unsupported("GET");
}

function unsupported(what: string): never {
  throw new Error(`the SDK's gateway transport has no ${what}`);
}

/** The call's one request message. */
function only<T extends DescMessage>(request: ClientCompatRequest, schema: T): MessageShape<T> {
  const [message, extra] = request.requestMessages;
  const unpacked = message && !extra ? anyUnpack(message, schema) : undefined;
  if (!unpacked) throw new Error(`${request.testName}: expected one ${schema.typeName}`);
  return unpacked;
}

function sleep(ms: number): Promise<void> {
  return ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}

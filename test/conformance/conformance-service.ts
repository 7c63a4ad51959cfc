import { create, createRegistry } from "@bufbuild/protobuf";
import { type Any, anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import {
  type Error as ConformanceError,
  type ConformancePayload_RequestInfo,
  ConformancePayload_RequestInfoSchema,
  ConformanceService,
  HeaderSchema,
  IdempotentUnaryRequestSchema,
  ServerStreamRequestSchema,
  UnaryRequestSchema,
  type UnaryResponseDefinition,
} from "./gen/connectrpc/conformance/v1/service_pb.ts";
import { appendHeaders, headerList } from "./headers.ts";

/**
 * The Connect conformance suite's ConformanceService (connectrpc/conformance/v1/service.proto)
 * as its server tests expect it: each call answers as its request's response definition
 * says (headers, trailers, delay, data or error) and echoes what it received (headers,
 * timeout, the request itself, a GET's query) in its first payload or in its error's
 * details. Unary, IdempotentUnary and ServerStream only: the gateway serves no client or
 * bidi streams (test/conformance/server.yaml leaves them out); Unimplemented is left
 * unimplemented on purpose.
 */
export function conformanceRoutes(router: ConnectRouter): void {
  router.service(ConformanceService, {
    unary: (request, context) => answer(request.responseDefinition, [anyPack(UnaryRequestSchema, request)], context),
    idempotentUnary: (request, context) =>
      answer(request.responseDefinition, [anyPack(IdempotentUnaryRequestSchema, request)], context),
    async *serverStream(request, context) {
      const definition = request.responseDefinition;
      let info: ConformancePayload_RequestInfo | undefined = requestInfo(
        [anyPack(ServerStreamRequestSchema, request)],
        context,
      );
      appendHeaders(context.responseHeader, definition?.responseHeaders);
      appendHeaders(context.responseTrailer, definition?.responseTrailers);
      for (const data of definition?.responseData ?? []) {
        await delay(definition?.responseDelayMs ?? 0, context.signal);
        yield { payload: { data, requestInfo: info } };
        info = undefined; // only the first message echoes the request
      }
      if (definition?.error) throw errorOf(definition.error, info);
    },
  });
}

/** The message types the suite packs in an `Any`: for JSON requests and error details. */
export const conformanceTypes = createRegistry(
  UnaryRequestSchema,
  IdempotentUnaryRequestSchema,
  ServerStreamRequestSchema,
  ConformancePayload_RequestInfoSchema,
);

async function answer(
  definition: UnaryResponseDefinition | undefined,
  requests: Any[],
  context: HandlerContext,
): Promise<{ payload: { data: Uint8Array; requestInfo: ConformancePayload_RequestInfo } }> {
  const info = requestInfo(requests, context);
  appendHeaders(context.responseHeader, definition?.responseHeaders);
  appendHeaders(context.responseTrailer, definition?.responseTrailers);
  await delay(definition?.responseDelayMs ?? 0, context.signal);
  if (definition?.response.case === "error") throw errorOf(definition.response.value, info);
  const data = definition?.response.case === "responseData" ? definition.response.value : new Uint8Array(0);
  return { payload: { data, requestInfo: info } };
}

/** What the call received, as the suite wants it echoed. */
function requestInfo(requests: Any[], context: HandlerContext): ConformancePayload_RequestInfo {
  const timeoutMs = context.timeoutMs();
  const query = context.requestMethod === "GET" ? new URL(context.url).searchParams : undefined;
  return create(ConformancePayload_RequestInfoSchema, {
    requestHeaders: headerList(context.requestHeader),
    // Whole milliseconds, as connect's handlers give them.
    timeoutMs: timeoutMs === undefined ? undefined : BigInt(timeoutMs),
    requests,
    connectGetInfo: query && {
      queryParams: [...new Set(query.keys())].map((name) => create(HeaderSchema, { name, value: query.getAll(name) })),
    },
  });
}

/** The error a definition asks for, with the request info (if any) after its own details. */
function errorOf(error: ConformanceError, info: ConformancePayload_RequestInfo | undefined): ConnectError {
  const echoed = info ? [{ desc: ConformancePayload_RequestInfoSchema, value: info }] : [];
  const connectError = new ConnectError(error.message ?? "", error.code as number as Code, undefined, echoed);
  // The definition's own details go first, as they came (packed), then the echo.
  connectError.details.unshift(...error.details.map((detail) => ({ type: typeName(detail), value: detail.value })));
  return connectError;
}

function typeName(any: Any): string {
  return any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1);
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(ConnectError.from(signal.reason, Code.Canceled));
      },
      { once: true },
    );
  });
}

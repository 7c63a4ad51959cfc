import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GetTaskRequestSchema, TaskService, WatchTaskRequestSchema } from "../gen/taskwire/v1/task_service_pb.ts";
import { envelope } from "../sdk/wire/envelope.ts";
import { FastPath } from "./fast-path.ts";

const maxMessageBytes = 64 * 1024;

/** An HTTP/2 server of `routes`, with the fast path in front of connect-node or not. */
async function serve(routes: (router: ConnectRouter) => void, fast: boolean, interceptors: Interceptor[] = []) {
  const shutdown = new AbortController();
  const fastPath = new FastPath({ maxMessageBytes, shutdownSignal: shutdown.signal, interceptors });
  const adapter = connectNodeAdapter({
    routes: fast ? (router) => routes(fastPath.recording(router)) : routes,
    interceptors,
    readMaxBytes: maxMessageBytes,
    writeMaxBytes: maxMessageBytes,
    shutdownSignal: shutdown.signal,
  });
  const server = http2.createServer((request, response) => {
    if (!fast || !fastPath.serve(request, response)) adapter(request, response);
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => sessions.add(session));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      for (const session of sessions) session.destroy();
      server.close();
    },
  };
}

/** One request on a connection of its own: the answer as it came, but its date. */
function exchange(url: string, path: string, headers: http2.OutgoingHttpHeaders, body: Uint8Array) {
  return new Promise<unknown>((resolve, reject) => {
    const session = http2.connect(url);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    let head: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", ({ date: _, ...rest }) => {
      head = rest;
    });
    stream.on("trailers", (incoming) => {
      trailers = { ...incoming };
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("close", () => {
      session.close();
      resolve({ head, body: Buffer.concat(chunks).toString("base64"), trailers, rstCode: stream.rstCode });
    });
    stream.end(body);
  });
}

describe("the gateway's fast path", () => {
  const routes = (router: ConnectRouter) => {
    router.service(TaskService, {
      async getTask({ taskId }, context) {
        context.responseHeader.append("set-cookie", "a=1");
        context.responseHeader.append("set-cookie", "b=2");
        return { status: { taskId } };
      },
      async *watchTask({ taskId }, context) {
        context.responseTrailer.append("set-cookie", "c=3");
        context.responseTrailer.append("set-cookie", "d=4");
        yield { status: { taskId } };
      },
      async waitTask() {
        return { status: { taskId: "first registration" } };
      },
    });
    // As in connect-node, the last registration of a method is the one served.
    router.rpc(TaskService.method.waitTask, async () => ({ status: { taskId: "second registration" } }));
  };
  let fast: Awaited<ReturnType<typeof serve>>;
  let plain: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    [fast, plain] = await Promise.all([serve(routes, true), serve(routes, false)]);
  });
  afterAll(() => {
    fast.close();
    plain.close();
  });

  const unary = "/taskwire.v1.TaskService/GetTask";
  const stream = "/taskwire.v1.TaskService/WatchTask";
  const connect = { "content-type": "application/proto" };
  const connectStream = { "content-type": "application/connect+proto" };
  const grpc = { "content-type": "application/grpc", te: "trailers" };
  const get = toBinary(GetTaskRequestSchema, create(GetTaskRequestSchema, { taskId: "t1" }));
  const watch = toBinary(WatchTaskRequestSchema, create(WatchTaskRequestSchema, { taskId: "t1" }));
  const cut = new Uint8Array([0x0a, 0x05, 0x61]); // a string field of 5 bytes, with 1
  const cases: [string, string, http2.OutgoingHttpHeaders, Uint8Array][] = [
    ["Connect unary", unary, connect, get],
    ["Connect stream", stream, connectStream, envelope(0, watch)],
    ["gRPC unary", unary, grpc, envelope(0, get)],
    ["gRPC stream", stream, grpc, envelope(0, watch)],
    ["the last registration", "/taskwire.v1.TaskService/WaitTask", grpc, envelope(0, new Uint8Array(0))],
    ["gRPC unary, no message", unary, grpc, new Uint8Array(0)],
    ["Connect stream, no message", stream, connectStream, new Uint8Array(0)],
    ["gRPC unary, two messages", unary, grpc, Buffer.concat([envelope(0, get), envelope(0, get)])],
    ["Connect stream, two messages", stream, connectStream, Buffer.concat([envelope(0, watch), envelope(0, watch)])],
    ["gRPC unary, a cut envelope head", unary, grpc, new Uint8Array([0, 0, 0])],
    ["gRPC unary, a compressed envelope", unary, grpc, envelope(1, get)],
    [
      "Connect stream, a message and an end-stream envelope",
      stream,
      connectStream,
      Buffer.concat([envelope(0, watch), envelope(2, new TextEncoder().encode("{}"))]),
    ],
    ["gRPC unary, an envelope over the limit", unary, grpc, envelope(0, new Uint8Array(maxMessageBytes + 1))],
    ["Connect unary, a body over the limit", unary, connect, new Uint8Array(maxMessageBytes + 1)],
  ];
  it.each(cases)("answers as connect-node does: %s", async (_, path, headers, body) => {
    expect(await exchange(fast.url, path, headers, body)).toEqual(await exchange(plain.url, path, headers, body));
  });

  // connect-node answers INTERNAL; a body that is no such message is the caller's error.
  it("answers an undecodable message with INVALID_ARGUMENT and connect-node's message", async () => {
    const answer = async (path: string, headers: http2.OutgoingHttpHeaders, body: Uint8Array) =>
      (await exchange(fast.url, path, headers, body)) as {
        head: http2.IncomingHttpHeaders;
        body: string;
        trailers: http2.IncomingHttpHeaders;
      };
    const connectUnary = await answer(unary, connect, cut);
    expect(connectUnary.head[":status"]).toBe(400);
    expect(JSON.parse(Buffer.from(connectUnary.body, "base64").toString())).toEqual({
      code: "invalid_argument",
      message: "parse binary: premature EOF",
    });
    const grpcUnary = await answer(unary, grpc, envelope(0, cut));
    expect(grpcUnary.trailers).toMatchObject({
      "grpc-status": "3",
      "grpc-message": "parse%20binary%3A%20premature%20EOF",
    });
    const connectStreamed = await answer(stream, connectStream, envelope(0, cut));
    // The end-stream envelope: a flag byte, four length bytes, then JSON.
    const end = Buffer.from(connectStreamed.body, "base64").subarray(5).toString();
    expect(JSON.parse(end)).toEqual({ error: { code: "invalid_argument", message: "parse binary: premature EOF" } });
    // connect-node's own message is the same, with INTERNAL.
    const plainAnswer = (await exchange(plain.url, unary, connect, cut)) as { body: string };
    expect(JSON.parse(Buffer.from(plainAnswer.body, "base64").toString())).toEqual({
      code: "internal",
      message: "parse binary: premature EOF",
    });
  });
});

describe("the gateway's fast path with interceptors", () => {
  // One changes the request and the response's headers and trailers; the other refuses
  // calls that say "refuse".
  const interceptors: Interceptor[] = [
    (next) => async (request) => {
      const response = await next(request);
      response.header.set("x-intercepted", request.header.get("x-tag") ?? "none");
      response.trailer.set("x-trailer", "t");
      return response;
    },
    (next) => async (request) => {
      if (request.header.get("x-tag") === "refuse") throw new ConnectError("refused here", Code.PermissionDenied);
      return next(request);
    },
  ];
  const routes = (router: ConnectRouter) => {
    router.service(TaskService, {
      async getTask({ taskId }) {
        return { status: { taskId } };
      },
      async *watchTask({ taskId }) {
        yield { status: { taskId } };
      },
    });
  };
  let fast: Awaited<ReturnType<typeof serve>>;
  let plain: Awaited<ReturnType<typeof serve>>;
  beforeAll(async () => {
    [fast, plain] = await Promise.all([serve(routes, true, interceptors), serve(routes, false, interceptors)]);
  });
  afterAll(() => {
    fast.close();
    plain.close();
  });

  const get = toBinary(GetTaskRequestSchema, create(GetTaskRequestSchema, { taskId: "t1" }));
  const watch = envelope(0, toBinary(WatchTaskRequestSchema, create(WatchTaskRequestSchema, { taskId: "t1" })));
  const grpc = { "content-type": "application/grpc", te: "trailers" };
  const cases: [string, string, http2.OutgoingHttpHeaders, Uint8Array][] = [];
  for (const tag of ["kept", "refuse"]) {
    cases.push(
      [
        `Connect unary, ${tag}`,
        "/taskwire.v1.TaskService/GetTask",
        { "content-type": "application/proto", "x-tag": tag },
        get,
      ],
      [`gRPC unary, ${tag}`, "/taskwire.v1.TaskService/GetTask", { ...grpc, "x-tag": tag }, envelope(0, get)],
      [
        `Connect stream, ${tag}`,
        "/taskwire.v1.TaskService/WatchTask",
        { "content-type": "application/connect+proto", "x-tag": tag },
        watch,
      ],
      [`gRPC stream, ${tag}`, "/taskwire.v1.TaskService/WatchTask", { ...grpc, "x-tag": tag }, watch],
    );
  }
  it.each(cases)("runs them as connect-node does: %s", async (_, path, headers, body) => {
    const answer = await exchange(fast.url, path, headers, body);
    expect(answer).toEqual(await exchange(plain.url, path, headers, body));
    // And they ran: a header set, or the call refused (in a header, a trailer or the body).
    const { head, trailers, body: base64 } = answer as { head: object; trailers: object; body: string };
    const seen = JSON.stringify([head, trailers, Buffer.from(base64, "base64").toString("latin1")]);
    expect(seen).toMatch(headers["x-tag"] === "refuse" ? /refused( |%20)here/ : /"x-intercepted":"kept"/);
  });
});

describe("a server stream held back by its client", () => {
  it("ends its implementation when the client hangs up after its deadline", async () => {
    let aborted = false;
    let ended = false;
    const server = await serve((router) => {
      router.service(TaskService, {
        async *watchTask(_, context) {
          context.signal.addEventListener("abort", () => {
            aborted = true;
          });
          try {
            // It yields on past its deadline: what it had, say.
            for (let i = 0; ; i++) yield { status: { taskId: `${i} ${"x".repeat(8000)}` } };
          } finally {
            ended = true;
          }
        },
      });
    }, true);
    // A window of 1 KiB that the client never reads from: the stream's writes wait to drain.
    const session = http2.connect(server.url, { settings: { initialWindowSize: 1024 } });
    try {
      const call = session.request({
        ":method": "POST",
        ":path": "/taskwire.v1.TaskService/WatchTask",
        "content-type": "application/grpc",
        te: "trailers",
        "grpc-timeout": "200m",
      });
      call.on("error", () => undefined);
      call.pause();
      call.end(envelope(0, toBinary(WatchTaskRequestSchema, create(WatchTaskRequestSchema, { taskId: "t" }))));
      await expect.poll(() => aborted, { timeout: 5_000 }).toBe(true);
      call.close(http2.constants.NGHTTP2_CANCEL);
      await expect.poll(() => ended, { timeout: 5_000 }).toBe(true);
    } finally {
      session.destroy();
      server.close();
    }
  });
});

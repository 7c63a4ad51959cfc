import { execFile } from "node:child_process";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  GetTaskResponseSchema,
  TaskService,
  type WaitTasksResponse,
  type WatchTaskResponse,
} from "../../gen/taskwire/v1/task_service_pb.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import { expectAbandonedCallsToEnd, expectAbandonedStreamsToEnd } from "../../server/test-support/abandoned-calls.ts";
import { endlessTaskId, FakeTaskBackend } from "../../server/test-support/fake-task-backend.ts";
import { maxBatchSize } from "../core/limits.ts";
import { TaskError } from "../core/task-error.ts";
import { envelope } from "../wire/envelope.ts";
import { createGatewayTransport, type GatewayProtocol, userAgent } from "./gateway-transport.ts";

/** Every message of a stream, in order. */
const read = async <T>(stream: AsyncIterable<T>) => {
  const messages: T[] = [];
  for await (const message of stream) messages.push(message);
  return messages;
};

const outcome = (call: Promise<unknown>) =>
  call.then(
    (value) => ({ value }),
    (error: ConnectError) => ({
      code: error.code,
      rawMessage: error.rawMessage,
      details: error.details,
      taskId: TaskError.from(error).taskId,
    }),
  );

/** connect-node's transport of each protocol, which the SDK's must answer as. */
const connectNodeTransports: Record<GatewayProtocol, (baseUrl: string) => Transport> = {
  connect: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2", useBinaryFormat: true }),
  grpc: (baseUrl) => createGrpcTransport({ baseUrl }),
};

describe.each(["connect", "grpc"] as const)("the SDK's transport for gateway calls (%s)", (protocol) => {
  let backend: FakeTaskBackend;
  let gateway: Gateway;
  let connectNode: Transport;
  let transport: ReturnType<typeof createGatewayTransport>;

  beforeAll(async () => {
    backend = new FakeTaskBackend();
    gateway = await createGateway({ backend, maxMessageBytes: 64 * 1024 });
    connectNode = connectNodeTransports[protocol](gateway.url);
    transport = createGatewayTransport(gateway.url, { protocol });
  });
  afterAll(async () => {
    transport.close();
    await gateway.close();
  });

  it("answers each unary call as connect-node's transport does: the same message, or the same error", async () => {
    const ours = createClient(TaskService, transport);
    const theirs = createClient(TaskService, connectNode);
    const { taskId } = await ours.submit({ task: { workerType: "hasher", method: "Digest" } });
    const calls = [
      (client: typeof ours) => client.getTask({ taskId }),
      (client: typeof ours) => client.getTask({ taskId: "nope" }),
      (client: typeof ours) => client.submit({ task: { workerType: "full", method: "Digest" } }),
      (client: typeof ours) => client.submit({}),
      (client: typeof ours) =>
        client.submit({ task: { workerType: "hasher", metadata: { blob: "x".repeat(65_536) } } }),
    ];
    for (const call of calls) expect(await outcome(call(ours))).toEqual(await outcome(call(theirs)));
    expect(await outcome(ours.getTask({ taskId: "nope" }))).toMatchObject({ code: Code.NotFound });
    expect(await outcome(ours.submit({ task: { workerType: "full" } }))).toMatchObject({
      code: Code.ResourceExhausted,
      rawMessage: "the queue of full is full",
    });
  });

  it("answers each server stream as connect-node's transport does: the same messages, then the same end", async () => {
    const ours = createClient(TaskService, transport);
    const theirs = createClient(TaskService, connectNode);
    const { taskId } = await ours.submit({ task: { workerType: "hasher", method: "Digest" } });
    const tooMany = Array.from({ length: maxBatchSize + 1 }, (_, i) => `t${i}`);
    const streams = [
      (client: typeof ours) => client.watchTask({ taskId }),
      (client: typeof ours) => client.watchTask({ taskId: "nope" }),
      (client: typeof ours) => client.waitTasks({ taskIds: [taskId] }),
      (client: typeof ours) => client.waitTasks({ taskIds: [taskId, "nope"] }),
      (client: typeof ours) => client.waitTasks({ taskIds: tooMany }),
    ];
    // The messages until the end, and the end: done, or the error. An error in a
    // message is stamped with its time: compared without it.
    const readToEnd = async (stream: AsyncIterable<WaitTasksResponse | WatchTaskResponse>) => {
      const messages: unknown[] = [];
      const end = await outcome(
        (async () => {
          for await (const message of stream) {
            if ("outcome" in message && message.outcome.case === "error") message.outcome.value.occurredAt = undefined;
            messages.push(message);
          }
        })(),
      );
      return { messages, end };
    };
    for (const stream of streams) expect(await readToEnd(stream(ours))).toEqual(await readToEnd(stream(theirs)));
    expect((await readToEnd(ours.waitTasks({ taskIds: tooMany }))).end).toMatchObject({ code: Code.InvalidArgument });
  });

  it("holds a stream's answers for a reader that lags, and gives it all of them in order", async () => {
    const client = createClient(TaskService, transport);
    const { results } = await client.batchSubmit({
      tasks: Array.from({ length: maxBatchSize }, () => ({ workerType: "hasher", method: "Digest" })),
    });
    const taskIds = results.map((r) => (r.outcome.case === "accepted" ? r.outcome.value.taskId : ""));
    const expected = (await read(createClient(TaskService, connectNode).waitTasks({ taskIds }))).map((m) => m.taskId);
    const answers = client.waitTasks({ taskIds })[Symbol.asyncIterator]();
    const first = await answers.next();
    // The reader lags: the rest of the stream (more than the transport holds before it
    // pauses the HTTP/2 stream) comes meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const got = [first.value?.taskId];
    for (let next = await answers.next(); !next.done; next = await answers.next()) got.push(next.value.taskId);
    expect(got).toEqual(expected);
  });

  it("cancels a call whose signal aborts, and one past its timeout; the gateway's handler ends with it", async () => {
    await expectAbandonedCallsToEnd(transport, backend);
    await expectAbandonedStreamsToEnd(transport, backend);
    // The session is still good for the next call.
    expect((await createClient(TaskService, transport).getTask({ taskId: endlessTaskId })).status?.taskId).toBe(
      endlessTaskId,
    );
  });

  it("is UNAVAILABLE, with the socket's error, when nothing listens at the URL", async () => {
    const closed = await createGateway({ backend: new FakeTaskBackend() });
    const url = closed.url;
    await closed.close();
    const unreachable = createGatewayTransport(url, { protocol });
    try {
      const error = await createClient(TaskService, unreachable)
        .getTask({ taskId: "any" })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectError);
      expect(error).toMatchObject({ code: Code.Unavailable, rawMessage: expect.stringMatching(/ECONNREFUSED/) });
    } finally {
      unreachable.close();
    }
  });

  it("does not keep a process alive once its calls are answered", async () => {
    // A script that makes one call and never closes the transport: it must exit on its own.
    const script = `
      import { createClient } from "@connectrpc/connect";
      import { TaskService } from "./gen/taskwire/v1/task_service_pb.ts";
      import { createGatewayTransport } from "./sdk/gateway-client/gateway-transport.ts";
      const url = process.argv[1];
      const transport = createGatewayTransport(url, { protocol: "${protocol}" });
      const { status } = await createClient(TaskService, transport).getTask({ taskId: "${endlessTaskId}" });
      console.log(status.taskId);
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script, gateway.url], {
      timeout: 20_000,
    });
    expect(stdout.trim()).toBe(endlessTaskId);
  }, 30_000);

  it("keeps a process alive while a call is in flight on a session opened after another went away", async () => {
    // A server that tells each connection to go away 300 ms after it opened (as a proxy
    // with a connection age limit does), and answers "slow" 1.5 s after it is asked.
    const server = http2.createServer(
      connectNodeAdapter({
        routes: (router) =>
          router.service(TaskService, {
            async waitTask({ taskId }, context) {
              const ms = taskId === "slow" ? 1_500 : 60_000;
              await new Promise((resolve) => {
                const timer = setTimeout(resolve, ms);
                context.signal.addEventListener("abort", () => clearTimeout(timer));
              });
              return { status: { taskId } };
            },
          }),
      }),
    );
    server.on("session", (session) => setTimeout(() => session.destroyed || session.goaway(), 300).unref());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    // The first call, on the first session, is abandoned at 1 s; the second, made at
    // 500 ms on a new session, is answered at 2 s: only that session holds the process then.
    const script = `
      import { createClient } from "@connectrpc/connect";
      import { TaskService } from "./gen/taskwire/v1/task_service_pb.ts";
      import { createGatewayTransport } from "./sdk/gateway-client/gateway-transport.ts";
      const client = createClient(TaskService, createGatewayTransport(process.argv[1], { protocol: "${protocol}" }));
      const abandoned = new AbortController();
      client.waitTask({ taskId: "long" }, { signal: abandoned.signal }).catch(() => undefined);
      setTimeout(() => abandoned.abort(), 1_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const { status } = await client.waitTask({ taskId: "slow" });
      console.log(status.taskId);
    `;
    try {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ["--input-type=module", "-e", script, `http://127.0.0.1:${(server.address() as AddressInfo).port}`],
        { timeout: 20_000 },
      );
      expect(stdout.trim()).toBe("slow");
    } finally {
      server.close();
    }
  }, 30_000);
});

describe("the SDK's transport for gateway calls, given answers no gateway sends", () => {
  const message = envelope(0, toBinary(GetTaskResponseSchema, create(GetTaskResponseSchema, { status: {} })));
  const grpcHead = { ":status": 200, "content-type": "application/grpc+proto" };
  /** What the server answers to each case, named by the request's x-case header. */
  const answers: Record<string, (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void> = {
    "reset by the server": (stream) => stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM),
    "a Connect error with a trailer": (stream) => {
      stream.respond({ ":status": 404, "content-type": "application/json", "x-h": "1", "trailer-x-t": "2" });
      stream.end(JSON.stringify({ code: "not_found", message: "nope" }));
    },
    "HTML with status 200": (stream) => {
      stream.respond({ ":status": 200, "content-type": "text/html" });
      stream.end("<html></html>");
    },
    "a Connect stream's end with an error": (stream) => {
      stream.respond({ ":status": 200, "content-type": "application/connect+proto", "x-h": "1" });
      const end = { error: { code: "not_found", message: "nope" }, metadata: { "x-t": ["2"] } };
      stream.end(envelope(2, Buffer.from(JSON.stringify(end))));
    },
    "gRPC, OK without a message": (stream) => stream.respond({ ...grpcHead, "grpc-status": "0" }, { endStream: true }),
    "gRPC, two messages": (stream) => {
      stream.respond(grpcHead, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(Buffer.concat([message, message]));
    },
    "gRPC, a cut envelope": (stream) => {
      stream.respond(grpcHead, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(message.subarray(0, 4));
    },
    // The request's content type, as the server received it, in the error message.
    "a caller's content-type header": (stream, headers) => {
      stream.respond({ ...grpcHead, "grpc-status": "3", "grpc-message": String(headers["content-type"]) });
      stream.end();
    },
    // The request's user-agent, in an error of the request's protocol.
    "the request's user-agent": (stream, headers) => {
      const agent = String(headers["user-agent"]);
      if (String(headers["content-type"]).startsWith("application/grpc")) {
        stream.respond({ ...grpcHead, "grpc-status": "3", "grpc-message": agent });
        stream.end();
      } else {
        stream.respond({ ":status": 400, "content-type": "application/json" });
        stream.end(JSON.stringify({ code: "invalid_argument", message: agent }));
      }
    },
  };
  const cases: [string, GatewayProtocol, "unary" | "stream"][] = [
    ["reset by the server", "grpc", "unary"],
    ["a Connect error with a trailer", "connect", "unary"],
    ["HTML with status 200", "connect", "unary"],
    ["HTML with status 200", "grpc", "unary"],
    ["a Connect stream's end with an error", "connect", "stream"],
    ["gRPC, OK without a message", "grpc", "unary"],
    ["gRPC, two messages", "grpc", "unary"],
    ["gRPC, a cut envelope", "grpc", "unary"],
    ["a caller's content-type header", "grpc", "unary"],
  ];
  let server: http2.Http2Server;
  let url: string;
  beforeAll(async () => {
    server = http2.createServer();
    server.on("stream", (stream, headers) => {
      stream.on("error", () => undefined);
      stream.resume();
      stream.on("end", () => answers[String(headers["x-case"])]?.(stream, headers));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => server.close());

  it.each(cases)("fails as connect-node's transport does: %s (%s %s)", async (name, protocol, kind) => {
    const failure = async (transport: Transport) => {
      const client = createClient(TaskService, transport);
      const headers = { "x-case": name, "content-type": "application/grpc+json" };
      const error = await (kind === "unary"
        ? client.getTask({ taskId: "t" }, { headers })
        : (async () => {
            for await (const _ of client.watchTask({ taskId: "t" }, { headers }));
          })()
      ).then(
        () => new Error("no error"),
        (e: unknown) => e,
      );
      if (!(error instanceof ConnectError)) return error;
      const metadata = [...error.metadata].filter(([header]) => header.startsWith("x-"));
      return { code: error.code, rawMessage: error.rawMessage, metadata };
    };
    const ours = createGatewayTransport(url, { protocol });
    try {
      // Each case fails with connect-node (a call that does not fail gives an Error, and
      // two of those would compare equal): then ours fails alike.
      const theirs = await failure(connectNodeTransports[protocol](url));
      expect(theirs).toMatchObject({ code: expect.any(Number), rawMessage: expect.any(String) });
      expect(await failure(ours)).toEqual(theirs);
    } finally {
      ours.close();
    }
  });

  it.each(["connect", "grpc"] as const)(
    "names itself in user-agent, as connect-node does, unless the caller does (%s)",
    async (protocol) => {
      const ours = createGatewayTransport(url, { protocol });
      const agentOf = (headers: Record<string, string>) =>
        createClient(TaskService, ours)
          .getTask({ taskId: "t" }, { headers: { "x-case": "the request's user-agent", ...headers } })
          .then(
            () => "answered",
            (error: unknown) => ConnectError.from(error).rawMessage,
          );
      try {
        expect(await agentOf({})).toBe(userAgent);
        expect(await agentOf({ "user-agent": "billing/2.0" })).toBe("billing/2.0");
      } finally {
        ours.close();
      }
    },
  );
});

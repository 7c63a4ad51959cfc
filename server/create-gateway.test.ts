import * as http2 from "node:http2";
import * as net from "node:net";
import { create } from "@bufbuild/protobuf";
import { Code, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskSchema, TaskState } from "../gen/taskwire/v1/task_pb.ts";
import { TaskService, WaitTasksRequestSchema, WaitTasksResponseSchema } from "../gen/taskwire/v1/task_service_pb.ts";
import { maxBatchSize } from "../sdk/core/limits.ts";
import { EnvelopeSplitter, envelope } from "../sdk/wire/envelope.ts";
import { decodeMessage, encodeMessage } from "../sdk/wire/wire-codec.ts";
import { createGateway, type Gateway } from "./create-gateway.ts";
import { HealthService, ServingStatus } from "./health-service.ts";
import { expectAbandonedCallsToEnd, expectAbandonedStreamsToEnd } from "./test-support/abandoned-calls.ts";
import { endlessTaskId, FakeTaskBackend } from "./test-support/fake-task-backend.ts";

const maxMessageBytes = 64 * 1024;

describe("createGateway", () => {
  let backend: FakeTaskBackend;
  let gateway: Gateway;

  beforeAll(async () => {
    backend = new FakeTaskBackend();
    // A gRPC request refused midway for its size can leave its HTTP/2 stream open
    // (the client stops sending on flow control); close() destroys it after the grace
    // period, which is kept short here.
    gateway = await createGateway({ backend, maxMessageBytes, shutdownGraceMs: 200 });
  });
  afterAll(() => gateway.close());

  const transports: Record<string, () => Transport> = {
    "Connect over HTTP/1.1": () => createConnectTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
    "Connect over HTTP/2": () => createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" }),
    "gRPC over HTTP/2": () => createGrpcTransport({ baseUrl: gateway.url }),
    "gRPC-Web over HTTP/1.1": () => createGrpcWebTransport({ baseUrl: gateway.url, httpVersion: "1.1" }),
  };

  for (const [name, transport] of Object.entries(transports)) {
    it(`serves TaskService with ${name}`, async () => {
      const client = createClient(TaskService, transport());
      const { taskId } = await client.submit({ task: { workerType: "hasher", method: "Digest" } });
      expect(backend.tasks.has(taskId)).toBe(true);

      const { status } = await client.getTask({ taskId });
      expect(status).toMatchObject({ taskId, workerType: "hasher", state: TaskState.PENDING });

      const states: TaskState[] = [];
      for await (const response of client.watchTask({ taskId })) states.push(response.status?.state ?? 0);
      expect(states).toEqual([TaskState.PENDING, TaskState.RUNNING, TaskState.SUCCEEDED]);

      await expect(client.getTask({ taskId: "nope" })).rejects.toMatchObject({
        code: Code.NotFound,
        rawMessage: "task nope not found",
      });
      // A stream's errors, before its first message and after it.
      const drain = async (stream: AsyncIterable<unknown>) => {
        for await (const _ of stream);
      };
      const notFound = await drain(client.watchTask({ taskId: "nope" })).catch((e: unknown) => e);
      expect(notFound).toMatchObject({ code: Code.NotFound, rawMessage: "task nope not found" });
      const tooMany = Array.from({ length: maxBatchSize + 1 }, (_, i) => `t${i}`);
      await expect(drain(client.waitTasks({ taskIds: tooMany }))).rejects.toMatchObject({
        code: Code.InvalidArgument,
        rawMessage: `WaitTasks waits for at most ${maxBatchSize} tasks, got ${maxBatchSize + 1}`,
      });
      const outcomes: string[] = [];
      for await (const waited of client.waitTasks({ taskIds: [taskId, "nope"] })) {
        const { outcome } = waited;
        outcomes.push(`${waited.taskId} ${outcome.case === "error" ? outcome.value.code : outcome.value?.state}`);
      }
      expect(outcomes.sort()).toEqual([`${taskId} ${TaskState.SUCCEEDED}`, `nope ${Code.NotFound}`].sort());
    });
  }

  for (const [name, transport] of Object.entries(transports)) {
    it(`ends a unary call's handler when the client hangs up, or its deadline passes (${name})`, () =>
      expectAbandonedCallsToEnd(transport(), backend));
    it(`ends a server stream's handler when the client hangs up, or its deadline passes (${name})`, () =>
      expectAbandonedStreamsToEnd(transport(), backend));
  }

  it("holds a server stream back while the client's flow-control window is full, and sends all of it", async () => {
    const client = createClient(TaskService, createGrpcTransport({ baseUrl: gateway.url }));
    const { results } = await client.batchSubmit({
      tasks: Array.from({ length: maxBatchSize }, () => ({ workerType: "hasher", method: "Digest" })),
    });
    const taskIds = results.map((r) => (r.outcome.case === "accepted" ? r.outcome.value.taskId : ""));
    // A window of 1 KiB: the stream's thousand answers (about 60 KiB) fill it, and the
    // gateway's writes buffer up until the client reads on.
    const session = http2.connect(gateway.url, { settings: { initialWindowSize: 1024 } });
    try {
      const request = encodeMessage(WaitTasksRequestSchema, create(WaitTasksRequestSchema, { taskIds }));
      const stream = session.request({
        ":method": "POST",
        ":path": "/taskwire.v1.TaskService/WaitTasks",
        "content-type": "application/grpc+proto",
        te: "trailers",
      });
      const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once("trailers", resolve));
      stream.end(envelope(0, request));
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      const envelopes = new EnvelopeSplitter();
      const answered = envelopes
        .push(Buffer.concat(chunks))
        .map(({ data }) => decodeMessage(WaitTasksResponseSchema, data).taskId);
      expect(envelopes.pending).toBe(0);
      expect(answered.sort()).toEqual([...taskIds].sort());
      expect((await trailers)["grpc-status"]).toBe("0");
    } finally {
      session.close();
    }
  });

  it("answers a plain JSON POST, as curl sends it", async () => {
    const { taskId } = await backend.submit(create(TaskSchema, { workerType: "hasher", method: "Digest" }));
    const response = await fetch(`${gateway.url}/taskwire.v1.TaskService/GetTask`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ taskId }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      status: { taskId, workerType: "hasher", method: "Digest", state: "TASK_STATE_PENDING" },
    });

    const missing = await fetch(`${gateway.url}/taskwire.v1.TaskService/GetTask`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ taskId: "nope" }),
    });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ code: "not_found", message: "task nope not found" });
  });

  it("reports SERVING over the gRPC health protocol", async () => {
    const health = createClient(HealthService, createGrpcTransport({ baseUrl: gateway.url }));
    expect(await health.check({})).toMatchObject({ status: ServingStatus.SERVING });
    expect(await health.check({ service: "taskwire.v1.TaskService" })).toMatchObject({
      status: ServingStatus.SERVING,
    });
    await expect(health.check({ service: "no.such.Service" })).rejects.toMatchObject({ code: Code.NotFound });

    const abort = new AbortController();
    const watched: ServingStatus[] = [];
    const watch = (async () => {
      for await (const { status } of health.watch({ service: "custom.v1.Thing" }, { signal: abort.signal })) {
        watched.push(status);
        if (status === ServingStatus.SERVICE_UNKNOWN) gateway.health.set("custom.v1.Thing", ServingStatus.SERVING);
        if (status === ServingStatus.SERVING) abort.abort();
      }
    })();
    await expect(watch).rejects.toMatchObject({ code: Code.Canceled });
    expect(watched).toEqual([ServingStatus.SERVICE_UNKNOWN, ServingStatus.SERVING]);
  });

  it("refuses a request bigger than maxMessageBytes with RESOURCE_EXHAUSTED", async () => {
    const metadata = { blob: "x".repeat(maxMessageBytes) };
    for (const transport of Object.values(transports)) {
      const client = createClient(TaskService, transport());
      await expect(client.submit({ task: { workerType: "hasher", metadata } })).rejects.toMatchObject({
        code: Code.ResourceExhausted,
      });
    }
    expect([...backend.tasks.values()].some((t) => t.task.metadata.blob !== undefined)).toBe(false);
  });
});

describe("Gateway.close", () => {
  it("is idempotent, ends open streams and frees the port", async () => {
    const backend = new FakeTaskBackend();
    const gateway = await createGateway({ backend });
    const client = createClient(TaskService, createGrpcTransport({ baseUrl: gateway.url }));
    const watched: TaskState[] = [];
    const watch = (async () => {
      for await (const { status } of client.watchTask({ taskId: endlessTaskId })) watched.push(status?.state ?? 0);
    })();
    await expect.poll(() => watched.length).toBe(1);
    // And a unary call (the gateway's own fast path), whose handler waits on its signal.
    const waiting = client.waitTask({ taskId: endlessTaskId }).catch(() => undefined);
    await expect.poll(() => backend.watchSignals.length).toBe(2);

    const closing = gateway.close();
    expect(gateway.close()).toBe(closing);
    expect(gateway.health.get("")).toBe(ServingStatus.NOT_SERVING);
    await expect(watch).rejects.toMatchObject({ code: Code.Unavailable });
    // At once, not when the grace ends and the connection with it.
    await expect.poll(() => backend.watchSignals[1]?.aborted).toBe(true);
    await waiting;
    await closing;
    expect(backend.watchSignals[0]?.aborted).toBe(true);

    // The port is free again: something else can listen on it.
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(gateway.port, "127.0.0.1", resolve);
    });
    await new Promise((resolve) => server.close(resolve));
  });

  it("closes idle keep-alive connections of both HTTP versions", async () => {
    const gateway = await createGateway({ backend: new FakeTaskBackend(), shutdownGraceMs: 60_000 });
    const body = JSON.stringify({});
    const headers = { "content-type": "application/json" };
    // What each connection saw from the gateway, in order: "closing" marks the call of close().
    const seen: string[] = [];
    // An HTTP/1.1 keep-alive connection and an HTTP/2 session, each idle after one call.
    const socket = net.connect(gateway.port, "127.0.0.1");
    socket.once("end", () => seen.push("http/1.1 end"));
    const socketClosed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    const answered = new Promise<string>((resolve) => socket.once("data", (chunk) => resolve(chunk.toString())));
    socket.write(
      `POST /taskwire.v1.TaskService/ListTasks HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: ${headers["content-type"]}\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
    const head = await answered;
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    expect(head).toMatch(/^connection: keep-alive\r$/im); // kept open for another request
    const session = http2.connect(gateway.url);
    session.once("goaway", (code) => seen.push(`http/2 goaway ${code}`));
    const sessionClosed = new Promise<void>((resolve) => session.once("close", () => resolve()));
    await new Promise<void>((resolve, reject) => {
      const call = session.request({ ":method": "POST", ":path": "/taskwire.v1.TaskService/ListTasks", ...headers });
      call.on("response", (head) => (head[":status"] === 200 ? resolve() : reject(new Error(`${head[":status"]}`))));
      call.resume();
      call.end(body);
    });
    // Both still open, idle: nothing but the gateway's close() ends them.
    expect([socket.readyState, session.closed, session.destroyed]).toEqual(["open", false, false]);
    // With a one-minute grace period (twice the test's timeout), close() ends in time only
    // if the gateway closes idle connections without waiting for it.
    seen.push("closing");
    await gateway.close();
    await Promise.all([socketClosed, sessionClosed]);
    // Each closed by the gateway, gracefully: a FIN on HTTP/1.1, a GOAWAY (NO_ERROR) on HTTP/2.
    expect(seen.toSorted()).toEqual(["closing", "http/1.1 end", `http/2 goaway ${http2.constants.NGHTTP2_NO_ERROR}`]);
    expect(seen[0]).toBe("closing");
    expect(socket.destroyed).toBe(true);
    expect(session.closed || session.destroyed).toBe(true);
  });
});

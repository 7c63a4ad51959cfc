import * as http2 from "node:http2";
import * as net from "node:net";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskService } from "../../gen/taskwire/v1/task_service_pb.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import type { GatewayOptions } from "../../server/gateway-options.ts";
import { HealthService, ServingStatus } from "../../server/health-service.ts";
import { endlessTaskId, FakeTaskBackend } from "../../server/test-support/fake-task-backend.ts";
import { poll } from "../support/poll.ts";

/** A raw TCP connection to the gateway, with everything it received and whether it closed. */
async function rawConnection(gateway: Gateway) {
  const socket = net.connect(gateway.port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  let received = "";
  let closed = false;
  socket.on("data", (chunk: Buffer) => {
    received += chunk.toString("latin1");
  });
  socket.on("error", () => {});
  socket.on("close", () => {
    closed = true;
  });
  return { socket, received: () => received, closed: () => closed };
}

/** Waits until the gateway has closed `connection` (or fails after `ms`, naming it). */
const closedWithin = (connection: { closed: () => boolean }, ms: number) =>
  poll(async () => (connection.closed() ? true : undefined), ms);

/**
 * Each way a client could hold a gateway (slow or idle connections, too many
 * connections or streams, deep JSON, a foreign Host) against a real gateway
 * with small limits: each is ended or refused with a status clients map to a code.
 */
describe("gateway limits", () => {
  const gateways: Gateway[] = [];
  const start = async (options: Partial<GatewayOptions>) => {
    const gateway = await createGateway({ backend: new FakeTaskBackend(), shutdownGraceMs: 100, ...options });
    gateways.push(gateway);
    return gateway;
  };
  let gateway: Gateway;

  beforeAll(async () => {
    gateway = await start({
      limits: { headersTimeoutMs: 300, requestTimeoutMs: 600, idleTimeoutMs: 400, maxJsonDepth: 32 },
    });
  });
  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
  });

  it("closes an HTTP/1.1 connection whose headers never end (slowloris)", async () => {
    const connection = await rawConnection(gateway);
    connection.socket.write("POST /taskwire.v1.TaskService/GetTask HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: 1\r\n");
    await closedWithin(connection, 10_000);
    expect(connection.received()).toMatch(/^HTTP\/1\.1 408/);
  });

  it("closes an HTTP/1.1 connection whose body never ends", async () => {
    const connection = await rawConnection(gateway);
    connection.socket.write(
      "POST /taskwire.v1.TaskService/GetTask HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    );
    await closedWithin(connection, 10_000);
  });

  it("closes an idle HTTP/1.1 keep-alive connection", async () => {
    const connection = await rawConnection(gateway);
    connection.socket.write(
      "POST /taskwire.v1.TaskService/ListTasks HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    );
    await closedWithin(connection, 10_000);
    expect(connection.received()).toMatch(/^HTTP\/1\.1 200/);
  });

  it("closes an HTTP/2 connection without streams, and resets a stream whose request never ends", async () => {
    const idle = http2.connect(gateway.url);
    idle.on("error", () => {});
    const goaway = new Promise<number>((resolve) => idle.once("goaway", resolve));
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);

    const session = http2.connect(gateway.url);
    session.on("error", () => {});
    const stream = session.request({
      ":method": "POST",
      ":path": "/taskwire.v1.TaskService/GetTask",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => {});
    stream.write(Buffer.from([0, 0, 0, 0, 10])); // an envelope of 10 bytes, never sent
    const closed = new Promise<number>((resolve) => stream.once("close", () => resolve(stream.rstCode ?? -1)));
    const code = await closed;
    // Reset (CANCEL) by the gateway, or answered DEADLINE_EXCEEDED-like by a closed read.
    expect([http2.constants.NGHTTP2_CANCEL, http2.constants.NGHTTP2_NO_ERROR]).toContain(code);
    session.destroy();
  });

  it("refuses JSON nested deeper than maxJsonDepth before parsing it; health checks go on", async () => {
    const deep = `{"taskId":${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
    const response = await fetch(`${gateway.url}/taskwire.v1.TaskService/GetTask`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: deep,
    });
    expect(await response.json()).toEqual({
      code: "resource_exhausted",
      message: "the JSON request nests deeper than 32 levels (the gateway's limits.maxJsonDepth)",
    });
    // Strings do not count: brackets inside one are text.
    const inString = await fetch(`${gateway.url}/taskwire.v1.TaskService/GetTask`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ taskId: `${"[".repeat(100)}\\"{` }),
    });
    expect(((await inString.json()) as { code: string }).code).toBe("not_found");
    const health = createClient(HealthService, createGrpcTransport({ baseUrl: gateway.url }));
    expect(await health.check({})).toMatchObject({ status: ServingStatus.SERVING });
  });

  it("refuses a Host it does not answer to, as DNS rebinding would send, on both HTTP versions", async () => {
    const connection = await rawConnection(gateway);
    connection.socket.write(
      "POST /taskwire.v1.TaskService/ListTasks HTTP/1.1\r\nhost: attacker.example:8080\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    );
    await poll(async () => (connection.received().includes("\r\n\r\n") ? true : undefined), 5_000);
    expect(connection.received()).toMatch(/^HTTP\/1\.1 403/);
    const body = connection.received().slice(connection.received().indexOf("{"));
    expect(JSON.parse(body.slice(0, body.lastIndexOf("}") + 1))).toEqual({
      code: "permission_denied",
      message: `this gateway does not answer to host "attacker.example:8080": add it to the gateway's allowedHosts`,
    });
    connection.socket.destroy();

    const session = http2.connect(gateway.url);
    const stream = session.request({
      ":method": "POST",
      ":path": "/taskwire.v1.TaskService/ListTasks",
      ":authority": "attacker.example",
      "content-type": "application/json",
    });
    const status = await new Promise<number | undefined>((resolve) =>
      stream.once("response", (h) => resolve(h[":status"])),
    );
    expect(status).toBe(403);
    stream.destroy();
    session.close();
    // Named hosts and loopback names with any port pass.
    const named = await start({ allowedHosts: ["tasks.example.com"] });
    const passed = await rawConnection(named);
    passed.socket.write(
      "POST /taskwire.v1.TaskService/ListTasks HTTP/1.1\r\nhost: TASKS.example.com:443\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    );
    await poll(async () => (passed.received().includes("\r\n\r\n") ? true : undefined), 5_000);
    expect(passed.received()).toMatch(/^HTTP\/1\.1 200/);
    passed.socket.destroy();
  });

  it("refuses connections past maxConnections with 503 and retry-after", async () => {
    const limited = await start({ limits: { maxConnections: 2 } });
    const held = [await rawConnection(limited), await rawConnection(limited)];
    for (const connection of held) connection.socket.write("P"); // a protocol to tell, not a whole request
    const third = await rawConnection(limited);
    third.socket.write(
      "POST /taskwire.v1.TaskService/ListTasks HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    );
    await closedWithin(third, 5_000);
    expect(third.received()).toMatch(/^HTTP\/1\.1 503 Service Unavailable\r\nretry-after: 1\r\n/);
    expect(third.received()).toContain("the gateway has 2 connections open (limits.maxConnections)");
    // An HTTP/2 client past the limit is refused UNAVAILABLE, its session closed.
    const grpc = createClient(TaskService, createGrpcTransport({ baseUrl: limited.url }));
    const refused = ConnectError.from(await grpc.listTasks({}).catch((error: unknown) => error));
    expect(refused.code).toBe(Code.Unavailable);
    expect(refused.rawMessage).toContain("the gateway has 2 connections open (limits.maxConnections)");
    for (const connection of held) connection.socket.destroy();
    // Once they are gone, calls go through again.
    await poll(async () => ((await grpc.listTasks({}).catch(() => undefined)) ? true : undefined), 5_000);
  });

  it("refuses streams past maxStreams (UNAVAILABLE) and past maxStreamsPerConnection", async () => {
    const limited = await start({ limits: { maxStreams: 2, maxStreamsPerConnection: 100 } });
    const grpc = createClient(TaskService, createGrpcTransport({ baseUrl: limited.url }));
    const watching = new AbortController();
    const watches = [0, 1].map(async () => {
      for await (const _ of grpc.watchTask({ taskId: endlessTaskId }, { signal: watching.signal }));
    });
    for (const watch of watches) watch.catch(() => {});
    // Both open: a third call waits for neither and is refused.
    const third = await poll(async () => {
      const outcome = await grpc.getTask({ taskId: "task-none" }).catch((error: unknown) => ConnectError.from(error));
      return outcome instanceof ConnectError && outcome.code === Code.Unavailable ? outcome : undefined;
    }, 5_000);
    expect(third.rawMessage).toContain("the gateway has 2 requests in flight (limits.maxStreams)");
    watching.abort();

    const perConnection = await start({ limits: { maxStreamsPerConnection: 1 } });
    const session = http2.connect(perConnection.url);
    await new Promise<void>((resolve) => session.once("remoteSettings", () => resolve()));
    expect(session.remoteSettings.maxConcurrentStreams).toBe(1);
    session.close();
  });
});

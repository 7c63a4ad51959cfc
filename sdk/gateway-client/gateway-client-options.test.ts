import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TaskState } from "../../gen/taskwire/v1/task_pb.ts";
import { TaskService } from "../../gen/taskwire/v1/task_service_pb.ts";
import { poll } from "../../test/support/poll.ts";
import { startTcpProxy, type TcpProxy } from "../../test/support/tcp-proxy.ts";
import { createClient, type TaskwireClient } from "../client/index.ts";

/** A gateway stand-in: TaskService.GetTask over HTTP/2 that records what it saw. */
interface TaskServer {
  readonly url: string;
  readonly port: number;
  /** The authorization and x-order headers of each call. */
  readonly calls: { authorization: string | null; order: string | null }[];
  /** PING frames received, over every session. */
  pings: number;
  /** Every session opened, in order, and whether it closed since. */
  readonly sessions: { closed: boolean }[];
  /** Answers the call of this task id once it resolves (else at once). */
  hold?: Promise<void>;
  close(): Promise<void>;
}

async function startTaskServer(secure?: { key: Buffer; cert: Buffer }): Promise<TaskServer> {
  const state: TaskServer = {
    url: "",
    port: 0,
    calls: [],
    pings: 0,
    sessions: [],
    close: async () => {},
  };
  const handler = connectNodeAdapter({
    routes: (router) =>
      router.service(TaskService, {
        async getTask({ taskId }, context) {
          state.calls.push({
            authorization: context.requestHeader.get("authorization"),
            order: context.requestHeader.get("x-order"),
          });
          await state.hold;
          return { status: { taskId } };
        },
        async *watchTask({ taskId }, context) {
          state.calls.push({
            authorization: context.requestHeader.get("authorization"),
            order: context.requestHeader.get("x-order"),
          });
          yield { status: { taskId, state: TaskState.SUCCEEDED } };
        },
      }),
  });
  const server = secure
    ? http2.createSecureServer({ ...secure, allowHTTP1: false }, handler)
    : http2.createServer(handler);
  const open = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    const seen = { closed: false };
    state.sessions.push(seen);
    open.add(session);
    session.on("ping", () => state.pings++);
    session.on("close", () => {
      open.delete(session);
      seen.closed = true;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(state, {
    url: `${secure ? "https" : "http"}://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Sessions a test left open must not hold the close.
        for (const session of open) session.destroy();
      }),
  });
}

describe("the gateway client's options", () => {
  let server: TaskServer;
  const clients: TaskwireClient[] = [];
  const client = async (options: Parameters<typeof createClient>[0]) => {
    const made = await createClient(options);
    clients.push(made);
    return made;
  };

  beforeAll(async () => {
    server = await startTaskServer();
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
    server.hold = undefined;
  });
  afterAll(async () => {
    await server?.close();
  });

  it("sends its default headers with every call", async () => {
    const tasks = await client({ gateway: server.url, headers: { authorization: "Bearer t0ken" } });
    await tasks.getTask("a.01M81KRJQKXX1XB86P9GKYNA2Y");
    await tasks.getTask("a.01M81KRJQKXX1XB86P9GKYNA2Z");
    expect(server.calls.slice(-2).map((c) => c.authorization)).toEqual(["Bearer t0ken", "Bearer t0ken"]);
  });

  it("runs its interceptors around every call, the first outermost; one may refuse the call", async () => {
    const log: string[] = [];
    const named =
      (name: string): Interceptor =>
      (next) =>
      async (request) => {
        log.push(`${name}>`);
        request.header.set("x-order", `${request.header.get("x-order") ?? ""}${name}`);
        const response = await next(request);
        log.push(`<${name}`);
        return response;
      };
    const tasks = await client({ gateway: server.url, interceptors: [named("a"), named("b")] });
    expect((await tasks.getTask("a.01M81KRJQKXX1XB86P9GKYNA2Y")).taskId).toBe("a.01M81KRJQKXX1XB86P9GKYNA2Y");
    expect(log).toEqual(["a>", "b>", "<b", "<a"]);
    expect(server.calls.at(-1)?.order).toBe("ab");
    // A server stream (WatchTask) goes through them too.
    const states = [];
    for await (const status of tasks.watchTask("a.01M81KRJQKXX1XB86P9GKYNA2Y")) states.push(status.state);
    expect(states).toEqual([TaskState.SUCCEEDED]);
    expect(log.slice(4)).toEqual(["a>", "b>", "<b", "<a"]);
    expect(server.calls.at(-1)?.order).toBe("ab");

    const calls = server.calls.length;
    const refusing: Interceptor = () => async () => {
      throw new ConnectError("no token", Code.Unauthenticated);
    };
    const refused = await client({ gateway: server.url, interceptors: [refusing] });
    const error = await refused.getTask("a.01M81KRJQKXX1XB86P9GKYNA2Y").catch((e: unknown) => ConnectError.from(e));
    expect(error).toMatchObject({ code: Code.Unauthenticated, rawMessage: "no token" });
    expect(server.calls.length).toBe(calls);
  });

  it("uses a transport the caller made", async () => {
    const tasks = await client({ transport: createConnectTransport({ baseUrl: server.url, httpVersion: "2" }) });
    expect((await tasks.getTask("a.01M81KRJQKXX1XB86P9GKYNA2Y")).taskId).toBe("a.01M81KRJQKXX1XB86P9GKYNA2Y");
  });

  it("pings the gateway while a call is in flight, and not while idle", async () => {
    let release = () => {};
    server.hold = new Promise<void>((resolve) => {
      release = resolve;
    });
    const before = server.pings;
    const tasks = await client({ gateway: server.url, pingIntervalMs: 50 });
    const call = tasks.getTask("a.01M81KRJQKXX1XB86P9GKYNA2Y");
    await poll(async () => (server.pings - before >= 3 ? true : undefined));
    release();
    await call;
    const after = server.pings;
    // Twenty intervals without a call: not one ping more.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(server.pings).toBe(after);
  });

  it("closes its session once idle", async () => {
    const opened = server.sessions.length;
    const tasks = await client({ gateway: server.url, idleTimeoutMs: 100 });
    await tasks.getTask("a.01M81KRJQKXX1XB86P9GKYNA2Y");
    const mine = server.sessions[opened];
    expect(mine?.closed).toBe(false);
    await poll(async () => (mine?.closed ? true : undefined));
  });

  describe("a gateway that stops answering", () => {
    let proxy: TcpProxy;
    beforeAll(async () => {
      proxy = await startTcpProxy(server.port);
    });
    afterAll(async () => {
      await proxy?.close();
    });

    it("fails the calls in flight UNAVAILABLE once a ping goes unanswered", async () => {
      server.hold = new Promise<void>(() => {}); // the call is never answered
      const port = new URL(proxy.url).port;
      const tasks = await client({ gateway: `http://127.0.0.1:${port}`, pingIntervalMs: 50, pingTimeoutMs: 200 });
      // From the call on (its request body holds the task id in plain), nothing the gateway
      // sends comes through: its ping answers neither.
      proxy.holdAfter("a.01M81KRJQKXX1XB86P9GKYNA2W");
      const error = await tasks.getTask("a.01M81KRJQKXX1XB86P9GKYNA2W").catch((e: unknown) => ConnectError.from(e));
      expect(error).toMatchObject({
        code: Code.Unavailable,
        rawMessage: "the gateway did not answer a ping within 200 ms",
      });
      proxy.release();
    });
  });
});

describe("the gateway client over TLS", () => {
  let dir: string;
  let server: TaskServer;
  let cert: Buffer;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "taskwire-tls-"));
    await promisify(execFile)("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
    ]);
    cert = await readFile(join(dir, "cert.pem"));
    server = await startTaskServer({ key: await readFile(join(dir, "key.pem")), cert });
  });
  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("calls an https gateway whose certificate it is told to trust, and refuses one it is not", async () => {
    const trusting = await createClient({ gateway: server.url, tls: { ca: cert } });
    try {
      expect((await trusting.getTask("a.01M81KRJQKXX1XB86P9GKYNA2Y")).taskId).toBe("a.01M81KRJQKXX1XB86P9GKYNA2Y");
    } finally {
      await trusting.close();
    }
    const wary = await createClient({ gateway: server.url });
    try {
      const error = await wary.getTask("a.01M81KRJQKXX1XB86P9GKYNA2Y").catch((e: unknown) => ConnectError.from(e));
      expect((error as ConnectError).rawMessage).toMatch(/self[- ]signed certificate/);
    } finally {
      await wary.close();
    }
  });
});

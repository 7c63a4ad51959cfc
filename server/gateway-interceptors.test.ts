import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TaskSchema } from "../gen/taskwire/v1/task_pb.ts";
import { TaskService } from "../gen/taskwire/v1/task_service_pb.ts";
import { createGateway, type Gateway } from "./create-gateway.ts";
import { FakeTaskBackend } from "./test-support/fake-task-backend.ts";

describe("a gateway's interceptors", () => {
  let gateway: Gateway;
  let taskId: string;
  const seen: string[] = [];
  // Lets a call through only with a token, and says which calls it saw.
  const auth: Interceptor = (next) => async (request) => {
    seen.push(`${request.method.name} ${request.header.get("content-type")}`);
    if (request.header.get("authorization") !== "Bearer ok") {
      throw new ConnectError("a bearer token is needed", Code.Unauthenticated);
    }
    return next(request);
  };

  beforeAll(async () => {
    const backend = new FakeTaskBackend();
    ({ taskId } = await backend.submit(create(TaskSchema, { workerType: "w", method: "M" })));
    gateway = await createGateway({ backend, interceptors: [auth] });
  });
  afterAll(() => gateway.close());

  // Binary Connect and gRPC take the gateway's fast path; JSON and gRPC-Web connect-node's.
  const transports: Record<string, (url: string) => Transport> = {
    "binary Connect": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "2" }),
    "binary gRPC": (baseUrl) => createGrpcTransport({ baseUrl }),
    "JSON Connect": (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
    "gRPC-Web": (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  };
  for (const [name, transport] of Object.entries(transports)) {
    it(`run on every call over ${name}: one refused, one let through, unary and streaming`, async () => {
      const client = createClient(TaskService, transport(gateway.url));
      const before = seen.length;
      const refused = await client.getTask({ taskId: taskId }).catch((error: unknown) => ConnectError.from(error));
      expect(refused).toMatchObject({ code: Code.Unauthenticated, rawMessage: "a bearer token is needed" });
      const headers = { authorization: "Bearer ok" };
      expect((await client.getTask({ taskId: taskId }, { headers })).status?.taskId).toBe(taskId);
      const streamed: string[] = [];
      for await (const answer of client.watchTask({ taskId: taskId }, { headers })) {
        streamed.push(answer.status?.taskId ?? "");
      }
      expect(streamed).toEqual([taskId, taskId, taskId]); // PENDING, RUNNING, SUCCEEDED
      expect(seen.slice(before).map((s) => s.split(" ")[0])).toEqual(["GetTask", "GetTask", "WatchTask"]);
    });
  }
});

import { execFile } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";
import { Code, ConnectError, createClient as createConnectClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { reportService } from "../../examples/gen/example/v1/report_taskwire.ts";
import { QueueService } from "../../gen/taskwire/v1/queue_service_pb.ts";
import { TaskService } from "../../gen/taskwire/v1/task_service_pb.ts";
import { createClient } from "../../sdk/client/create-client.ts";
import { createTaskRegistry, registryOf } from "../../sdk/core/task-registry.ts";
import { createNatsQueueBackend } from "../../sdk/nats/nats-queue-backend.ts";
import { createNatsTaskBackend } from "../../sdk/nats/nats-task-backend.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import { type AuditEntry, apiKeyHash, type GatewayAuthOptions } from "../../server/gateway-auth.ts";
import type { GatewayOptions } from "../../server/gateway-options.ts";
import { HealthService, ServingStatus } from "../../server/health-service.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";
import { grpcurlBinary } from "../support/tools.ts";

const run = promisify(execFile);
const services = [hashService, reportService];

const keys = {
  admin: "tw_admin_0123456789abcdefghijklmnopqrstuv",
  hasher: "tw_hasher_0123456789abcdefghijklmnopqrstu",
  expired: "tw_expired_0123456789abcdefghijklmnopqrst",
};
const hashDigest = { workerType: "hasher", method: "Digest" };

interface JsonAnswer {
  readonly status: number;
  readonly body: { code?: string; message?: string } & Record<string, unknown>;
}

/**
 * Authentication and per-type permissions on every route of a real gateway over
 * a real nats-server. Each attack of an anonymous or under-privileged caller is
 * a call that succeeds on a gateway without `auth`, and is refused with it.
 */
describe("gateway authentication and permissions", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let jwks: Server;
  let signingKey: Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];
  const audit: AuditEntry[] = [];
  const gateways: Gateway[] = [];
  let open: Gateway;
  let secured: Gateway;

  const startGateway = async (auth: GatewayAuthOptions | undefined, extra: Partial<GatewayOptions> = {}) => {
    const backend = await createNatsTaskBackend({ nc, registry: createTaskRegistry(services) });
    const queues = await createNatsQueueBackend({ nc, tasks: backend });
    const gateway = await createGateway({
      backend,
      queues,
      services,
      typeRegistry: registryOf(services),
      ...(auth ? { auth } : {}),
      auditLog: (entry) => audit.push(entry),
      ...extra,
    });
    gateways.push(gateway);
    return gateway;
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    const pair = await generateKeyPair("ES256");
    signingKey = pair.privateKey;
    const jwk: JWK = { ...(await exportJWK(pair.publicKey)), kid: "k1", alg: "ES256", use: "sig" };
    // The issuer's keys, served as an identity provider serves them.
    jwks = createServer((_, response) => {
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify({ keys: [jwk] }));
    });
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));
    open = await startGateway(undefined);
    secured = await startGateway({
      apiKeys: [
        { name: "ops", sha256: apiKeyHash(keys.admin), permissions: ["admin"] },
        { name: "billing", sha256: apiKeyHash(keys.hasher), permissions: ["submit:hasher", "read:hasher"] },
        {
          name: "old",
          sha256: apiKeyHash(keys.expired),
          permissions: ["admin"],
          expires: new Date("2020-01-01T00:00:00Z"),
        },
      ],
      jwt: {
        jwks: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`,
        issuer: "https://id.example.com",
        audience: "taskwire",
      },
    });
  }, 30_000);

  afterAll(async () => {
    await Promise.all(gateways.map((g) => g.close()));
    jwks?.close();
    await nc?.close();
    await nats?.stop();
  });

  /** A Connect JSON call, as curl makes it. */
  const call = async (gateway: Gateway, path: string, body: unknown, token?: string): Promise<JsonAnswer> => {
    const response = await fetch(`${gateway.url}/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: (await response.json()) as JsonAnswer["body"] };
  };

  const jwt = (claims: Record<string, unknown>, options: { audience?: string; expiresIn?: string } = {}) =>
    new SignJWT(claims)
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer("https://id.example.com")
      .setAudience(options.audience ?? "taskwire")
      .setSubject("alice@example.com")
      .setIssuedAt()
      .setExpirationTime(options.expiresIn ?? "5m")
      .sign(signingKey);

  /** A task of each type, submitted with the admin key. */
  const submitted = async () => {
    const hash = await call(
      secured,
      "taskwire.v1.TaskService/Submit",
      {
        task: { ...hashDigest, payload: { "@type": "type.googleapis.com/example.v1.DigestRequest", text: "x" } },
      },
      keys.admin,
    );
    const report = await call(
      secured,
      "taskwire.v1.TaskService/Submit",
      {
        task: {
          workerType: "reports",
          method: "Generate",
          payload: { "@type": "type.googleapis.com/example.v1.GenerateRequest", title: "q3", sections: 1 },
        },
      },
      keys.admin,
    );
    expect(hash.status, JSON.stringify(hash.body)).toBe(200);
    expect(report.status, JSON.stringify(report.body)).toBe(200);
    return { hash: hash.body.taskId as string, report: report.body.taskId as string };
  };

  it("refuses every attack of the anonymous caller that an open gateway allows", async () => {
    const { report } = await submitted();
    const attacks: [string, unknown][] = [
      ["taskwire.v1.TaskService/ListTasks", {}],
      ["taskwire.v1.TaskService/GetTask", { taskId: report }],
      ["taskwire.v1.QueueService/PauseQueue", { workerType: "reports" }],
      ["taskwire.v1.QueueService/ResumeQueue", { workerType: "reports" }],
      ["taskwire.v1.QueueService/ListDeadLetters", { workerType: "reports" }],
      ["taskwire.v1.QueueService/PurgeDeadLetters", { workerType: "reports" }],
      ["taskwire.v1.QueueService/PurgeQueue", { workerType: "reports" }],
      ["taskwire.v1.TaskService/CancelTask", { taskId: report }],
    ];
    for (const [path, body] of attacks) {
      const refused = await call(secured, path, body);
      expect(refused, path).toEqual({
        status: 401,
        body: {
          code: "unauthenticated",
          message:
            'this gateway requires credentials: send "authorization: Bearer <an API key or a JWT from https://id.example.com>"',
        },
      });
    }
    // The same calls on a gateway without auth: each goes through.
    const { report: other } = await submitted();
    for (const [path, body] of attacks) {
      const withOther = JSON.parse(JSON.stringify(body).replace(report, other));
      const allowed = await call(open, path, withOther);
      expect(allowed.status, `${path}: ${JSON.stringify(allowed.body)}`).toBe(200);
    }
  });

  it("lets a key do what its permissions name, and refuses the rest naming the permission", async () => {
    const { hash, report } = await submitted();
    // billing: submit:hasher and read:hasher.
    expect((await call(secured, "taskwire.v1.TaskService/GetTask", { taskId: hash }, keys.hasher)).status).toBe(200);
    const refusals: [string, unknown, string][] = [
      ["taskwire.v1.TaskService/GetTask", { taskId: report }, "read:reports"],
      ["taskwire.v1.TaskService/CancelTask", { taskId: hash }, "cancel:hasher"],
      ["taskwire.v1.TaskService/ListTasks", {}, "read:*"],
      ["taskwire.v1.TaskService/ListTasks", { workerType: "reports" }, "read:reports"],
      ["taskwire.v1.QueueService/PauseQueue", { workerType: "hasher" }, "operate:hasher"],
      ["taskwire.v1.QueueService/PurgeQueue", { workerType: "hasher" }, "operate:hasher"],
      ["taskwire.v1.QueueService/PurgeDeadLetters", { workerType: "hasher" }, "operate:hasher"],
      ["taskwire.v1.QueueService/GetQueue", { workerType: "reports" }, "read:reports"],
      ["example.v1.ReportService/Generate", { title: "q", sections: 1 }, "submit:reports"],
    ];
    for (const [path, body, permission] of refusals) {
      expect(await call(secured, path, body, keys.hasher), path).toEqual({
        status: 403,
        body: { code: "permission_denied", message: `billing may not do this: it needs permission "${permission}"` },
      });
    }
    const listed = await call(secured, "taskwire.v1.TaskService/ListTasks", { workerType: "hasher" }, keys.hasher);
    expect(listed.status).toBe(200);
    expect((listed.body.tasks as { workerType: string }[]).every((t) => t.workerType === "hasher")).toBe(true);
    // Each refusal is one structured line: who, what, outcome, and why.
    expect(audit).toContainEqual(
      expect.objectContaining({
        principal: "billing",
        via: "api-key",
        method: "/taskwire.v1.QueueService/PurgeQueue",
        action: "operate",
        workerTypes: ["hasher"],
        outcome: "refused",
        code: "PermissionDenied",
      }),
    );
    expect(JSON.stringify(audit)).not.toContain(keys.hasher);
  });

  it("refuses an expired key, an unknown one and a malformed header, naming why and never the token", async () => {
    const get = (token: string) => call(secured, "taskwire.v1.TaskService/ListTasks", {}, token);
    expect((await get(keys.expired)).body).toEqual({
      code: "unauthenticated",
      message: 'API key "old" expired at 2020-01-01T00:00:00.000Z',
    });
    const unknown = await get("tw_not_a_key_at_all");
    expect(unknown.body).toEqual({
      code: "unauthenticated",
      message: "the bearer token is neither a known API key nor a JWT",
    });
    const response = await fetch(`${secured.url}/taskwire.v1.TaskService/ListTasks`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Basic dXNlcjpwYXNz" },
      body: "{}",
    });
    expect(await response.json()).toEqual({
      code: "unauthenticated",
      message: 'the authorization header must be "Bearer <an API key or a JWT from https://id.example.com>"',
    });
    expect(JSON.stringify(audit)).not.toContain("tw_not_a_key_at_all");
  });

  it("accepts a JWT from the JWKS, with its permissions claim; refuses a wrong audience or an expired one", async () => {
    const { hash } = await submitted();
    const reader = await jwt({ permissions: ["read:hasher"] });
    expect((await call(secured, "taskwire.v1.TaskService/GetTask", { taskId: hash }, reader)).status).toBe(200);
    expect((await call(secured, "taskwire.v1.TaskService/CancelTask", { taskId: hash }, reader)).body).toEqual({
      code: "permission_denied",
      message: 'alice@example.com may not do this: it needs permission "cancel:hasher"',
    });
    const elsewhere = await jwt({ permissions: ["admin"] }, { audience: "another-service" });
    expect((await call(secured, "taskwire.v1.TaskService/ListTasks", {}, elsewhere)).body).toEqual({
      code: "unauthenticated",
      message: 'the JWT is not accepted: claim "aud" does not match',
    });
    const expired = await jwt({ permissions: ["admin"] }, { expiresIn: "-1m" });
    expect((await call(secured, "taskwire.v1.TaskService/ListTasks", {}, expired)).body).toEqual({
      code: "unauthenticated",
      message: "the JWT is not accepted: it has expired (exp)",
    });
    // Signed by another key: the JWKS has none that verifies it.
    const forger = await generateKeyPair("ES256");
    const forged = await new SignJWT({ permissions: ["admin"] })
      .setProtectedHeader({ alg: "ES256", kid: "k1" })
      .setIssuer("https://id.example.com")
      .setAudience("taskwire")
      .setSubject("mallory")
      .setExpirationTime("5m")
      .sign(forger.privateKey);
    expect((await call(secured, "taskwire.v1.TaskService/ListTasks", {}, forged)).body).toEqual({
      code: "unauthenticated",
      message: "the JWT is not accepted: its signature does not verify",
    });
  });

  it("holds on the binary fast path (gRPC) and for grpcurl; health checks stay open", async () => {
    const { report } = await submitted();
    const grpc = (token?: string) =>
      createConnectClient(
        TaskService,
        createGrpcTransport({
          baseUrl: secured.url,
          interceptors: token
            ? [
                (next) => (request) => {
                  request.header.set("authorization", `Bearer ${token}`);
                  return next(request);
                },
              ]
            : [],
        }),
      );
    const anonymous = await grpc()
      .getTask({ taskId: report })
      .catch((e: unknown) => e);
    expect(anonymous).toBeInstanceOf(ConnectError);
    expect((anonymous as ConnectError).code).toBe(Code.Unauthenticated);
    const denied = await grpc(keys.hasher)
      .getTask({ taskId: report })
      .catch((e: unknown) => e);
    expect((denied as ConnectError).code).toBe(Code.PermissionDenied);
    expect((await grpc(keys.admin).getTask({ taskId: report })).status?.taskId).toBe(report);
    const queues = createConnectClient(QueueService, createGrpcTransport({ baseUrl: secured.url }));
    await expect(queues.purgeQueue({ workerType: "reports" })).rejects.toMatchObject({ code: Code.Unauthenticated });

    const grpcurl = async (...args: string[]) =>
      run(grpcurlBinary(), ["-plaintext", ...args], { timeout: 30_000 }).then(
        ({ stdout }) => ({ code: 0, out: stdout }),
        (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, out: error.stderr }),
      );
    const address = secured.url.replace("http://", "");
    // Reflection needs a caller; grpcurl sends the header on its reflection calls too.
    expect((await grpcurl(address, "list")).out).toMatch(/Unauthenticated.*requires credentials/);
    const bearer = ["-H", `authorization: Bearer ${keys.admin}`];
    expect((await grpcurl(...bearer, address, "list")).out).toContain("taskwire.v1.TaskService");
    const got = await grpcurl(
      ...bearer,
      "-d",
      JSON.stringify({ taskId: report }),
      address,
      "taskwire.v1.TaskService/GetTask",
    );
    expect(got.out).toContain(report);
    // Health checks are open, for load balancers and probes.
    const health = createConnectClient(HealthService, createGrpcTransport({ baseUrl: secured.url }));
    expect(await health.check({})).toMatchObject({ status: ServingStatus.SERVING });
  });

  it("the SDK sends a token with every call", async () => {
    const client = await createClient({ gateway: secured.url, token: keys.hasher });
    try {
      const handle = await client.submitTask(hashService.methods.digest, { text: "from the SDK" });
      expect((await client.getTask(handle.id)).workerType).toBe("hasher");
      await expect(client.listTasks({ workerType: "reports" })).rejects.toMatchObject({
        code: Code.PermissionDenied,
      });
    } finally {
      await client.close();
    }
  });

  it("refuses to serve a non-loopback address without auth, unless anonymous callers are let in explicitly", async () => {
    await expect(startGateway(undefined, { host: "0.0.0.0" })).rejects.toThrow(
      /refusing to serve 0\.0\.0\.0 without authentication/,
    );
    const explicit = await startGateway({ anonymous: ["admin"] }, { host: "0.0.0.0" });
    expect(explicit.port).toBeGreaterThan(0);
  });

  it("records the submitter in the task's status, whatever the client sends", async () => {
    const task = {
      ...hashDigest,
      payload: { "@type": "type.googleapis.com/example.v1.DigestRequest", text: "who" },
      submittedBy: "mallory",
    };
    const byKey = await call(secured, "taskwire.v1.TaskService/Submit", { task }, keys.hasher);
    const byJwt = await call(
      secured,
      "taskwire.v1.TaskService/Submit",
      { task },
      await jwt({ permissions: ["submit:*"] }),
    );
    const typed = await fetch(`${secured.url}/example.v1.HashService/Digest`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${keys.admin}`, "connect-timeout-ms": "1" },
      body: JSON.stringify({ text: "typed" }),
    });
    const typedId = typed.headers.get("taskwire-task-id");
    const onOpen = await call(open, "taskwire.v1.TaskService/Submit", { task });
    const submitterOf = async (gateway: Gateway, taskId: unknown) =>
      (await call(gateway, "taskwire.v1.TaskService/GetTask", { taskId }, keys.admin)).body.status as {
        submittedBy?: string;
      };
    expect((await submitterOf(secured, byKey.body.taskId)).submittedBy).toBe("billing");
    expect((await submitterOf(secured, byJwt.body.taskId)).submittedBy).toBe("alice@example.com");
    expect(typedId).toMatch(/^hasher\./);
    expect((await submitterOf(secured, typedId)).submittedBy).toBe("ops");
    // Without auth there is no one to record, and the client's claim is not kept.
    expect((await submitterOf(open, onOpen.body.taskId)).submittedBy).toBeUndefined();
  });

  it("logs every queue operation with its caller and outcome", async () => {
    audit.length = 0;
    await call(secured, "taskwire.v1.QueueService/PauseQueue", { workerType: "reports" }, keys.admin);
    await call(secured, "taskwire.v1.QueueService/ResumeQueue", { workerType: "reports" }, keys.admin);
    expect(audit.map((e) => `${e.principal} ${e.method} ${e.workerTypes?.join()} ${e.outcome}`)).toEqual([
      "ops /taskwire.v1.QueueService/PauseQueue reports ok",
      "ops /taskwire.v1.QueueService/ResumeQueue reports ok",
    ]);
  });
});

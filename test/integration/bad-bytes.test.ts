import * as http2 from "node:http2";
import { brotliCompressSync, gzipSync } from "node:zlib";
import { create, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DigestRequestSchema } from "../../examples/gen/example/v1/hash_pb.ts";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { TaskSchema } from "../../gen/taskwire/v1/task_pb.ts";
import { SubmitRequestSchema, SubmitResponseSchema } from "../../gen/taskwire/v1/task_service_pb.ts";
import { createTaskRegistry, registryOf } from "../../sdk/core/task-registry.ts";
import { createNatsTaskBackend } from "../../sdk/nats/nats-task-backend.ts";
import { envelope } from "../../sdk/wire/envelope.ts";
import { decodeMessage, encodeMessage } from "../../sdk/wire/wire-codec.ts";
import { createGateway, type Gateway } from "../../server/create-gateway.ts";
import { type NatsServer, startNatsServer } from "../support/nats-server.ts";

const submitPath = "/taskwire.v1.TaskService/Submit";

/** A SubmitRequest for a hasher task whose idempotency key is "k" and then `tail`, as raw bytes. */
function submitWithKey(tail: number[]): Uint8Array {
  // Encoded with a placeholder byte after "k", which is then replaced: the codec itself
  // writes only valid UTF-8.
  const placeholder = "k\u0001";
  const bytes = encodeMessage(
    SubmitRequestSchema,
    create(SubmitRequestSchema, {
      task: create(TaskSchema, {
        workerType: "hasher",
        method: "Digest",
        payload: anyPack(DigestRequestSchema, create(DigestRequestSchema, { text: "same" })),
        idempotencyKey: placeholder,
      }),
    }),
  );
  const at = Buffer.from(bytes).indexOf(Buffer.from(placeholder));
  const before = bytes.subarray(0, at);
  const after = bytes.subarray(at + placeholder.length);
  // The key's length (one byte, just before it) and its enclosing Task's length (the
  // second byte of the message) change by the same amount.
  const grown = tail.length - 1;
  const out = Buffer.concat([before, Buffer.from([0x6b, ...tail]), after]);
  out[at - 1] = (out[at - 1] as number) + grown;
  out[1] = (out[1] as number) + grown;
  return out;
}

interface Answer {
  /** The Connect or gRPC status as a code name ("ok", "invalid_argument", ...) or a gRPC number. */
  readonly code: string;
  readonly message: string;
  readonly body: Uint8Array;
}

/** A unary call in binary Protobuf over the Connect protocol (HTTP/1.1). */
async function connectCall(
  gateway: Gateway,
  path: string,
  body: Uint8Array,
  type = "application/proto",
  encoding?: "gzip",
): Promise<Answer> {
  const response = await fetch(`${gateway.url}${path}`, {
    method: "POST",
    headers: { "content-type": type, ...(encoding && { "content-encoding": encoding }) },
    body: encoding ? gzipSync(body) : body,
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (response.status === 200) return { code: "ok", message: "", body: bytes };
  const error = JSON.parse(Buffer.from(bytes).toString("utf8")) as { code: string; message: string };
  return { code: error.code, message: error.message, body: bytes };
}

/** A unary call in binary Protobuf over gRPC (or gRPC-Web) on HTTP/2, its message compressed or not. */
function grpcCall(
  gateway: Gateway,
  path: string,
  message: Uint8Array,
  type = "application/grpc",
  encoding?: "gzip" | "br",
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(gateway.url);
    session.on("error", reject);
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": type,
      te: "trailers",
      ...(encoding && { "grpc-encoding": encoding }),
    });
    const chunks: Buffer[] = [];
    let headers: http2.IncomingHttpHeaders = {};
    stream.on("response", (h) => {
      headers = h;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("trailers", (t) => {
      trailers = t;
    });
    stream.on("error", reject);
    stream.on("end", () => {
      session.close();
      const all = { ...headers, ...trailers };
      const body = Buffer.concat(chunks);
      // gRPC-Web carries its status in a trailer frame inside the body.
      const text = body.toString("latin1");
      const status = String(all["grpc-status"] ?? /grpc-status:\s*(\d+)/.exec(text)?.[1] ?? "");
      const message = decodeURIComponent(
        String(all["grpc-message"] ?? /grpc-message:\s*([^\r\n]*)/.exec(text)?.[1] ?? ""),
      );
      resolve({ code: status, message, body });
    });
    const compressed =
      encoding === "gzip" ? gzipSync(message) : encoding === "br" ? brotliCompressSync(message) : message;
    stream.end(envelope(encoding ? 1 : 0, compressed));
  });
}

const decode = <D extends DescMessage>(schema: D, body: Uint8Array): MessageShape<D> => decodeMessage(schema, body);

/**
 * Bytes that are not what they claim are refused, never repaired: strings that
 * are not UTF-8 and malformed messages are the caller's error (INVALID_ARGUMENT)
 * on every protocol, so two different keys can never be read as one.
 */
describe("bad bytes", () => {
  let nats: NatsServer;
  let nc: NatsConnection;
  let gateway: Gateway;

  beforeAll(async () => {
    nats = await startNatsServer();
    nc = await connect({ servers: nats.url });
    const backend = await createNatsTaskBackend({ nc, registry: createTaskRegistry([hashService]) });
    gateway = await createGateway({ backend, typeRegistry: registryOf([hashService]) });
  }, 30_000);

  afterAll(async () => {
    await gateway?.close();
    await nc?.close();
    await nats?.stop();
  });

  it("refuses idempotency keys k\\xff and k\\xfe and accepts k\\uFFFD as its own task (Connect)", async () => {
    const ff = await connectCall(gateway, submitPath, submitWithKey([0xff]));
    const fe = await connectCall(gateway, submitPath, submitWithKey([0xfe]));
    const replacement = await connectCall(gateway, submitPath, submitWithKey([0xef, 0xbf, 0xbd]));
    for (const refused of [ff, fe]) {
      expect(refused).toMatchObject({
        code: "invalid_argument",
        message: "parse binary: string field taskwire.v1.Task.idempotency_key is not valid UTF-8",
      });
    }
    expect(replacement.code).toBe("ok");
    const accepted = decode(SubmitResponseSchema, replacement.body);
    expect(accepted.duplicate).toBe(false);
    // Sent again, k\uFFFD is a duplicate of itself, and only of itself.
    const again = await connectCall(gateway, submitPath, submitWithKey([0xef, 0xbf, 0xbd]));
    expect(decode(SubmitResponseSchema, again.body)).toMatchObject({ taskId: accepted.taskId, duplicate: true });
  });

  it("refuses a key that is not UTF-8 over gRPC and gRPC-Web too", async () => {
    const grpc = await grpcCall(gateway, submitPath, submitWithKey([0xff]));
    expect(grpc).toMatchObject({
      code: "3",
      message: "parse binary: string field taskwire.v1.Task.idempotency_key is not valid UTF-8",
    });
    const grpcWeb = await grpcCall(gateway, submitPath, submitWithKey([0xfe]), "application/grpc-web+proto");
    expect(grpcWeb).toMatchObject({
      code: "3",
      message: "parse binary: string field taskwire.v1.Task.idempotency_key is not valid UTF-8",
    });
  });

  it("answers a malformed binary body with INVALID_ARGUMENT, not INTERNAL, on every protocol, compressed or not", async () => {
    const whole = submitWithKey([0x41]);
    // Cut inside the Task: its length claims bytes that never come.
    const truncated = whole.subarray(0, whole.length - 3);
    expect(await connectCall(gateway, submitPath, truncated)).toMatchObject({
      code: "invalid_argument",
      message: "parse binary: premature EOF",
    });
    expect(await grpcCall(gateway, submitPath, truncated)).toMatchObject({
      code: "3",
      message: "parse binary: premature EOF",
    });
    // gRPC-Web, and compressed bodies on every protocol.
    const prematureEof = { code: "3", message: "parse binary: premature EOF" };
    expect(await grpcCall(gateway, submitPath, truncated, "application/grpc-web+proto")).toMatchObject(prematureEof);
    expect(await grpcCall(gateway, submitPath, truncated, "application/grpc", "gzip")).toMatchObject(prematureEof);
    expect(await grpcCall(gateway, submitPath, truncated, "application/grpc-web", "br")).toMatchObject(prematureEof);
    expect(await connectCall(gateway, submitPath, truncated, "application/proto", "gzip")).toMatchObject({
      code: "invalid_argument",
      message: "parse binary: premature EOF",
    });
    // Field 1 (task) sent as a varint: a wrong wire type for a message.
    const wrongWireType = await connectCall(gateway, submitPath, Uint8Array.of(0x08, 0x01));
    expect(wrongWireType.code).toBe("invalid_argument");
    expect(wrongWireType.message).toMatch(/^parse binary: /);
  });

  it("refuses raw bytes that are not UTF-8 in a JSON body, instead of reading them as U+FFFD", async () => {
    const json = Buffer.concat([
      Buffer.from('{"task":{"workerType":"hasher","method":"Digest","idempotencyKey":"k'),
      Buffer.from([0xff]),
      Buffer.from('","payload":{"@type":"type.googleapis.com/example.v1.DigestRequest","text":"same"}}}'),
    ]);
    const answer = await connectCall(gateway, submitPath, json, "application/json");
    expect(answer.code).toBe("invalid_argument");
    expect(answer.message).toMatch(/not valid for encoding utf-8/i);
  });
});

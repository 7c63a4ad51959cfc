/**
 * Calls the Taskwire gateway from TypeScript with @grpc/grpc-js and the ts-proto code
 * in examples/grpc-js/gen (plain interfaces and grpc-js service definitions). It runs one
 * hasher/Digest task through TaskService, then the same request through the typed
 * route example.v1.HashService/Digest, then submits a payload of the wrong type, and
 * prints one JSON object per line for each.
 *
 * The gateway's address is TASKWIRE_GATEWAY, host:port (default 127.0.0.1:8080):
 *
 *   TASKWIRE_GATEWAY=127.0.0.1:8080 node examples/grpc-js/client.ts
 *
 * A gateway with authentication takes the credential in TASKWIRE_TOKEN (an API key or a
 * JWT), sent with every call as "authorization: Bearer <token>". A gateway serving TLS is
 * reached with the CA (PEM file) named by TASKWIRE_CA.
 */
import { readFileSync } from "node:fs";
import {
  type CallOptions,
  type ClientUnaryCall,
  credentials,
  Metadata,
  type ServiceError,
  status as Status,
} from "@grpc/grpc-js";
import { DigestRequest, DigestResponse, HashServiceClient } from "./gen/example/v1/hash.ts";
import { GenerateRequest } from "./gen/example/v1/report.ts";
import type { Any } from "./gen/google/protobuf/any.ts";
import { TaskState, taskStateToJSON } from "./gen/taskwire/v1/task.ts";
import { SubmitRequest, TaskServiceClient, WaitTaskRequest } from "./gen/taskwire/v1/task_service.ts";

/** How long each call may take; WaitTask and the typed route wait for the task. */
const timeoutMs = 30_000;

/** A grpc-js unary method, in the form of its last overload. */
type UnaryMethod<Request, Response> = (
  request: Request,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Response) => void,
) => ClientUnaryCall;

/** The call's metadata: the credential of TASKWIRE_TOKEN, if any. */
function credential(): Metadata {
  const metadata = new Metadata();
  const token = process.env.TASKWIRE_TOKEN;
  if (token) metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}

/** Calls a unary method (bound to its client) and resolves with the response. */
function call<Request, Response>(method: UnaryMethod<Request, Response>, request: Request): Promise<Response> {
  return new Promise((resolve, reject) =>
    method(request, credential(), { deadline: Date.now() + timeoutMs }, (error, response) =>
      error ? reject(error) : resolve(response),
    ),
  );
}

/** An Any holding `value`, the binary encoding of the message named `typeName`. */
const pack = (typeName: string, value: Uint8Array): Any => ({
  typeUrl: `type.googleapis.com/${typeName}`,
  value: Buffer.from(value), // ts-proto with env=node types bytes as Buffer
});

const emit = (line: Record<string, unknown>) => console.log(JSON.stringify(line));

const address = process.env.TASKWIRE_GATEWAY || "127.0.0.1:8080";
// Without TLS the gateway serves gRPC over plaintext HTTP/2 (h2c) on its one port.
const ca = process.env.TASKWIRE_CA;
const channel = ca ? credentials.createSsl(readFileSync(ca)) : credentials.createInsecure();
const tasks = new TaskServiceClient(address, channel);
const hashes = new HashServiceClient(address, channel);
const request = DigestRequest.fromPartial({ text: "hello", rounds: 3 });
const hashTask = (payload: Any): SubmitRequest =>
  SubmitRequest.fromPartial({ task: { workerType: "hasher", method: "Digest", payload } });

try {
  // (a) TaskService: submit the request packed in an Any, wait for the terminal
  // status, and decode the DigestResponse from its result.
  const payload = pack("example.v1.DigestRequest", DigestRequest.encode(request).finish());
  const { taskId } = await call(tasks.submit.bind(tasks), hashTask(payload));
  const { status } = await call(tasks.waitTask.bind(tasks), WaitTaskRequest.fromPartial({ taskId }));
  if (status?.state !== TaskState.TASK_STATE_SUCCEEDED) {
    throw new Error(`task ${taskId} ended ${taskStateToJSON(status?.state ?? 0)}: ${status?.error?.message}`);
  }
  if (status.result?.typeUrl !== "type.googleapis.com/example.v1.DigestResponse") {
    throw new Error(`task ${taskId}: the result is a ${status.result?.typeUrl}`);
  }
  const result = DigestResponse.decode(status.result.value);
  emit({ via: "task_service", task_id: taskId, hex: result.hex, rounds: result.rounds });

  // (b) The typed route: the task service's own rpc, answered with the task's result.
  const typed = await call(hashes.digest.bind(hashes), request);
  emit({ via: "typed_route", hex: typed.hex, rounds: typed.rounds });

  // (c) A payload of the wrong type for hasher/Digest: the gateway refuses it.
  const wrong = GenerateRequest.fromPartial({ title: "x", sections: 1 });
  const refused = await call(
    tasks.submit.bind(tasks),
    hashTask(pack("example.v1.GenerateRequest", GenerateRequest.encode(wrong).finish())),
  ).then(
    () => undefined,
    (error: ServiceError) => error,
  );
  if (!refused) throw new Error("the wrong payload was accepted");
  emit({ via: "wrong_payload", code: Status[refused.code], message: refused.details });
} finally {
  tasks.close();
  hashes.close();
}

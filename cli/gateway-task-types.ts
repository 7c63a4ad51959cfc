import {
  create,
  createFileRegistry,
  type DescMessage,
  fromBinary,
  getOption,
  hasOption,
  type Registry,
} from "@bufbuild/protobuf";
import { type FileDescriptorProto, FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import {
  ServerReflection,
  type ServerReflectionRequest,
  ServerReflectionRequestSchema,
  type ServerReflectionResponse,
} from "../gen/grpc/reflection/v1/reflection_pb.ts";
import { worker } from "../gen/taskwire/v1/options_pb.ts";
import type { TaskMethod } from "../sdk/core/index.ts";
import { createGatewayTransport } from "../sdk/gateway-client/index.ts";

/** The task types a command may name, and the messages their JSON needs. */
export interface TaskTypes {
  /** The method of "<worker type>/<Method>"; throws naming the ones there are. */
  resolve(target: string): TaskMethod;
  /** Every message type known, to print payloads and results packed in an Any. */
  readonly registry: Registry;
}

/**
 * Learns the task types a gateway serves from its gRPC reflection: the services
 * marked `(taskwire.v1.worker)`, with their files and imports. The gateway
 * applies each method's defaults itself, so none are needed here.
 */
export async function taskTypesOfGateway(gateway: string, token?: string, ca?: Buffer): Promise<TaskTypes> {
  // The transport the SDK's client speaks to a gateway (createClient's), in gRPC as grpcurl.
  const transport = createGatewayTransport(gateway, {
    protocol: "grpc",
    ...(token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } }),
    ...(ca === undefined ? {} : { tls: { ca } }),
  });
  const client = createClient(ServerReflection, oneMessageStreams(transport));
  const ask = async (request: ServerReflectionRequest["messageRequest"]) => {
    const responses: ServerReflectionResponse[] = [];
    const requests = (async function* () {
      yield create(ServerReflectionRequestSchema, { messageRequest: request });
    })();
    for await (const response of client.serverReflectionInfo(requests, { timeoutMs: 15_000 })) {
      responses.push(response);
    }
    const answer = responses[0]?.messageResponse;
    if (answer?.case === "errorResponse") throw new Error(`reflection: ${answer.value.errorMessage}`);
    return answer;
  };
  let services: string[];
  const files = new Map<string, FileDescriptorProto>();
  try {
    const listed = await ask({ case: "listServices", value: "" });
    services = listed?.case === "listServicesResponse" ? listed.value.service.map((s) => s.name) : [];
    for (const service of services) {
      const answer = await ask({ case: "fileContainingSymbol", value: service });
      if (answer?.case !== "fileDescriptorResponse") continue;
      for (const bytes of answer.value.fileDescriptorProto) {
        const file = fromBinary(FileDescriptorProtoSchema, bytes);
        files.set(file.name, file);
      }
    }
  } catch (error) {
    const reason =
      error instanceof ConnectError && error.code === Code.Unimplemented
        ? "it serves no gRPC reflection (createGateway's reflection: false); without --gateway, the generated modules of taskwire.yaml name the task types"
        : error instanceof ConnectError
          ? error.rawMessage
          : (error as Error).message;
    throw new Error(`cannot ask the gateway at ${gateway} for its task types: ${reason}`, { cause: error });
  } finally {
    transport.close();
  }
  // A registry takes a set's files in order, each after the files it imports.
  const ordered: FileDescriptorProto[] = [];
  const placed = new Set<string>();
  const place = (file: FileDescriptorProto) => {
    if (placed.has(file.name)) return;
    placed.add(file.name);
    for (const name of file.dependency) {
      const dependency = files.get(name);
      if (dependency) place(dependency);
    }
    ordered.push(file);
  };
  for (const file of files.values()) place(file);
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
  const methods = new Map<string, TaskMethod>();
  for (const name of services) {
    const service = registry.getService(name);
    if (!service || !hasOption(service, worker)) continue;
    const workerType = getOption(service, worker).type;
    for (const method of service.methods) {
      methods.set(`${workerType}/${method.name}`, {
        workerType,
        name: method.name,
        input: method.input as DescMessage,
        output: method.output as DescMessage,
        defaults: {},
      });
    }
  }
  return {
    registry,
    resolve(target) {
      const method = methods.get(target);
      if (method) return method;
      const served = [...methods.keys()].sort().join(", ") || "none";
      throw new Error(`the gateway at ${gateway} serves no task "${target}"; the tasks it serves: ${served}`);
    },
  };
}

/**
 * The SDK's gateway transport speaks unary calls and server streams. A bidi call
 * that sends one message and then ends its side is, on the wire, a server stream:
 * reflection is asked so, one question per call.
 */
function oneMessageStreams(transport: Transport): Transport {
  return {
    unary: (...args) => transport.unary(...args),
    stream: (method, ...rest) =>
      transport.stream(
        method.methodKind === "bidi_streaming" ? { ...method, methodKind: "server_streaming" } : method,
        ...rest,
      ),
  };
}

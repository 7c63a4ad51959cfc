import {
  clone,
  create,
  type DescExtension,
  type DescFile,
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageInitShape,
  toBinary,
} from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { type FileDescriptorProto, FileDescriptorProtoSchema, SourceCodeInfoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import * as v1 from "../gen/grpc/reflection/v1/reflection_pb.ts";
import { file_grpc_reflection_v1_reflection_sourceInfo } from "../gen/grpc/reflection/v1/reflection_taskwire.ts";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.ts";
import { file_grpc_reflection_v1alpha_reflection_sourceInfo } from "../gen/grpc/reflection/v1alpha/reflection_taskwire.ts";
import { file_taskwire_v1_gateway_service } from "../gen/taskwire/v1/gateway_service_pb.ts";
import { file_taskwire_v1_gateway_service_sourceInfo } from "../gen/taskwire/v1/gateway_service_taskwire.ts";
import { file_taskwire_v1_options } from "../gen/taskwire/v1/options_pb.ts";
import { file_taskwire_v1_options_sourceInfo } from "../gen/taskwire/v1/options_taskwire.ts";
import { file_taskwire_v1_queue_service } from "../gen/taskwire/v1/queue_service_pb.ts";
import { file_taskwire_v1_queue_service_sourceInfo } from "../gen/taskwire/v1/queue_service_taskwire.ts";
import { file_taskwire_v1_task } from "../gen/taskwire/v1/task_pb.ts";
import { file_taskwire_v1_task_service } from "../gen/taskwire/v1/task_service_pb.ts";
import { file_taskwire_v1_task_service_sourceInfo } from "../gen/taskwire/v1/task_service_taskwire.ts";
import { file_taskwire_v1_task_sourceInfo } from "../gen/taskwire/v1/task_taskwire.ts";
import { file_taskwire_v1_worker_service } from "../gen/taskwire/v1/worker_service_pb.ts";
import { file_taskwire_v1_worker_service_sourceInfo } from "../gen/taskwire/v1/worker_service_taskwire.ts";
import { sourceInfoOf } from "../sdk/core/index.ts";

type Request = v1.ServerReflectionRequest;
type Answer = MessageInitShape<typeof v1.ServerReflectionResponseSchema>["messageResponse"];

/**
 * Serves gRPC server reflection, `grpc.reflection.v1` and the older
 * `grpc.reflection.v1alpha` that some tools still call first, so grpcurl, Postman
 * and grpcui can list and describe the gateway with no proto files at hand.
 *
 * It describes every service the router holds once the first request comes
 * (register it with the others, in any order), itself included, each with its
 * file and that file's transitive imports. Files carry their comments where their
 * generated code does: Taskwire's own, and those of task services whose generated
 * definitions were loaded.
 */
export function reflectionRoutes(): (router: ConnectRouter) => void {
  return (router) => {
    let index: ReflectionIndex | undefined;
    const answer = (request: Request) => {
      index ??= new ReflectionIndex(router.handlers.map((handler) => handler.service));
      return index.answer(request);
    };
    router.service(v1.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) yield answer(request);
      },
    });
    // The same messages under an older package name: bridge through the wire format.
    router.service(v1alpha.ServerReflection, {
      async *serverReflectionInfo(requests) {
        for await (const request of requests) {
          const response = answer(
            fromBinary(v1.ServerReflectionRequestSchema, toBinary(v1alpha.ServerReflectionRequestSchema, request)),
          );
          yield fromBinary(
            v1alpha.ServerReflectionResponseSchema,
            toBinary(v1.ServerReflectionResponseSchema, response),
          );
        }
      },
    });
  };
}

/**
 * The comments of Taskwire's own files, which protoc-gen-taskwire writes beside them
 * (`source_info=all` in buf.gen.yaml). Those of task services' files come with their
 * definitions ({@link sourceInfoOf}).
 */
const protocolSourceInfo = new Map<DescFile, string>([
  [v1.file_grpc_reflection_v1_reflection, file_grpc_reflection_v1_reflection_sourceInfo],
  [v1alpha.file_grpc_reflection_v1alpha_reflection, file_grpc_reflection_v1alpha_reflection_sourceInfo],
  [file_taskwire_v1_options, file_taskwire_v1_options_sourceInfo],
  [file_taskwire_v1_queue_service, file_taskwire_v1_queue_service_sourceInfo],
  [file_taskwire_v1_task, file_taskwire_v1_task_sourceInfo],
  [file_taskwire_v1_task_service, file_taskwire_v1_task_service_sourceInfo],
  [file_taskwire_v1_worker_service, file_taskwire_v1_worker_service_sourceInfo],
  [file_taskwire_v1_gateway_service, file_taskwire_v1_gateway_service_sourceInfo],
]);

/**
 * The file's descriptor as generated code embeds it, with its comments put back
 * where its generated code carries them (grpcurl's describe, a console's help).
 */
export function describedFile(file: DescFile): FileDescriptorProto {
  const sourceInfo = protocolSourceInfo.get(file) ?? sourceInfoOf(file);
  if (!sourceInfo) return file.proto;
  const proto = clone(FileDescriptorProtoSchema, file.proto);
  proto.sourceCodeInfo = fromBinary(SourceCodeInfoSchema, base64Decode(sourceInfo));
  return proto;
}

/** What reflection can tell of a fixed set of services. */
class ReflectionIndex {
  private readonly services: string[];
  private readonly files = new Map<string, DescFile>();
  /** Fully-qualified name of every message, enum, extension, service and method → its file. */
  private readonly symbols = new Map<string, DescFile>();
  /** Extended message → extension number → the extension. */
  private readonly extensions = new Map<string, Map<number, DescExtension>>();
  private readonly encoded = new Map<string, Uint8Array>();

  constructor(services: DescService[]) {
    this.services = [...new Set(services.map((service) => service.typeName))].sort();
    for (const service of services) this.addFile(service.file);
  }

  answer(request: Request): v1.ServerReflectionResponse {
    return create(v1.ServerReflectionResponseSchema, {
      validHost: request.host,
      originalRequest: request,
      messageResponse: this.messageResponse(request),
    });
  }

  private messageResponse(request: Request): NonNullable<Answer> {
    const { messageRequest } = request;
    switch (messageRequest.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: { service: this.services.map((name) => ({ name })) },
        };
      case "fileByFilename": {
        const file = this.files.get(messageRequest.value);
        return file ? this.withImports(file) : notFound(`file "${messageRequest.value}" is not known`);
      }
      case "fileContainingSymbol": {
        const file = this.symbols.get(messageRequest.value);
        return file ? this.withImports(file) : notFound(`symbol "${messageRequest.value}" is not known`);
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = messageRequest.value;
        const extension = this.extensions.get(containingType)?.get(extensionNumber);
        return extension
          ? this.withImports(extension.file)
          : notFound(`no extension ${extensionNumber} of "${containingType}" is known`);
      }
      case "allExtensionNumbersOfType": {
        const typeName = messageRequest.value;
        if (!this.symbols.has(typeName)) return notFound(`type "${typeName}" is not known`);
        return {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: typeName, extensionNumber: [...(this.extensions.get(typeName)?.keys() ?? [])] },
        };
      }
      default:
        return {
          case: "errorResponse",
          value: { errorCode: Code.InvalidArgument, errorMessage: "the request names no question" },
        };
    }
  }

  /** The file, then every file it imports, directly or not. */
  private withImports(file: DescFile): NonNullable<Answer> {
    const files: DescFile[] = [];
    const seen = new Set<string>();
    const visit = (f: DescFile) => {
      if (seen.has(f.name)) return;
      seen.add(f.name);
      files.push(f);
      for (const dependency of f.dependencies) visit(dependency);
    };
    visit(file);
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: files.map((f) => this.encode(f)) } };
  }

  /**
   * The file's descriptor as generated code embeds it, with its comments put back
   * where its generated code carries them, so that grpcurl's describe shows them.
   */
  private encode(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file.proto.name);
    if (!bytes) {
      bytes = toBinary(FileDescriptorProtoSchema, describedFile(file));
      this.encoded.set(file.proto.name, bytes);
    }
    return bytes;
  }

  private addFile(file: DescFile): void {
    if (this.files.has(file.proto.name)) return;
    this.files.set(file.proto.name, file);
    for (const dependency of file.dependencies) this.addFile(dependency);
    for (const service of file.services) {
      this.symbols.set(service.typeName, file);
      for (const method of service.methods) this.symbols.set(`${service.typeName}.${method.name}`, file);
    }
    for (const e of file.enums) this.symbols.set(e.typeName, file);
    for (const extension of file.extensions) this.addExtension(extension);
    for (const message of file.messages) this.addMessage(message);
  }

  private addMessage(message: DescMessage): void {
    this.symbols.set(message.typeName, message.file);
    for (const e of message.nestedEnums) this.symbols.set(e.typeName, message.file);
    for (const extension of message.nestedExtensions) this.addExtension(extension);
    for (const nested of message.nestedMessages) this.addMessage(nested);
  }

  private addExtension(extension: DescExtension): void {
    this.symbols.set(extension.typeName, extension.file);
    const byNumber = this.extensions.get(extension.extendee.typeName) ?? new Map<number, DescExtension>();
    byNumber.set(extension.number, extension);
    this.extensions.set(extension.extendee.typeName, byNumber);
  }
}

function notFound(errorMessage: string): NonNullable<Answer> {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage } };
}

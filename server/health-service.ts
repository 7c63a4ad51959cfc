import { create, createFileRegistry, type Message } from "@bufbuild/protobuf";
import type { GenEnum, GenMessage, GenService } from "@bufbuild/protobuf/codegenv2";
import { enumDesc, messageDesc, serviceDesc } from "@bufbuild/protobuf/codegenv2";
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";

// The standard gRPC health protocol (grpc/health/v1/health.proto), built in code
// because the repository's buf modules hold only Taskwire's own protos. The exports
// mirror what protoc-gen-es would generate, so the rest of the server uses them like
// any generated service. Only Check and Watch: List is a later addition to the
// protocol that probes such as grpc_health_probe and Kubernetes do not call.
const { STRING, ENUM } = FieldDescriptorProto_Type;
const { OPTIONAL } = FieldDescriptorProto_Label;
const request = ".grpc.health.v1.HealthCheckRequest";
const response = ".grpc.health.v1.HealthCheckResponse";

const file = createFileRegistry(
  create(FileDescriptorProtoSchema, {
    name: "grpc/health/v1/health.proto",
    package: "grpc.health.v1",
    syntax: "proto3",
    messageType: [
      {
        name: "HealthCheckRequest",
        field: [{ name: "service", jsonName: "service", number: 1, label: OPTIONAL, type: STRING }],
      },
      {
        name: "HealthCheckResponse",
        field: [
          {
            name: "status",
            jsonName: "status",
            number: 1,
            label: OPTIONAL,
            type: ENUM,
            typeName: `${response}.ServingStatus`,
          },
        ],
        enumType: [
          {
            name: "ServingStatus",
            value: [
              { name: "UNKNOWN", number: 0 },
              { name: "SERVING", number: 1 },
              { name: "NOT_SERVING", number: 2 },
              { name: "SERVICE_UNKNOWN", number: 3 },
            ],
          },
        ],
      },
    ],
    service: [
      {
        name: "Health",
        method: [
          { name: "Check", inputType: request, outputType: response },
          { name: "Watch", inputType: request, outputType: response, serverStreaming: true },
        ],
      },
    ],
  }),
  () => undefined,
).getFile("grpc/health/v1/health.proto");

if (file === undefined) throw new Error("grpc/health/v1/health.proto did not build");

/** Request of `grpc.health.v1.Health`: the service to ask about; empty for the whole server. */
export type HealthCheckRequest = Message<"grpc.health.v1.HealthCheckRequest"> & {
  /** A fully-qualified service name such as "taskwire.v1.TaskService", or "" for the server. */
  service: string;
};

/** Describes the message grpc.health.v1.HealthCheckRequest. */
export const HealthCheckRequestSchema: GenMessage<HealthCheckRequest> = messageDesc(file, 0);

/** Whether a service can take requests, as the gRPC health protocol states it. */
export const ServingStatus = {
  /** Not yet known. */
  UNKNOWN: 0,
  /** Ready for requests. */
  SERVING: 1,
  /** Up but refusing or failing requests (for example while the gateway shuts down). */
  NOT_SERVING: 2,
  /** Only in Watch: the service asked about is not served here. */
  SERVICE_UNKNOWN: 3,
} as const;
export type ServingStatus = (typeof ServingStatus)[keyof typeof ServingStatus];

/** Describes the enum grpc.health.v1.HealthCheckResponse.ServingStatus. */
export const ServingStatusSchema: GenEnum<ServingStatus> = enumDesc(file, 1, 0);

/** Response of `grpc.health.v1.Health`. */
export type HealthCheckResponse = Message<"grpc.health.v1.HealthCheckResponse"> & {
  /** The service's status. */
  status: ServingStatus;
};

/** Describes the message grpc.health.v1.HealthCheckResponse. */
export const HealthCheckResponseSchema: GenMessage<HealthCheckResponse> = messageDesc(file, 1);

/**
 * The gRPC health service, `grpc.health.v1.Health`, as used by grpc_health_probe,
 * Kubernetes gRPC probes and load balancers.
 */
export const HealthService: GenService<{
  /** The status now; NOT_FOUND for a service that is not served. */
  check: {
    /** One request, one answer. */
    methodKind: "unary";
    /** The service asked about ("" for the server as a whole). */
    input: typeof HealthCheckRequestSchema;
    /** Its serving status. */
    output: typeof HealthCheckResponseSchema;
  };
  /** The status now, then every change, until the caller hangs up. */
  watch: {
    /** One request, a stream of answers. */
    methodKind: "server_streaming";
    /** The service asked about ("" for the server as a whole). */
    input: typeof HealthCheckRequestSchema;
    /** Its serving status, at first and after each change. */
    output: typeof HealthCheckResponseSchema;
  };
}> = serviceDesc(file, 0);

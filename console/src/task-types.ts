import {
  create,
  createFileRegistry,
  type DescField,
  type DescMessage,
  type FileRegistry,
  getOption,
  type JsonValue,
  toJson,
} from "@bufbuild/protobuf";
import { type Any, anyUnpack, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { ListTaskTypesResponse } from "../../gen/taskwire/v1/gateway_service_pb.ts";
import { field as fieldOption } from "../../gen/taskwire/v1/options_pb.ts";

/** One kind of task: a method of a task service, with its request (the payload) and response (the result). */
export interface TaskKind {
  readonly workerType: string;
  readonly method: string;
  readonly request: DescMessage;
  readonly response: DescMessage;
}

/** The task types the gateway serves to the caller, with their schemas. */
export interface TaskTypes {
  /** Every message of their files, to read payloads and results. */
  readonly registry: FileRegistry;
  /** Every kind of task, by worker type and method. */
  readonly kinds: readonly TaskKind[];
  /** The worker types, sorted. */
  readonly workerTypes: readonly string[];
}

/** Builds {@link TaskTypes} from ListTaskTypes: a registry of the descriptors it sent, comments included. */
export function taskTypesOf(response: ListTaskTypesResponse): TaskTypes {
  const registry = createFileRegistry(response.files ?? create(FileDescriptorSetSchema));
  const kinds: TaskKind[] = [];
  for (const type of response.types) {
    for (const method of type.methods) {
      const request = registry.getMessage(method.requestType);
      const response = registry.getMessage(method.responseType);
      if (request && response) kinds.push({ workerType: type.workerType, method: method.name, request, response });
    }
  }
  kinds.sort((a, b) => a.workerType.localeCompare(b.workerType) || a.method.localeCompare(b.method));
  return { registry, kinds, workerTypes: [...new Set(kinds.map((k) => k.workerType))] };
}

/** The request fields of a worker type that ListTasks searches by (marked `(taskwire.v1.field).searchable`). */
export function searchableFields(types: TaskTypes, workerType: string): DescField[] {
  const found = new Map<string, DescField>();
  for (const kind of types.kinds) {
    if (kind.workerType !== workerType) continue;
    for (const field of kind.request.fields) if (getOption(field, fieldOption).searchable) found.set(field.name, field);
  }
  return [...found.values()];
}

/** Whether a request field must be set (`(taskwire.v1.field).required`). */
export function isRequired(field: DescField): boolean {
  return getOption(field, fieldOption).required;
}

/** A payload or result read from its Any: its type's name, and its JSON, or why it cannot be read. */
export type DecodedAny =
  | { readonly typeName: string; readonly json: JsonValue }
  | { readonly typeName: string; readonly problem: string };

/** Reads an Any as JSON with the registry's schemas. */
export function decodeAny(any: Any, registry: FileRegistry): DecodedAny {
  const typeName = any.typeUrl.slice(any.typeUrl.lastIndexOf("/") + 1);
  try {
    const message = anyUnpack(any, registry);
    const schema = registry.getMessage(typeName);
    if (!message || !schema) return { typeName, problem: `the gateway describes no message ${typeName}` };
    return { typeName, json: toJson(schema, message, { registry }) };
  } catch (error) {
    return { typeName, problem: `cannot read it as ${typeName}: ${(error as Error).message}` };
  }
}

/** The comment written above a field in its .proto file, if any. */
export function commentOf(field: DescField): string | undefined {
  const path = [...messagePath(field.parent), 2, field.parent.proto.field.indexOf(field.proto)];
  const location = field.parent.file.proto.sourceCodeInfo?.location.find(
    (l) => l.path.length === path.length && l.path.every((p, i) => p === path[i]),
  );
  const comment = location?.leadingComments.trim();
  return comment ? comment.replace(/\s*\n\s*/g, " ") : undefined;
}

/** A message's path in its file's source info: 4 (message_type) and its index, then 3 (nested_type) and its index, down. */
function messagePath(message: DescMessage): number[] {
  return message.parent
    ? [...messagePath(message.parent), 3, message.parent.proto.nestedType.indexOf(message.proto)]
    : [4, message.file.proto.messageType.indexOf(message.proto)];
}

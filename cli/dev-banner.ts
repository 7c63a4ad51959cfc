import { type DescMessage, getOption, ScalarType } from "@bufbuild/protobuf";
import { field as fieldOption } from "../gen/taskwire/v1/options_pb.ts";
import type { TaskServiceDefinition } from "../sdk/core/index.ts";

/**
 * What `taskwire dev` suggests once everything is ready: the configuration's
 * first task, submitted through the CLI and through curl with a sample request.
 * `cli` is how the user runs the command (`npx taskwire` in a project).
 */
export function devBanner(cli: string, gatewayUrl: string, service: TaskServiceDefinition | undefined): string[] {
  const method = service && Object.values(service.methods)[0];
  if (!service || !method) return [];
  const json = JSON.stringify(sampleRequest(method.input));
  return [
    "Try:",
    `  ${cli} submit ${service.workerType}/${method.name} --json '${json}' --wait`,
    `  curl -s ${gatewayUrl}/${service.service.typeName}/${method.name} -H 'content-type: application/json' -d '${json}'`,
  ];
}

const sixtyFourBit = new Set([
  ScalarType.INT64,
  ScalarType.UINT64,
  ScalarType.FIXED64,
  ScalarType.SFIXED64,
  ScalarType.SINT64,
]);

/**
 * A request with a sample value in each top-level scalar field marked
 * `(taskwire.v1.field).required`: "hello" for a string, 1 for a number, true for a bool.
 */
export function sampleRequest(schema: DescMessage): Record<string, unknown> {
  const sample: Record<string, unknown> = {};
  for (const field of schema.fields) {
    if (field.fieldKind !== "scalar" || !getOption(field, fieldOption).required) continue;
    if (field.scalar === ScalarType.STRING) sample[field.jsonName] = "hello";
    else if (field.scalar === ScalarType.BOOL) sample[field.jsonName] = true;
    else if (field.scalar === ScalarType.BYTES) sample[field.jsonName] = "aGVsbG8=";
    else sample[field.jsonName] = sixtyFourBit.has(field.scalar) ? "1" : 1;
  }
  return sample;
}

import type { DescMessage, Message } from "@bufbuild/protobuf";
import { getOption, hasOption } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { field as fieldOption } from "../gen/taskwire/v1/options_pb.js";

/**
 * The paths of fields marked `(taskwire.v1.field).required` that are not set,
 * nested messages included (e.g. `["text", "owner.name"]`).
 */
export function missingRequiredFields(schema: DescMessage, message: Message, prefix = ""): string[] {
  const missing: string[] = [];
  const r = reflect(schema, message);
  for (const field of schema.fields) {
    const path = `${prefix}${field.name}`;
    const required = hasOption(field, fieldOption) && getOption(field, fieldOption).required;
    const set = r.isSet(field);
    if (required && !set) missing.push(path);
    if (set && field.fieldKind === "message") {
      const value = r.get(field);
      missing.push(...missingRequiredFields(field.message, value.message, `${path}.`));
    }
  }
  return missing;
}

import { createHash } from "node:crypto";
import { type DescField, type DescMessage, getOption, hasOption, type Message, ScalarType } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { Code } from "@connectrpc/connect";
import { field as fieldOption } from "../../gen/taskwire/v1/options_pb.ts";
import { TaskError } from "./task-error.ts";

/**
 * Fields marked `(taskwire.v1.field).searchable`: ListTasks finds a task by
 * such a field's value through an index subject per value,
 * `taskwire.index.<type>.field.<name>.<hash>`. The subject carries a hash of
 * the value (22 base64url characters of its SHA-256), never the value itself.
 */

/** The searchable fields of a request type; computed once per type. */
export function searchableFields(schema: DescMessage): readonly DescField[] {
  let fields = cache.get(schema);
  if (!fields) {
    fields = schema.fields.filter(
      (field) =>
        hasOption(field, fieldOption) &&
        getOption(field, fieldOption).searchable &&
        searchableKind(field) === undefined,
    );
    cache.set(schema, fields);
  }
  return fields;
}

const cache = new WeakMap<DescMessage, readonly DescField[]>();

/** Why a field cannot be searchable, or undefined when it can: a singular string, integer, bool or enum. */
export function searchableKind(field: DescField): string | undefined {
  if (field.fieldKind === "enum") return undefined;
  if (field.fieldKind !== "scalar") return `it is a ${field.fieldKind} field`;
  if (field.scalar === ScalarType.BYTES || field.scalar === ScalarType.DOUBLE || field.scalar === ScalarType.FLOAT) {
    return `its type is ${ScalarType[field.scalar].toLowerCase()}`;
  }
  return undefined;
}

/** The index terms (`<name>.<hash>`) of a request's searchable fields that are set. */
export function searchTermsOf(schema: DescMessage, message: Message): string[] {
  const fields = searchableFields(schema);
  if (fields.length === 0) return [];
  const r = reflect(schema, message);
  const terms: string[] = [];
  for (const field of fields) {
    if (!r.isSet(field)) continue;
    const value = r.get(field);
    const text =
      field.fieldKind === "enum"
        ? (field.enum.values.find((v) => v.number === value)?.name ?? String(value))
        : String(value);
    terms.push(searchTerm(field.name, text));
  }
  return terms;
}

/**
 * A searched value in the form {@link searchTermsOf} hashes: a number in
 * plain decimal, "true" or "false", an enum value's name. Refuses, naming the
 * field, a value its type cannot hold.
 */
export function searchText(field: DescField, value: string): string {
  const refuse = (what: string) =>
    new TaskError(`field_value "${value}" is not ${what}, as field ${field.name} needs`, Code.InvalidArgument);
  if (field.fieldKind === "enum") {
    if (!field.enum.values.some((v) => v.name === value)) {
      throw refuse(`one of ${field.enum.values.map((v) => v.name).join(", ")}`);
    }
    return value;
  }
  if (field.fieldKind === "scalar" && field.scalar === ScalarType.BOOL) {
    if (value !== "true" && value !== "false") throw refuse(`"true" or "false"`);
    return value;
  }
  if (field.fieldKind === "scalar" && field.scalar !== ScalarType.STRING) {
    if (!/^-?\d+$/.test(value)) throw refuse("an integer");
    return String(BigInt(value));
  }
  return value;
}

/** The index term of a field's value given as text (an enum by its value's name). */
export function searchTerm(fieldName: string, text: string): string {
  return `${fieldName}.${createHash("sha256").update(text).digest("base64url").slice(0, 22)}`;
}

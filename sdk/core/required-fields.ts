import type { DescField, DescMessage, Message } from "@bufbuild/protobuf";
import { getOption, hasOption } from "@bufbuild/protobuf";
import { reflect } from "@bufbuild/protobuf/reflect";
import { field as fieldOption } from "../../gen/taskwire/v1/options_pb.ts";

/**
 * The paths of fields marked `(taskwire.v1.field).required` that are not set,
 * nested messages included (e.g. `["text", "owner.name"]`).
 */
export function missingRequiredFields(schema: DescMessage, message: Message, prefix = ""): string[] {
  const plan = planOf(schema);
  if (!plan.checked) return []; // no required field in this type or any it holds: nothing to look at
  const missing: string[] = [];
  const r = reflect(schema, message);
  for (const field of schema.fields) {
    const path = `${prefix}${field.name}`;
    const set = r.isSet(field);
    if (plan.required.has(field) && !set) missing.push(path);
    if (set && field.fieldKind === "message") {
      const value = r.get(field);
      missing.push(...missingRequiredFields(field.message, value.message, `${path}.`));
    }
  }
  return missing;
}

interface RequiredPlan {
  /** The fields of the type marked required. */
  readonly required: ReadonlySet<DescField>;
  /** Whether any type reachable through singular message fields (this one included) has one. */
  readonly checked: boolean;
}

/** Computed once per type: most task types have no required field, and their messages are not walked at all. */
const plans = new WeakMap<DescMessage, RequiredPlan>();

function planOf(schema: DescMessage): RequiredPlan {
  let plan = plans.get(schema);
  if (!plan) {
    plan = { required: requiredOf(schema), checked: reachable(schema).some((type) => requiredOf(type).size > 0) };
    plans.set(schema, plan);
  }
  return plan;
}

function requiredOf(schema: DescMessage): Set<DescField> {
  return new Set(schema.fields.filter((f) => hasOption(f, fieldOption) && getOption(f, fieldOption).required));
}

/** The type and every type reachable from it through singular message fields (the ones walked above). */
function reachable(schema: DescMessage): DescMessage[] {
  const seen = new Set([schema]);
  for (const type of seen) {
    for (const field of type.fields) if (field.fieldKind === "message") seen.add(field.message);
  }
  return [...seen];
}

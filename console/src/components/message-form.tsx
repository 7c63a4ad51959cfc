import { type DescField, type DescMessage, type JsonObject, type JsonValue, ScalarType } from "@bufbuild/protobuf";
import { commentOf, isRequired } from "../task-types.ts";

/** A form's values as typed, by field (JSON name): text, a checkbox's state, or a nested message's values. */
export type FormValues = { readonly [jsonName: string]: string | boolean | FormValues };

/** Nested messages deeper than this are left to the JSON editor. */
const maxDepth = 3;

const wellKnown = { timestamp: "google.protobuf.Timestamp", duration: "google.protobuf.Duration" };

/** 64-bit integers: JSON carries them as strings. */
const wide = new Set([ScalarType.INT64, ScalarType.UINT64, ScalarType.SINT64, ScalarType.FIXED64, ScalarType.SFIXED64]);

/** Whether the form can edit a field: scalars, enums, lists of them, timestamps, durations and nested messages. */
export function formEdits(field: DescField, depth = 0): boolean {
  switch (field.fieldKind) {
    case "scalar":
    case "enum":
      return true;
    case "list":
      return field.listKind !== "message";
    case "message": {
      const name = field.message.typeName;
      if (name === wellKnown.timestamp || name === wellKnown.duration) return true;
      return !name.startsWith("google.protobuf.") && depth < maxDepth;
    }
    default:
      return false;
  }
}

/**
 * The fields of a request message as form inputs, each labelled with its name
 * and the comment above it in the .proto file: text and number inputs,
 * checkboxes, selects for enums, one value per line for lists, and a fieldset
 * per nested message. Fields the form cannot edit (maps, lists of messages)
 * are named, to be set in the JSON editor.
 */
export function MessageForm({
  schema,
  values,
  onChange,
  idPrefix,
  depth = 0,
}: {
  readonly schema: DescMessage;
  readonly values: FormValues;
  readonly onChange: (values: FormValues) => void;
  readonly idPrefix: string;
  readonly depth?: number;
}) {
  const set = (field: DescField, value: string | boolean | FormValues) =>
    onChange({ ...values, [field.jsonName]: value });
  return (
    <div class="message-form">
      {schema.fields.map((field) => {
        const id = `${idPrefix}-${field.jsonName}`;
        const comment = commentOf(field);
        const hint = comment ? <small id={`${id}-hint`}>{comment}</small> : null;
        const described = comment ? `${id}-hint` : undefined;
        const label = (
          <label for={id}>
            {field.name}
            {isRequired(field) ? <span class="required"> (required)</span> : null}
          </label>
        );
        if (!formEdits(field, depth)) {
          return (
            <p key={field.name} class="field unsupported">
              <span>{field.name}</span> <small>set it in the JSON editor</small>
            </p>
          );
        }
        if (field.fieldKind === "message" && !isWellKnown(field)) {
          const nested = values[field.jsonName];
          return (
            <fieldset key={field.name} class="nested">
              <legend>{field.name}</legend>
              {hint}
              <MessageForm
                schema={field.message}
                values={typeof nested === "object" ? nested : {}}
                onChange={(next) => set(field, next)}
                idPrefix={id}
                depth={depth + 1}
              />
            </fieldset>
          );
        }
        const raw = values[field.jsonName];
        if (field.fieldKind === "scalar" && field.scalar === ScalarType.BOOL) {
          return (
            <div key={field.name} class="field checkbox">
              <input
                id={id}
                type="checkbox"
                checked={raw === true}
                aria-describedby={described}
                onChange={(event) => set(field, (event.currentTarget as HTMLInputElement).checked)}
              />
              {label}
              {hint}
            </div>
          );
        }
        const text = typeof raw === "string" ? raw : "";
        const onText = (event: Event) => set(field, (event.currentTarget as HTMLInputElement).value);
        return (
          <div key={field.name} class="field">
            {label}
            {inputFor(field, id, text, onText, described)}
            {hint}
          </div>
        );
      })}
    </div>
  );
}

function isWellKnown(field: DescField): boolean {
  return field.fieldKind === "message" && Object.values(wellKnown).includes(field.message.typeName);
}

/** The input that edits a field as text. */
function inputFor(field: DescField, id: string, text: string, onText: (event: Event) => void, described?: string) {
  if (field.fieldKind === "enum") {
    return (
      <select id={id} value={text} onChange={onText} aria-describedby={described}>
        <option value="">(unset)</option>
        {field.enum.values.map((v) => (
          <option key={v.name} value={v.name}>
            {v.name}
          </option>
        ))}
      </select>
    );
  }
  const common = { id, value: text, onInput: onText, "aria-describedby": described };
  if (field.fieldKind === "list") {
    return <textarea {...common} rows={3} placeholder="one value per line" />;
  }
  if (field.fieldKind === "message") {
    return field.message.typeName === wellKnown.timestamp ? (
      <input {...common} type="datetime-local" step="1" />
    ) : (
      <input {...common} type="text" inputMode="decimal" placeholder="seconds, e.g. 1.5" />
    );
  }
  if (field.fieldKind !== "scalar") return null;
  if (field.scalar === ScalarType.STRING) return <input {...common} type="text" />;
  if (field.scalar === ScalarType.BYTES) return <input {...common} type="text" placeholder="base64" />;
  if (wide.has(field.scalar)) return <input {...common} type="text" inputMode="numeric" />;
  return <input {...common} type="number" step="any" />;
}

/**
 * The request's Protobuf JSON from the form's values; fields left empty are
 * left out. Text that is no number stays text, for the gateway's schema check
 * to name the field.
 */
export function formToJson(schema: DescMessage, values: FormValues): JsonObject {
  const json: Record<string, JsonValue> = {};
  for (const field of schema.fields) {
    const raw = values[field.jsonName];
    if (raw === undefined || raw === "" || raw === false) continue;
    if (typeof raw === "object") {
      if (field.fieldKind !== "message") continue;
      const nested = formToJson(field.message, raw);
      if (Object.keys(nested).length > 0) json[field.jsonName] = nested;
    } else if (raw === true) {
      json[field.jsonName] = true;
    } else if (field.fieldKind === "list") {
      const items = raw
        .split("\n")
        .map((line) => line.trim())
        .filter(Boolean);
      json[field.jsonName] = field.listKind === "scalar" ? items.map((item) => scalarJson(field.scalar, item)) : items;
    } else if (field.fieldKind === "scalar") {
      json[field.jsonName] = scalarJson(field.scalar, raw);
    } else if (field.fieldKind === "message") {
      json[field.jsonName] =
        field.message.typeName === wellKnown.timestamp ? new Date(raw).toISOString() : `${raw.trim()}s`;
    } else {
      json[field.jsonName] = raw;
    }
  }
  return json;
}

function scalarJson(scalar: ScalarType, text: string): JsonValue {
  if (scalar === ScalarType.BOOL && (text === "true" || text === "false")) return text === "true";
  if (scalar === ScalarType.STRING || scalar === ScalarType.BYTES || wide.has(scalar)) return text;
  const number = Number(text);
  return text.trim() !== "" && Number.isFinite(number) ? number : text;
}

/**
 * The form's values for a request's JSON, and the fields the form cannot show
 * (then the JSON editor keeps them).
 */
export function jsonToForm(
  schema: DescMessage,
  json: JsonValue,
  depth = 0,
): { values: FormValues; unsupported: string[] } {
  const values: Record<string, string | boolean | FormValues> = {};
  const unsupported: string[] = [];
  if (json === null || typeof json !== "object" || Array.isArray(json)) return { values, unsupported };
  for (const field of schema.fields) {
    const value = json[field.jsonName] ?? json[field.name];
    if (value === undefined || value === null) continue;
    if (!formEdits(field, depth)) {
      unsupported.push(field.name);
    } else if (field.fieldKind === "message" && !isWellKnown(field)) {
      const nested = jsonToForm(field.message, value, depth + 1);
      values[field.jsonName] = nested.values;
      unsupported.push(...nested.unsupported.map((name) => `${field.name}.${name}`));
    } else if (typeof value === "boolean") {
      values[field.jsonName] = value;
    } else if (Array.isArray(value)) {
      values[field.jsonName] = value.map((item) => enumName(field, item)).join("\n");
    } else if (field.fieldKind === "message" && field.message.typeName === wellKnown.timestamp) {
      values[field.jsonName] = localDateTime(new Date(String(value)));
    } else if (field.fieldKind === "message") {
      values[field.jsonName] = String(value).replace(/s$/, "");
    } else {
      values[field.jsonName] = enumName(field, value);
    }
  }
  return { values, unsupported };
}

/** A JSON value as the form's text: an enum's number as its value's name, anything else as it is written. */
function enumName(field: DescField, value: JsonValue): string {
  const values =
    field.fieldKind === "enum" || (field.fieldKind === "list" && field.listKind === "enum") ? field.enum.values : [];
  return values.find((v) => v.number === value)?.name ?? String(value);
}

/** A date as a datetime-local input's value, in the reader's time zone. */
function localDateTime(date: Date): string {
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 19);
}

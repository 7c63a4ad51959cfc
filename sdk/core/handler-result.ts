import type { Message, MessageInitShape } from "@bufbuild/protobuf";
import type { GenMessage } from "@bufbuild/protobuf/codegenv2";

/**
 * What a handler returns for the result message `T`: the message itself (made with
 * `create()`), or an object with any of its fields. It accepts exactly what
 * protobuf-es' `MessageInitShape` accepts, and the generated handler interfaces
 * declare their results with it (`Promise<HandlerResult<DigestResponse>>`).
 *
 * `MessageInitShape` is a union too, but tsc explains a wrong result such as
 * `{ hex: 5 }` with its message member: "Property '$typeName' is missing". With this
 * type it explains it with {@link ResultFields} and names the field: "Types of
 * property 'hex' are incompatible. Type 'number' is not assignable to type 'string'."
 */
export type HandlerResult<T extends Message> = ResultMessage<T> | ResultFields<T>;

/** The result message itself, as a plain object type: a message made with `create()`. */
export type ResultMessage<T extends Message> = { [K in keyof T]: T[K] };

/**
 * An object with any of the result message's fields, as protobuf-es'
 * `MessageInitShape` takes them (nested messages as objects or messages). The
 * intersection, written second, is what makes tsc explain a wrong result with this
 * member rather than with {@link ResultMessage}: of two members that share the
 * result's keys, it picks the one it orders last, and TypeScript 7 orders
 * intersections after plain object types (TypeScript 6, in the order it made them).
 */
export type ResultFields<T extends Message> = Exclude<MessageInitShape<GenMessage<T>>, T> & {
  /** Absent: an object with a type name is a message. */
  readonly $typeName?: never;
};

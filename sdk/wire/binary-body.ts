import { create, type DescMessage, isMessage, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodeMessage, encodeMessage } from "./wire-codec.ts";

/**
 * A message of a Connect or gRPC call in binary Protobuf, with the compiled
 * codec of `wire-codec.ts`: a message, or the init shape a caller or an
 * implementation may give instead, encoded as connect serializes it.
 */
export function encodeBody<Desc extends DescMessage>(schema: Desc, value: MessageInitShape<Desc>): Uint8Array {
  return encodeMessage(schema, isMessage(value, schema) ? value : create(schema, value));
}

/**
 * A call's message decoded. Bytes that are no such message (truncated, a wrong
 * wire type, a string that is not UTF-8) fail with `code` and "parse binary: ..."
 * with the reason: a request's are the caller's error (INVALID_ARGUMENT, as
 * over JSON), a response's the server's (INTERNAL).
 */
export function decodeBody<Desc extends DescMessage>(
  schema: Desc,
  bytes: Uint8Array,
  code: Code.InvalidArgument | Code.Internal = Code.InvalidArgument,
): MessageShape<Desc> {
  try {
    return decodeMessage(schema, bytes);
  } catch (error) {
    throw new ConnectError(`parse binary: ${(error as Error).message}`, code);
  }
}

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

/** A call's message decoded; bytes that are no such message fail as connect's do (INTERNAL, "parse binary"). */
export function decodeBody<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  try {
    return decodeMessage(schema, bytes);
  } catch (error) {
    throw new ConnectError(`parse binary: ${(error as Error).message}`, Code.Internal);
  }
}

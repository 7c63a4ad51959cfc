import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";

/**
 * Re-tags fields of an encoded message: each field whose number is a key of
 * `numbers` is copied as it is on the wire under the mapped number; the other
 * fields are dropped. Two messages whose fields share types (TaskStatus and
 * TaskResult) then convert without a decode and an encode. Proto3 only (no
 * groups).
 */
export function renumberFields(bytes: Uint8Array, numbers: ReadonlyMap<number, number>): Uint8Array {
  const reader = new BinaryReader(bytes);
  const writer = new BinaryWriter();
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    const value = reader.pos;
    reader.skip(wireType, field);
    const to = numbers.get(field);
    if (to !== undefined) writer.tag(to, wireType).raw(bytes.subarray(value, reader.pos));
  }
  return writer.finish();
}

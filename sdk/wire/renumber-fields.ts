import { allocateBytes, varintSize } from "./wire-codec.ts";

/**
 * Re-tags fields of an encoded message: each field whose number is a key of
 * `numbers` is copied as it is on the wire under the mapped number; the other
 * fields are dropped. Two messages whose fields share types (TaskStatus and
 * TaskResult) then convert without a decode and an encode. One pass finds the
 * kept fields and the size, a second writes them into one buffer. Proto3 only
 * (no groups).
 */
export function renumberFields(bytes: Uint8Array, numbers: ReadonlyMap<number, number>): Uint8Array {
  // Kept fields as (new tag, value start, value end) triples.
  const kept: number[] = [];
  let size = 0;
  let pos = 0;
  const varint = () => {
    let value = 0;
    for (let shift = 1; ; shift *= 128) {
      const byte = bytes[pos++];
      if (byte === undefined) throw new Error("renumberFields: message ends inside a varint");
      value += (byte & 0x7f) * shift;
      if (byte < 0x80) return value;
    }
  };
  while (pos < bytes.length) {
    const tag = varint();
    const wireType = tag & 7;
    const field = Math.floor(tag / 8);
    const start = pos;
    if (wireType === 0) varint();
    else if (wireType === 1) pos += 8;
    else if (wireType === 2) {
      const length = varint();
      pos += length;
    } else if (wireType === 5) pos += 4;
    else throw new Error(`renumberFields: field ${field} has unsupported wire type ${wireType}`);
    if (pos > bytes.length) throw new Error(`renumberFields: field ${field} runs past the message's end`);
    const to = numbers.get(field);
    if (to === undefined) continue;
    const newTag = to * 8 + wireType;
    kept.push(newTag, start, pos);
    size += varintSize(newTag) + pos - start;
  }
  const out = allocateBytes(size);
  let at = 0;
  for (let i = 0; i < kept.length; i += 3) {
    for (let v = kept[i] as number; ; v = Math.floor(v / 128)) {
      if (v < 0x80) {
        out[at++] = v;
        break;
      }
      out[at++] = (v & 0x7f) | 0x80;
    }
    const start = kept[i + 1] as number;
    const end = kept[i + 2] as number;
    out.set(bytes.subarray(start, end), at);
    at += end - start;
  }
  return out;
}

/** A message as the conformance runner frames it: its length (32 bits, big-endian), then its bytes. */
export function sizeDelimited(bytes: Uint8Array): Buffer {
  const framed = Buffer.alloc(4 + bytes.length);
  framed.writeUInt32BE(bytes.length, 0);
  framed.set(bytes, 4);
  return framed;
}

/** The framed messages of a stream, as they arrive. */
export async function* sizeDelimitedMessages(stream: AsyncIterable<Buffer>): AsyncIterable<Buffer> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of stream) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
      const length = pending.readUInt32BE(0);
      yield pending.subarray(4, 4 + length);
      pending = pending.subarray(4 + length);
    }
  }
}

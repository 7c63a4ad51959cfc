/**
 * A message in the five-byte envelope of gRPC and of Connect streams: a byte
 * of flags (1: compressed; 2: a Connect stream's end), then the message's
 * length (big-endian), then the message.
 */
export function envelope(flags: number, message: Uint8Array): Buffer {
  const enveloped = Buffer.allocUnsafe(5 + message.byteLength);
  enveloped[0] = flags;
  enveloped.writeUInt32BE(message.byteLength, 1);
  enveloped.set(message, 5);
  return enveloped;
}

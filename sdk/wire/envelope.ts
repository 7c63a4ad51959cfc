import { Code, ConnectError } from "@connectrpc/connect";

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

/**
 * Splits a body into its envelopes as its chunks come. The chunks of an
 * envelope not complete yet are kept apart and joined once it is: a large
 * message comes in many frames.
 */
export class EnvelopeSplitter {
  /** Whether a compressed envelope is handed on (its caller decompresses it) rather than refused. */
  private readonly acceptCompressed: boolean;
  constructor(options: { acceptCompressed?: boolean } = {}) {
    this.acceptCompressed = options.acceptCompressed ?? false;
  }

  private held: Buffer[] = [];
  private heldBytes = 0;
  /** The whole length of the envelope held, once its five-byte head came. */
  private needed = 0;

  /** Bytes of an envelope not complete yet. */
  get pending(): number {
    return this.heldBytes;
  }

  /** The envelopes that `chunk` completes. */
  push(chunk: Buffer): { flags: number; data: Buffer }[] {
    let buffer = chunk;
    if (this.heldBytes > 0) {
      this.held.push(chunk);
      this.heldBytes += chunk.byteLength;
      if (this.needed === 0 && this.heldBytes >= 5) this.needed = 5 + Buffer.concat(this.held, 5).readUInt32BE(1);
      if (this.needed === 0 || this.heldBytes < this.needed) return [];
      buffer = Buffer.concat(this.held, this.heldBytes);
      this.held = [];
      this.heldBytes = 0;
      this.needed = 0;
    }
    const complete: { flags: number; data: Buffer }[] = [];
    let at = 0;
    while (buffer.byteLength - at >= 5) {
      const length = buffer.readUInt32BE(at + 1);
      if (buffer.byteLength - at < 5 + length) break;
      const flags = buffer[at] ?? 0;
      if (flags & 0b1 && !this.acceptCompressed) {
        throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
      }
      complete.push({ flags, data: buffer.subarray(at + 5, at + 5 + length) });
      at += 5 + length;
    }
    if (at < buffer.byteLength) {
      const rest = buffer.subarray(at);
      this.held = [rest];
      this.heldBytes = rest.byteLength;
      this.needed = rest.byteLength >= 5 ? 5 + rest.readUInt32BE(1) : 0;
    }
    return complete;
  }
}

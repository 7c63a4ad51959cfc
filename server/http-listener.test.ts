import { describe, expect, it } from "vitest";
import { escapeGrpcMessage } from "./http-listener.ts";

describe("escapeGrpcMessage", () => {
  it("escapes only '%' and bytes outside 0x20-0x7E, as the gRPC spec says", () => {
    expect(escapeGrpcMessage('hasher/Digest takes a payload, 100% "sure": é\n')).toBe(
      'hasher/Digest takes a payload, 100%25 "sure": %C3%A9%0A',
    );
    expect(decodeURIComponent(escapeGrpcMessage("a/b,c%d ü"))).toBe("a/b,c%d ü");
  });
});

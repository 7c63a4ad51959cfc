import { create, type DescField, type DescMessage, fromBinary, ScalarType, toBinary } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import * as example from "../../examples/gen/example/v1/hash_pb.ts";
import * as options from "../../gen/taskwire/v1/options_pb.ts";
import * as queues from "../../gen/taskwire/v1/queue_service_pb.ts";
import * as task from "../../gen/taskwire/v1/task_pb.ts";
import * as service from "../../gen/taskwire/v1/task_service_pb.ts";
import * as codec from "../../test/gen/codec/v1/codec_pb.ts";
import * as probe from "../../test/gen/probe/v1/probe_pb.ts";
import { decodeMessage, encodeMessage } from "./wire-codec.ts";

/** Every message type of these generated files. */
const schemas = [task, service, queues, options, example, probe, codec].flatMap((file) =>
  Object.values(file).filter(
    (value): value is DescMessage =>
      typeof value === "object" && value !== null && (value as { kind?: string }).kind === "message",
  ),
);

/** A small deterministic PRNG, so a failure repeats. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const strings = [
  "",
  "a",
  "hasher.01M82N0RJ2MDWXG8MG6EY6K318",
  "ünïcödé",
  "emoji 🎉",
  "x".repeat(200),
  "y".repeat(32),
  "é".repeat(100),
  "\u{D800}",
  "a\u{DC00}b",
  "\u{FEFF}byte order mark",
];

function scalar(type: ScalarType, next: () => number): unknown {
  const pick = <T>(values: T[]) => values[Math.floor(next() * values.length)] as T;
  switch (type) {
    case ScalarType.STRING:
      return pick(strings);
    case ScalarType.BYTES:
      return pick([new Uint8Array(0), new Uint8Array([1, 2, 3]), new Uint8Array(300).fill(7)]);
    case ScalarType.BOOL:
      return next() < 0.5;
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT:
      return pick([0, -0, 1.5, -2.25, 1e10, 0.1]);
    case ScalarType.INT32:
    case ScalarType.SINT32:
    case ScalarType.SFIXED32:
      return pick([0, 1, -1, 127, 128, 2 ** 31 - 1, -(2 ** 31), 300]);
    case ScalarType.UINT32:
    case ScalarType.FIXED32:
      return pick([0, 1, 127, 128, 16384, 2 ** 32 - 1]);
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
      return pick([0n, 1n, 1_700_000_000n, 2n ** 49n - 1n, 2n ** 49n, 2n ** 63n, 2n ** 64n - 1n]);
    default:
      return pick([0n, 1n, -1n, 1_700_000_000n, 2n ** 49n - 1n, 2n ** 49n, -(2n ** 63n), 2n ** 63n - 1n]);
  }
}

/** A random init object for `desc`, `depth` levels of nested messages at most. */
function randomInit(desc: DescMessage, next: () => number, depth: number): Record<string, unknown> {
  const init: Record<string, unknown> = {};
  const value = (field: DescField): unknown => {
    switch (field.fieldKind) {
      case "scalar":
        return scalar(field.scalar, next);
      case "enum":
        return field.enum.values[Math.floor(next() * field.enum.values.length)]?.number ?? 0;
      case "message":
        return depth > 0 ? randomInit(field.message, next, depth - 1) : undefined;
      case "list": {
        const item =
          field.listKind === "message"
            ? () => (depth > 0 ? randomInit(field.message, next, depth - 1) : {})
            : field.listKind === "enum"
              ? () => field.enum.values[Math.floor(next() * field.enum.values.length)]?.number ?? 0
              : () => scalar(field.scalar, next);
        return Array.from({ length: Math.floor(next() * 4) }, item);
      }
      case "map": {
        if (field.mapKind === "message" && depth === 0) return undefined;
        const entries: Record<string, unknown> = {};
        for (let i = Math.floor(next() * 4); i > 0; i--) {
          const key = String(scalar(field.mapKey, next));
          entries[key] =
            field.mapKind === "message"
              ? randomInit(field.message, next, depth - 1)
              : field.mapKind === "enum"
                ? (field.enum.values[Math.floor(next() * field.enum.values.length)]?.number ?? 0)
                : scalar(field.scalar, next);
        }
        return entries;
      }
    }
  };
  for (const oneof of desc.oneofs) {
    const field = oneof.fields[Math.floor(next() * (oneof.fields.length + 1))];
    if (field && (field.fieldKind !== "message" || depth > 0)) {
      init[oneof.localName] = { case: field.localName, value: value(field) };
    }
  }
  for (const field of desc.fields) {
    if (field.oneof || next() < 0.3) continue;
    const v = value(field);
    if (v !== undefined) init[field.localName] = v;
  }
  return init;
}

describe("wire codec", () => {
  it("covers every protocol message type", () => {
    expect(schemas.length).toBeGreaterThan(30);
    expect(schemas.map((s) => s.typeName)).toContain("taskwire.v1.TaskStatus");
    expect(schemas.map((s) => s.typeName)).toContain("codec.v1.Everything");
    expect(schemas.map((s) => s.typeName)).toContain("codec.v1.OutOfOrder");
  });

  it("encodes the same bytes as protobuf-es, and decodes the same messages", () => {
    const next = random(1);
    for (const desc of schemas) {
      for (let i = 0; i < 40; i++) {
        const message = create(desc, randomInit(desc, next, 3));
        const expected = toBinary(desc, message);
        const bytes = encodeMessage(desc, message);
        expect(bytes, `${desc.typeName} #${i}`).toEqual(expected);
        expect(decodeMessage(desc, expected), `${desc.typeName} #${i}`).toStrictEqual(fromBinary(desc, expected));
      }
    }
  });

  it("merges concatenated messages and keeps unknown fields, as protobuf-es does", () => {
    const next = random(2);
    // Field 999, length-delimited "zz": unknown to every protocol message.
    const unknown = new Uint8Array([0xba, 0x3e, 2, 0x7a, 0x7a]);
    for (const desc of schemas) {
      for (let i = 0; i < 20; i++) {
        const a = toBinary(desc, create(desc, randomInit(desc, next, 2)));
        const b = toBinary(desc, create(desc, randomInit(desc, next, 2)));
        const joined = new Uint8Array([...a, ...unknown, ...b]);
        const decoded = decodeMessage(desc, joined);
        expect(decoded, `${desc.typeName} #${i}`).toStrictEqual(fromBinary(desc, joined));
        expect(encodeMessage(desc, decoded)).toEqual(toBinary(desc, fromBinary(desc, joined)));
      }
    }
  });
});

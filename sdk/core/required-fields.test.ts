import { create } from "@bufbuild/protobuf";
import { describe, expect, it } from "vitest";
import {
  BranchSchema,
  CycleSchema,
  LeafSchema,
  LoopSchema,
  PlainSchema,
} from "../../test/gen/required/v1/required_pb.ts";
import { missingRequiredFields } from "./required-fields.ts";

describe("missingRequiredFields", () => {
  it("names a type's own unset required field", () => {
    expect(missingRequiredFields(LeafSchema, create(LeafSchema))).toEqual(["name"]);
    expect(missingRequiredFields(LeafSchema, create(LeafSchema, { name: "x" }))).toEqual([]);
  });

  it("follows set message fields, recursion included, and names the path", () => {
    const branch = create(BranchSchema, { leaf: {}, next: { next: { leaf: {} } } });
    expect(missingRequiredFields(BranchSchema, branch)).toEqual(["leaf.name", "next.next.leaf.name"]);
    expect(missingRequiredFields(BranchSchema, create(BranchSchema))).toEqual([]);
  });

  it("finds a required field reached only through a cycle, whichever type of the cycle is checked first", () => {
    // Loop first: its plan is made while Cycle's is not.
    expect(missingRequiredFields(LoopSchema, create(LoopSchema, { cycle: { loop: { leaf: {} } } }))).toEqual([
      "cycle.loop.leaf.name",
    ]);
    expect(
      missingRequiredFields(CycleSchema, create(CycleSchema, { loop: { cycle: { loop: { leaf: {} } } } })),
    ).toEqual(["loop.cycle.loop.leaf.name"]);
  });

  it("has nothing to say about a type with no required field anywhere", () => {
    expect(missingRequiredFields(PlainSchema, create(PlainSchema, { child: { child: {} } }))).toEqual([]);
  });
});

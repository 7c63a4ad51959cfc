import { fromBinary } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { SourceCodeInfoSchema } from "@bufbuild/protobuf/wkt";
import { describe, expect, it } from "vitest";
import { DigestRequestSchema } from "../../examples/gen/example/v1/hash_pb.ts";
import { hashService } from "../../examples/gen/example/v1/hash_taskwire.ts";
import { file_taskwire_v1_task } from "../../gen/taskwire/v1/task_pb.ts";
import { sourceInfoOf } from "./source-info.ts";

describe("sourceInfoOf", () => {
  it("gives the comments a generated definition passed to defineTaskService, for its file", () => {
    const sourceInfo = sourceInfoOf(hashService.service.file);
    expect(sourceInfo).toBeDefined();
    const info = fromBinary(SourceCodeInfoSchema, base64Decode(sourceInfo ?? ""));
    const service = info.location.find((l) => l.path.join(",") === "6,0");
    expect(service?.leadingComments).toBe(" A quick CPU task: hash some text, many rounds over.\n");
    // The file of the service's messages is the same file: one record.
    expect(sourceInfoOf(DigestRequestSchema.file)).toBe(sourceInfo);
    // The definition itself does not keep them.
    expect(Object.keys(hashService)).not.toContain("sourceInfo");
  });

  it("gives nothing for a file no definition described", () => {
    expect(sourceInfoOf(file_taskwire_v1_task)).toBeUndefined();
  });
});

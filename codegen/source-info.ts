import { create, type DescFile, toBinary } from "@bufbuild/protobuf";
import { base64Encode } from "@bufbuild/protobuf/wire";
import { SourceCodeInfoSchema } from "@bufbuild/protobuf/wkt";
import type { GeneratedFile } from "@bufbuild/protoplugin";

/**
 * The name of the constant that holds a file's comments in generated code, after
 * protoc-gen-es' name for the file's descriptor: `file_example_v1_hash_sourceInfo`.
 */
export function sourceInfoName(file: DescFile): string {
  return `file_${file.name.replace(/[^a-zA-Z0-9_]+/g, "_")}_sourceInfo`;
}

/**
 * The file's SourceCodeInfo with only the locations that carry a comment (each
 * with its path and span), in base64; undefined for a file without comments or
 * built without source info. protoc-gen-es leaves it out of the descriptor it
 * embeds; gRPC reflection puts it back into the FileDescriptorProto it serves, so
 * `grpcurl describe` shows the comments.
 */
export function commentsOf(file: DescFile): string | undefined {
  const location = (file.proto.sourceCodeInfo?.location ?? []).filter(
    (l) => l.leadingComments !== "" || l.trailingComments !== "" || l.leadingDetachedComments.length > 0,
  );
  if (location.length === 0) return undefined;
  return base64Encode(toBinary(SourceCodeInfoSchema, create(SourceCodeInfoSchema, { location })), "std_raw");
}

/** Prints `export const <sourceInfoName> = "<commentsOf(file)>";` and returns the name. */
export function printSourceInfo(f: GeneratedFile, file: DescFile, comments: string): string {
  const name = sourceInfoName(file);
  f.print(
    f.jsDoc(
      `The comments of ${file.proto.name}, which gRPC reflection serves with the file's descriptor: its SourceCodeInfo (the locations that carry a comment), in base64.`,
    ),
  );
  f.print(f.export("const", name), " = ", f.string(comments), ";");
  return name;
}

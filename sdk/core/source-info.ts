import type { DescFile } from "@bufbuild/protobuf";

/** The comments of each file whose generated code carries them, by its descriptor. */
const recorded = new WeakMap<DescFile, string>();

/**
 * Keeps a proto file's comments for gRPC reflection: its SourceCodeInfo (the
 * locations that carry a comment) in base64, as protoc-gen-taskwire writes it beside
 * the file's task services. {@link defineTaskService} calls it.
 */
export function recordSourceInfo(file: DescFile, sourceInfo: string): void {
  recorded.set(file, sourceInfo);
}

/** The comments {@link recordSourceInfo} kept for a file, if any: a SourceCodeInfo in base64. */
export function sourceInfoOf(file: DescFile): string | undefined {
  return recorded.get(file);
}
